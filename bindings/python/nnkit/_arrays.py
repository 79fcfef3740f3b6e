"""Caller data as C buffers: the conversions that are safe (any real dtype
to float32, non-contiguous arrays, nested lists, buffers) and the checks that
turn everything else into a ValueError/TypeError sentence naming what was
expected and what was given."""
from __future__ import annotations

import array
import ctypes
import math
import numbers
from typing import Any, List, Optional, Sequence, Tuple

from .errors import E_INVALID, E_SHAPE, InvalidArgument, InvalidType, ShapeError

try:  # NumPy is optional
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by the no-NumPy test run
    _np = None

_INT_MIN, _INT_MAX = -2 ** 31, 2 ** 31 - 1

_POINTER = {ctypes.c_float: ctypes.POINTER(ctypes.c_float),
            ctypes.c_int32: ctypes.POINTER(ctypes.c_int32),
            ctypes.c_uint8: ctypes.POINTER(ctypes.c_uint8)}


def is_array(x: Any) -> bool:
    """True for a NumPy array."""
    return _np is not None and isinstance(x, _np.ndarray)


def as_int(value: Any, what: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """value as a Python int, or InvalidArgument: an integral number (an
    integral float such as 2.0 is accepted) within [lo, hi]; never
    truncated or wrapped the way a C conversion would."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(E_INVALID, "%s must be an integer, not %r" % (what, value))
    if not isinstance(value, numbers.Integral):
        f = float(value)
        if not (math.isfinite(f) and f.is_integer()):
            raise InvalidArgument(E_INVALID, "%s %r is not an integer" % (what, value))
        value = f
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidArgument(E_INVALID, "%s %d is outside [%s, %s]" %
                              (what, value, lo, hi))
    return value


def as_float(value: Any, what: str) -> float:
    """value as a float, or TypeError naming what was given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidType("%s must be a real number, not %s %r" %
                          (what, type(value).__name__, value))
    return float(value)


def _check_dtype(arr: Any, what: str, kinds: str, expected: str) -> None:
    if arr.dtype.kind not in kinds:
        raise InvalidType("%s must be %s; got an array of dtype %s" % (what, expected, arr.dtype))


def _flatten(data: Any, what: str = "data") -> Tuple[List[Any], Tuple[int, ...]]:
    """Flattens nested sequences (or any buffer) and returns (list, shape);
    the values are checked to be numbers by _typed (array.array)."""
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        mv = memoryview(data)  # its values, whatever the item type (never its bytes)
        if mv.ndim != 1:
            return _flatten(mv.tolist(), what)
        return mv.tolist(), (len(mv),)
    if isinstance(data, (str, dict, set)) or not isinstance(data, (list, tuple)) \
            and not hasattr(data, "__len__"):
        raise InvalidType("%s must be an array, a (nested) list or a buffer of numbers; "
                          "got %s" % (what, type(data).__name__))
    if not isinstance(data, (list, tuple)):
        data = list(data)
    shape = []
    level = data
    while isinstance(level, (list, tuple)) or (_np is not None and isinstance(level, _np.ndarray)):
        shape.append(len(level))
        level = level[0] if len(level) else None
    flat: List[Any] = []
    last = len(shape) - 1

    def walk(x: Any, depth: int) -> None:
        if not hasattr(x, "__len__") or len(x) != shape[depth]:
            raise ValueError("%s is ragged: expected %d items at depth %d, got %s" %
                             (what, shape[depth], depth,
                              len(x) if hasattr(x, "__len__") else "a scalar"))
        if depth == last:
            flat.extend(x)
        else:
            for item in x:
                walk(item, depth + 1)

    walk(data, 0)
    return flat, tuple(shape)


def _typed(typecode: str, flat: List[Any], what: str) -> "array.array[Any]":
    """array.array(typecode, flat), or a sentence naming the first value
    that is not a number."""
    try:
        return array.array(typecode, flat)
    except (TypeError, OverflowError):
        for i, x in enumerate(flat):
            if hasattr(x, "__len__") and not isinstance(x, str):
                raise ValueError("%s is ragged: item %d of the innermost level is a "
                                 "sequence" % (what, i)) from None
            if not isinstance(x, numbers.Real):
                raise InvalidType("%s must hold numbers; got %s %r at flat index %d" %
                                  (what, type(x).__name__, x, i)) from None
        raise


class Buffer:
    """A C view of caller data: keeps the owner alive, exposes .ptr, .count
    and .shape. Floats (any real dtype, converted to float32), bytes
    (uint8) or int32 class ids; non-contiguous arrays are copied."""

    def __init__(self, data: Any, ctype: Any, typecode: str, what: str = "data") -> None:
        self.keep: Any = None
        if is_array(data):
            dt = {ctypes.c_float: _np.float32, ctypes.c_int32: _np.int32,
                  ctypes.c_uint8: _np.uint8}[ctype]
            _check_dtype(data, what, "biuf" if ctype is not ctypes.c_float else "biuf",
                         "real numbers (a float array, or integers)")
            arr = data
            if arr.dtype != dt or not arr.flags.c_contiguous or not arr.flags.aligned:
                arr = _np.ascontiguousarray(data, dtype=dt)  # converted only when needed
            self.keep = arr
            self.count = arr.size
            # the address straight from the array interface: cheaper per
            # batch than arr.ctypes.data_as()
            self.ptr = ctypes.cast(arr.__array_interface__["data"][0], _POINTER[ctype])
            self.shape = arr.shape
            return
        flat, shape = _flatten(data, what)
        arr = _typed(typecode, flat, what)
        self.keep = arr
        self.count = len(arr)
        self.shape = shape
        addr, _ = arr.buffer_info()
        self.ptr = ctypes.cast(addr, ctypes.POINTER(ctype))


def label_buffer(labels: Any, what: str = "labels") -> Buffer:
    """A C int32 view of class ids, checked value by value: a label that is
    not an integer (1.9), or that does not fit int32 (2**32 + 1), raises
    InvalidArgument (a ValueError) instead of being truncated or wrapped;
    a non-numeric array raises TypeError."""
    if is_array(labels):
        arr = labels
        _check_dtype(arr, what, "biuf", "integer class ids")
        if arr.size and arr.dtype != _np.int32:
            flat = arr.reshape(-1)
            if arr.dtype.kind == "f":
                bad = ~(_np.isfinite(flat) & (flat == _np.floor(flat)))
                if bad.any():
                    i = int(_np.argmax(bad))
                    raise InvalidArgument(E_INVALID, "%s: %r at index %d is not an integer "
                                          "class id (a classifier takes integer labels; "
                                          "for float targets use loss='mse')"
                                          % (what, float(flat[i]), i))
            out = (flat < _INT_MIN) | (flat > _INT_MAX)
            if out.any():
                i = int(_np.argmax(out))
                raise InvalidArgument(E_INVALID, "%s: %s at index %d does not fit a "
                                      "32-bit class id" % (what, flat[i], i))
        return Buffer(arr, ctypes.c_int32, "i", what)
    if isinstance(labels, (bytes, bytearray)):
        return Buffer(labels, ctypes.c_int32, "i", what)
    if isinstance(labels, (memoryview, array.array)):
        flat = memoryview(labels).tolist()
        shape: Tuple[int, ...] = (len(flat),)
    else:
        flat, shape = _flatten(labels, what)
    checked = []
    for i, v in enumerate(flat):
        try:
            iv = int(v) if isinstance(v, bool) else as_int(v, "label")
        except InvalidArgument:
            raise InvalidArgument(E_INVALID, "%s: %r at index %d is not an integer class id "
                                  "(a classifier takes integer labels; for float targets "
                                  "use loss='mse')" % (what, v, i)) from None
        if not _INT_MIN <= iv <= _INT_MAX:
            raise InvalidArgument(E_INVALID, "%s: %d at index %d does not fit a 32-bit "
                                  "class id" % (what, iv, i))
        checked.append(iv)
    buf = Buffer(checked, ctypes.c_int32, "i", what)
    buf.shape = shape
    return buf


def samples(x: Any, sample_shape: Sequence[int], what: str = "x",
            owner: str = "the net") -> Tuple[Buffer, int]:
    """x as float32 samples of sample_shape: (Buffer, count). Accepts an
    array (or nested list) of shape (n,) + any shape of the same size as
    sample_shape, or a flat run of n * size values; anything else is a
    ShapeError (a ValueError) naming the expected and given shapes."""
    xb = Buffer(x, ctypes.c_float, "f", what)
    size = math.prod(sample_shape)
    expected = "(n, %s)" % ", ".join(str(d) for d in sample_shape)
    if len(xb.shape) > 1:
        per = math.prod(xb.shape[1:])
        if per != size:
            raise ShapeError(E_SHAPE, "%s has shape %s: samples of %d values, but %s takes "
                             "samples of shape %s (%d values), i.e. an array of shape %s"
                             % (what, tuple(xb.shape), per, owner, tuple(sample_shape),
                                size, expected))
    n = xb.count // size if size else 0
    if n == 0 or n * size != xb.count:
        raise ShapeError(E_SHAPE, "%s has shape %s (%d values), not a positive multiple of "
                         "%s's sample size %d; expected an array of shape %s"
                         % (what, tuple(xb.shape), xb.count, owner, size, expected))
    return xb, n


def to_result(ptr_or_list: Any, count: int, shape: Optional[Tuple[int, ...]] = None,
              ctype: Any = ctypes.c_float) -> Any:
    """Returns a NumPy array (a copy) when NumPy is present, else a list."""
    if isinstance(ptr_or_list, ctypes.Array):
        raw = ptr_or_list
    else:
        raw = (ctype * count).from_address(ctypes.addressof(ptr_or_list.contents))
    if _np is not None:
        dt = {ctypes.c_float: _np.float32, ctypes.c_int32: _np.int32,
              ctypes.c_double: _np.float64, ctypes.c_size_t: _np.uintp,
              ctypes.c_uint64: _np.uint64}[ctype]
        out = _np.frombuffer(raw, dtype=dt, count=count).copy()
        return out.reshape(shape) if shape else out
    flat = list(raw)
    if shape and len(shape) > 1:  # nested lists, like ndarray.tolist()
        for dim in reversed(shape[1:]):
            flat = [flat[i:i + dim] for i in range(0, len(flat), dim)]
    return flat


def is_bytes(x: Any) -> bool:
    """True for data nnkit keeps as bytes: uint8 arrays, bytes, bytearray."""
    if isinstance(x, (bytes, bytearray)):
        return True
    return is_array(x) and x.dtype == _np.uint8
