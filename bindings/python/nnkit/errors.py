"""The exception hierarchy: ``nnkit.Error`` and one subclass per NNKIT_E_*
status, each carrying the C library's sentence (nnkit_last_error()).

The subclasses also derive from the built-in exception a Python caller
expects (InvalidArgument and ShapeError are ValueErrors, IOFailure an
OSError, ...), so ``except ValueError`` catches a bad argument whether
Python or C found it."""
from __future__ import annotations

from typing import Dict, NoReturn, Type

from ._lib import lib
from ._prototypes import ENUMS

__all__ = ["Error", "InvalidArgument", "InvalidType", "OutOfMemory", "IOFailure", "FormatError",
           "ShapeError", "StateError", "Diverged", "Aborted", "OK", "E_INVALID",
           "E_NOMEM", "E_IO", "E_FORMAT", "E_SHAPE", "E_STATE", "E_DIVERGED", "E_USER",
           "check", "raise_status"]

_STATUS = ENUMS["nnkit_status"]
OK = _STATUS["ok"]
E_INVALID = _STATUS["e_invalid"]
E_NOMEM = _STATUS["e_nomem"]
E_IO = _STATUS["e_io"]
E_FORMAT = _STATUS["e_format"]
E_SHAPE = _STATUS["e_shape"]
E_STATE = _STATUS["e_state"]
E_DIVERGED = _STATUS["e_diverged"]
E_USER = _STATUS["e_user"]


class Error(Exception):
    """A failed nnkit call: ``.status`` (the NNKIT_E_* value) and
    ``.message`` (one sentence naming the thing, the bad value and the fix)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        name = lib.nnkit_status_string(status).decode()
        super().__init__("%s: %s" % (name.split(":")[0], message))


class InvalidArgument(Error, ValueError):
    """NNKIT_E_INVALID: a bad argument, hyperparameter value or name."""


class InvalidType(InvalidArgument, TypeError):
    """A value of the wrong type or dtype (an array of strings where
    numbers go, ...): both a ValueError and a TypeError, status
    NNKIT_E_INVALID."""

    def __init__(self, message: str) -> None:
        super().__init__(E_INVALID, message)


class OutOfMemory(Error, MemoryError):
    """NNKIT_E_NOMEM: an allocation failed."""


class IOFailure(Error, OSError):
    """NNKIT_E_IO: a file could not be opened, read or written."""


class FormatError(Error, ValueError):
    """NNKIT_E_FORMAT: a file's contents are malformed or truncated."""


class ShapeError(Error, ValueError):
    """NNKIT_E_SHAPE: tensor or layer shapes do not fit together."""


class StateError(Error, RuntimeError):
    """NNKIT_E_STATE: the call is not valid in the object's state (closed,
    not fitted, ...)."""


class Diverged(Error, ArithmeticError):
    """NNKIT_E_DIVERGED: training produced NaN/Inf or exploded."""


class Aborted(Error):
    """NNKIT_E_USER: a callback asked to abort."""


_ERRORS: Dict[int, Type[Error]] = {
    E_INVALID: InvalidArgument, E_NOMEM: OutOfMemory, E_IO: IOFailure,
    E_FORMAT: FormatError, E_SHAPE: ShapeError, E_STATE: StateError,
    E_DIVERGED: Diverged, E_USER: Aborted}


def raise_status(status: int) -> NoReturn:
    """Raises the Error subclass of a failed status with the C sentence."""
    message = lib.nnkit_last_error().decode(errors="replace")
    raise _ERRORS.get(status, Error)(status, message)


def check(status: int) -> None:
    """Raises the matching Error for a failed status (the functions of the
    library already do so through ctypes' errcheck; this is for values
    obtained otherwise)."""
    if status != OK:
        raise_status(status)
