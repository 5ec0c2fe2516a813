"""Errors the server reports to the client. Each message is one line for the user."""

from __future__ import annotations

from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams


class InvalidArguments(JsonRpcInvalidParams):
    """A command's arguments are malformed: an LSP InvalidParams error."""

    def __init__(self, message: str) -> None:
        super().__init__(message=message)


class CommandFailed(JsonRpcException):
    """A well-formed command that could not be done (no such process, corrupt file, ...).

    LSP's RequestFailed code: the request was valid, the server could not carry it out.
    """

    CODE = -32803
    MESSAGE = "Request Failed"

    def __init__(self, message: str) -> None:
        super().__init__(message=message)


class InternalError(JsonRpcInternalError):
    """A fault of the server itself, reported in one line. pygls's own internal errors carry
    the traceback in `data`, which clients show to users; the traceback goes to the log."""

    def __init__(self, message: str) -> None:
        super().__init__(message=message)


def one_line(message: str) -> str:
    """The first non-empty line of a message, for errors shown to the user."""
    return next((line.strip() for line in message.splitlines() if line.strip()), "") or "unknown error"
