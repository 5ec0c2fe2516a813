"""heatline's sampler: reads a running CPython's memory and turns its stacks into profiles."""

__version__ = "0.1.0"
