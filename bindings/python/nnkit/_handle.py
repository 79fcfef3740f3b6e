"""The base of every class that owns a C handle: lifetime, pinning and
borrowing rules shared by all of them."""
from __future__ import annotations

import ctypes
from typing import Any

from .errors import E_STATE, StateError

__all__ = ["Handle"]


class Handle:
    """Owns one C handle; close() frees it (idempotent), also on GC/with.

    Ownership mirrors C's: an object that borrows a handle (a Trainer its
    Net and Optimizer, a Pipeline its Dataset, a fit its data, a NumPy view
    its Net's buffer) pins it with _pin() and unpins it when done. close()
    of a pinned object closes it for Python at once (every later use raises
    StateError) but frees the C handle only when the last pin goes, so C
    never reads freed memory."""
    _free = None

    def __init__(self) -> None:
        self._h = ctypes.c_void_p()
        self._closed = False
        self._pins = 0

    @classmethod
    def _wrap(cls, handle: Any) -> Any:
        """An object of cls owning a handle the library made."""
        obj = cls.__new__(cls)
        Handle.__init__(obj)
        obj._h = handle if isinstance(handle, ctypes.c_void_p) else ctypes.c_void_p(handle)
        return obj

    @property
    def closed(self) -> bool:
        """True once close() was called (or the handle was never made)."""
        return self._closed or not self._h

    @property
    def handle(self) -> ctypes.c_void_p:
        """The C handle (a c_void_p); StateError once closed."""
        if self.__dict__.get("_closed") or not self._h:
            raise StateError(E_STATE, "%s is closed" % type(self).__name__)
        return self._h

    def _pin(self) -> None:
        """A borrower starts using the handle (see the class comment)."""
        self.handle  # raises StateError when closed
        self._pins += 1

    def _unpin(self) -> None:
        self._pins -= 1
        if self._pins == 0 and self._closed:
            self._release()

    def _borrow(self, obj: "Handle") -> None:
        """This handle's C object borrows obj's: obj stays pinned until this
        handle is freed."""
        obj._pin()
        self.__dict__.setdefault("_borrowed", []).append(obj)

    def _release(self) -> None:
        """Frees the C handle now, then lets go of what it borrowed."""
        if self._h:
            type(self)._free(self._h)
            self._h = ctypes.c_void_p()
        borrowed, self._borrowed = self.__dict__.get("_borrowed", []), []
        for obj in borrowed:
            obj._unpin()

    def close(self) -> None:
        """Frees the C object (at once, or when the last borrower lets go);
        every later use raises StateError. Idempotent."""
        self._closed = True
        if not self.__dict__.get("_pins"):
            self._release()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
