"""google/pprof's `profile.proto`: the wire format (wire.py) and its messages (messages.py).

Our own encoder and decoder rather than a protobuf library: the format is a handful of messages
of varints and length-delimited fields, and reading files from a fleet's store must stay
bounded by the file's size, which a small reader of our own checks at every length.
"""

from .messages import Function, Label, Line, Location, PprofProfile, Sample, ValueType, decode, encode

__all__ = ["Function", "Label", "Line", "Location", "PprofProfile", "Sample", "ValueType", "decode", "encode"]
