"""nnkit: train neural networks on the CPU, from Python, through libnnkit.

A thin ctypes layer: every class wraps one C handle, every error is an
``nnkit.Error`` subclass carrying the C status and nnkit_last_error()'s
sentence. NumPy is optional.
"""
import array
import ctypes
import math
import numbers
import os
import weakref

from ._lib import lib, PACKAGE_VERSION, LOG_FN, EPOCH_FN, BATCH_FN

try:  # NumPy is optional
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by the no-NumPy test run
    _np = None

__version__ = PACKAGE_VERSION

# ---------------------------------------------------------------- errors

OK = 0
E_INVALID, E_NOMEM, E_IO, E_FORMAT, E_SHAPE, E_STATE, E_DIVERGED, E_USER = range(-1, -9, -1)


class Error(Exception):
    """A failed nnkit call: .status (int) and .message (the C sentence)."""

    def __init__(self, status, message):
        self.status = status
        self.message = message
        name = lib.nnkit_status_string(status).decode()
        super().__init__("%s: %s" % (name.split(":")[0], message))


class InvalidArgument(Error, ValueError):
    pass


class OutOfMemory(Error, MemoryError):
    pass


class IOFailure(Error, OSError):
    pass


class FormatError(Error, ValueError):
    pass


class ShapeError(Error, ValueError):
    pass


class StateError(Error, RuntimeError):
    pass


class Diverged(Error, ArithmeticError):
    pass


class Aborted(Error):
    pass


_ERRORS = {E_INVALID: InvalidArgument, E_NOMEM: OutOfMemory, E_IO: IOFailure,
           E_FORMAT: FormatError, E_SHAPE: ShapeError, E_STATE: StateError,
           E_DIVERGED: Diverged, E_USER: Aborted}


def _check(status):
    if status != OK:
        message = lib.nnkit_last_error().decode(errors="replace")
        raise _ERRORS.get(status, Error)(status, message)


def version():
    """The loaded library's version string."""
    return lib.nnkit_version().decode()


_INT_MIN, _INT_MAX = -2 ** 31, 2 ** 31 - 1


def _as_int(value, what, lo=None, hi=None):
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


def set_num_threads(n):
    """Threads used by nnkit's math (0 = all cores)."""
    _check(lib.nnkit_set_num_threads(_as_int(n, "the thread count", _INT_MIN, _INT_MAX)))


def get_num_threads():
    return lib.nnkit_get_num_threads()


# ---------------------------------------------------------------- arrays

_POINTER = {ctypes.c_float: ctypes.POINTER(ctypes.c_float),
            ctypes.c_int32: ctypes.POINTER(ctypes.c_int32),
            ctypes.c_uint8: ctypes.POINTER(ctypes.c_uint8)}


class _Buffer:
    """A C view of caller data: keeps the owner alive, exposes a pointer."""

    def __init__(self, data, ctype, typecode, count=None):
        self.keep = None
        if _np is not None and isinstance(data, _np.ndarray):
            dt = {ctypes.c_float: _np.float32, ctypes.c_int32: _np.int32,
                  ctypes.c_uint8: _np.uint8}[ctype]
            arr = data
            if arr.dtype != dt or not arr.flags.c_contiguous:
                arr = _np.ascontiguousarray(data, dtype=dt)  # converted only when needed
            self.keep = arr
            self.count = arr.size
            # the address straight from the array interface: cheaper per
            # batch than arr.ctypes.data_as()
            self.ptr = ctypes.cast(arr.__array_interface__["data"][0],
                                   _POINTER[ctype])
            self.shape = arr.shape
            return
        flat, shape = _flatten(data)
        arr = array.array(typecode, flat)
        self.keep = arr
        self.count = len(arr)
        self.shape = shape
        addr, _ = arr.buffer_info()
        self.ptr = ctypes.cast(addr, ctypes.POINTER(ctype))


def _label_buffer(labels, what="labels"):
    """A C int32 view of class ids, checked value by value: a label that is
    not an integer (1.9), or that does not fit int32 (2**32 + 1), raises
    InvalidArgument instead of being truncated or wrapped."""
    if _np is not None and isinstance(labels, _np.ndarray):
        arr = labels
        if arr.dtype.kind not in "biuf":
            raise InvalidArgument(E_INVALID, "%s must be integers, not an array of %s" %
                                  (what, arr.dtype))
        if arr.size and arr.dtype != _np.int32:
            flat = arr.reshape(-1)
            if arr.dtype.kind == "f":
                bad = ~(_np.isfinite(flat) & (flat == _np.floor(flat)))
                if bad.any():
                    i = int(_np.argmax(bad))
                    raise InvalidArgument(E_INVALID, "%s: %r at index %d is not an "
                                          "integer class id" % (what, float(flat[i]), i))
            out = (flat < _INT_MIN) | (flat > _INT_MAX)
            if out.any():
                i = int(_np.argmax(out))
                v = flat[i]
                raise InvalidArgument(E_INVALID, "%s: %s at index %d does not fit a "
                                      "32-bit class id" % (what, v, i))
        return _Buffer(arr, ctypes.c_int32, "i")
    if isinstance(labels, (bytes, bytearray)):
        return _Buffer(labels, ctypes.c_int32, "i")
    if isinstance(labels, (memoryview, array.array)):
        flat = memoryview(labels).tolist()
        shape = (len(flat),)
    else:
        flat, shape = _flatten(labels)
    checked = []
    for i, v in enumerate(flat):
        try:
            iv = int(v) if isinstance(v, bool) else _as_int(v, "label")
        except InvalidArgument:
            raise InvalidArgument(E_INVALID, "%s: %r at index %d is not an integer "
                                  "class id" % (what, v, i)) from None
        if not _INT_MIN <= iv <= _INT_MAX:
            raise InvalidArgument(E_INVALID, "%s: %d at index %d does not fit a 32-bit "
                                  "class id" % (what, iv, i))
        checked.append(iv)
    buf = _Buffer(checked, ctypes.c_int32, "i")
    buf.shape = shape
    return buf


def _flatten(data):
    """Flattens nested sequences (or any buffer) and returns (list, shape)."""
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        mv = memoryview(data)  # its values, whatever the item type (never its bytes)
        if mv.ndim != 1:
            return _flatten(mv.tolist())
        return mv.tolist(), (len(mv),)
    shape = []
    level = data
    while isinstance(level, (list, tuple)):
        shape.append(len(level))
        level = level[0] if level else None
    flat = []

    def walk(x, depth):
        if depth == len(shape):
            flat.append(x)
        else:
            if len(x) != shape[depth]:
                raise ValueError("ragged sequence: expected %d items, got %d" %
                                 (shape[depth], len(x)))
            for item in x:
                walk(item, depth + 1)

    walk(data, 0)
    return flat, tuple(shape)


def _to_result(ptr_or_list, count, shape=None, ctype=ctypes.c_float):
    """Returns a NumPy array (a copy) when NumPy is present, else a list."""
    if isinstance(ptr_or_list, ctypes.Array):
        raw = ptr_or_list
    else:
        raw = (ctype * count).from_address(ctypes.addressof(ptr_or_list.contents))
    if _np is not None:
        dt = _np.float32 if ctype is ctypes.c_float else _np.int32
        out = _np.frombuffer(raw, dtype=dt, count=count).copy()
        return out.reshape(shape) if shape else out
    flat = list(raw)
    if shape and len(shape) > 1:  # nested lists, like ndarray.tolist()
        for dim in reversed(shape[1:]):
            flat = [flat[i:i + dim] for i in range(0, len(flat), dim)]
    return flat


# ---------------------------------------------------------------- handles

class _Handle:
    """Owns one C handle; close() frees it (idempotent), also on GC/with.

    Ownership mirrors C's: an object that borrows a handle (a Trainer its
    Net and Optimizer, a Pipeline its Dataset, a fit its data, a NumPy view
    its Net's buffer) pins it with _pin() and unpins it when done. close()
    of a pinned object closes it for Python at once (every later use raises
    StateError) but frees the C handle only when the last pin goes, so C
    never reads freed memory."""
    _free = None

    def __init__(self):
        self._h = ctypes.c_void_p()
        self._closed = False
        self._pins = 0

    @classmethod
    def _wrap(cls, handle):
        """An object of cls owning a handle the library made."""
        obj = cls.__new__(cls)
        _Handle.__init__(obj)
        obj._h = handle if isinstance(handle, ctypes.c_void_p) else ctypes.c_void_p(handle)
        return obj

    @property
    def closed(self):
        return self._closed or not self._h

    @property
    def handle(self):
        if self.__dict__.get("_closed") or not self._h:
            raise StateError(E_STATE, "%s is closed" % type(self).__name__)
        return self._h

    def _pin(self):
        """A borrower starts using the handle (see the class comment)."""
        self.handle  # raises StateError when closed
        self._pins += 1

    def _unpin(self):
        self._pins -= 1
        if self._pins == 0 and self._closed:
            self._release()

    def _borrow(self, obj):
        """This handle's C object borrows obj's: obj stays pinned until this
        handle is freed."""
        obj._pin()
        self.__dict__.setdefault("_borrowed", []).append(obj)

    def _release(self):
        """Frees the C handle now, then lets go of what it borrowed."""
        if self._h:
            type(self)._free(self._h)
            self._h = ctypes.c_void_p()
        borrowed, self._borrowed = self.__dict__.get("_borrowed", []), []
        for obj in borrowed:
            obj._unpin()

    def close(self):
        self._closed = True
        if not self.__dict__.get("_pins"):
            self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _is_bytes(x):
    """True for data nnkit keeps as bytes: uint8 arrays, bytes, bytearray."""
    if isinstance(x, (bytes, bytearray)):
        return True
    return _np is not None and isinstance(x, _np.ndarray) and x.dtype == _np.uint8


class Dataset(_Handle):
    """Samples read as float32 (NCHW per sample) with class labels or float
    targets. A uint8 array (or bytes) with labels is kept as bytes in
    memory, a quarter of float32's size, and reads as the floats 0..255
    (scale it with .scale(1 / 255)); so are IDX ubyte files."""
    _free = lib.nnkit_dataset_free

    def __init__(self, x, labels=None, *, shape=None, num_classes=0, targets=None):
        super().__init__()
        compact = targets is None and _is_bytes(x)
        xb = _Buffer(x, ctypes.c_uint8, "B") if compact else _Buffer(x, ctypes.c_float, "f")
        if shape is None:
            shape = xb.shape[1:] if len(xb.shape) > 1 else (1,)
        shape = tuple(int(d) for d in shape)
        per = math.prod(shape)
        if per == 0 or xb.count % per:
            raise ShapeError(E_SHAPE, "x has %d values, not a multiple of the sample "
                             "shape %s" % (xb.count, shape))
        count = xb.count // per
        cshape = (ctypes.c_size_t * len(shape))(*shape)
        if targets is not None:
            tb = _Buffer(targets, ctypes.c_float, "f")
            if count == 0 or tb.count % count or tb.count == 0:
                raise ShapeError(E_SHAPE, "%d targets for %d samples: the count must be "
                                 "a positive multiple of the number of samples"
                                 % (tb.count, count))
            tdim = tb.count // count
            _check(lib.nnkit_dataset_from_targets(ctypes.byref(self._h), xb.ptr, tb.ptr,
                                                  count, cshape, len(shape), tdim))
        else:
            lp = None
            if labels is not None:
                lb = _label_buffer(labels)
                if lb.count != count:
                    raise InvalidArgument(E_INVALID, "%d labels for %d samples" %
                                          (lb.count, count))
                lp = lb.ptr
            make = lib.nnkit_dataset_from_bytes if compact else lib.nnkit_dataset_from_buffers
            _check(make(ctypes.byref(self._h), xb.ptr, lp, count, cshape, len(shape),
                        int(num_classes)))

    @classmethod
    def load_idx(cls, images, labels=None, num_classes=0):
        """Loads IDX files (gzip or plain), the MNIST format."""
        h = ctypes.c_void_p()
        _check(lib.nnkit_dataset_load_idx(ctypes.byref(h), str(images).encode(),
                                          str(labels).encode() if labels else None,
                                          int(num_classes)))
        return cls._wrap(h)

    def save_idx(self, images, labels=None, gzip=True):
        _check(lib.nnkit_dataset_save_idx(self.handle, str(images).encode(),
                                          str(labels).encode() if labels else None,
                                          int(bool(gzip))))

    def subset(self, indices):
        idx = (ctypes.c_size_t * len(indices))(*[int(i) for i in indices])
        h = ctypes.c_void_p()
        _check(lib.nnkit_dataset_subset(ctypes.byref(h), self.handle, idx, len(indices)))
        return Dataset._wrap(h)

    def scale(self, scale, shift=0.0):
        _check(lib.nnkit_dataset_scale(self.handle, float(scale), float(shift)))
        return self

    def __len__(self):
        return lib.nnkit_dataset_count(self.handle)

    @property
    def shape(self):
        h = self.handle
        return tuple(lib.nnkit_dataset_dim(h, i) for i in range(lib.nnkit_dataset_ndim(h)))

    @property
    def sample_size(self):
        return lib.nnkit_dataset_sample_size(self.handle)

    @property
    def num_classes(self):
        return lib.nnkit_dataset_num_classes(self.handle)

    @property
    def target_dim(self):
        return lib.nnkit_dataset_target_dim(self.handle)

    @property
    def x(self):
        n = len(self) * self.sample_size
        return _to_result(lib.nnkit_dataset_data(self.handle), n, (len(self),) + self.shape)

    @property
    def labels(self):
        p = lib.nnkit_dataset_labels(self.handle)
        return _to_result(p, len(self), None, ctypes.c_int32) if p else None

    @property
    def targets(self):
        p = lib.nnkit_dataset_targets(self.handle)
        return _to_result(p, len(self) * self.target_dim, (len(self), self.target_dim)) \
            if p else None

    def class_counts(self):
        k = self.num_classes
        out = (ctypes.c_size_t * max(k, 1))()
        _check(lib.nnkit_dataset_class_counts(out, k, self.handle))
        return list(out[:k])


    # loaders and splits (include/nnkit/data.h)
    @classmethod
    def load_csv(cls, path, delimiter=",", header="auto", label=None):
        """CSV: label is a column name, an index, or None (unlabelled)."""
        hdr = {"auto": 0, "yes": 1, True: 1, "no": 2, False: 2}[header]
        name = label.encode() if isinstance(label, str) else None
        index = label if isinstance(label, int) else -1
        h = ctypes.c_void_p()
        _check(lib.nnkit_dataset_load_csv(ctypes.byref(h), str(path).encode(),
                                          delimiter.encode(), hdr, name, index))
        return cls._wrap(h)

    @classmethod
    def load_image_folder(cls, root, channels=1, height=28, width=28, resize=True):
        """ImageFolder layout: one sub-folder per class of PNG/JPEG files."""
        h = ctypes.c_void_p()
        _check(lib.nnkit_dataset_load_image_folder(ctypes.byref(h), str(root).encode(),
                                                   channels, height, width,
                                                   int(bool(resize))))
        return cls._wrap(h)

    @classmethod
    def concat(cls, parts):
        arr = (ctypes.c_void_p * len(parts))(*[p.handle.value for p in parts])
        h = ctypes.c_void_p()
        _check(lib.nnkit_dataset_concat(ctypes.byref(h), arr, len(parts)))
        return cls._wrap(h)

    def class_name(self, i):
        r = lib.nnkit_dataset_class_name(self.handle, i)
        return r.decode() if r else None

    def split(self, fraction=0.2, seed=0):
        """Stratified hold-out: (train, held_out)."""
        a, b = ctypes.c_void_p(), ctypes.c_void_p()
        _check(lib.nnkit_dataset_split(ctypes.byref(a), ctypes.byref(b), self.handle,
                                       float(fraction), int(seed)))
        return Dataset._wrap(a), Dataset._wrap(b)

    def fold(self, k, i, seed=0):
        """Fold i of a stratified k-fold: (train, val)."""
        a, b = ctypes.c_void_p(), ctypes.c_void_p()
        _check(lib.nnkit_dataset_fold(ctypes.byref(a), ctypes.byref(b), self.handle, k, i,
                                      int(seed)))
        return Dataset._wrap(a), Dataset._wrap(b)


NORMALIZERS = {"mean_image": 1, "channel_mean": 2, "standardize": 3, "pca": 4,
               "pca_whiten": 5, "zca_whiten": 6}
NORM_KEYS = {"with_std": 1, "components": 2, "variance": 3, "epsilon": 4,
             "fit_samples": 5, "seed": 6}


class Normalizer(_Handle):
    """Normalizer('zca_whiten', epsilon=0.1).fit(train); then .apply(ds)."""
    _free = lib.nnkit_normalizer_free

    def __init__(self, kind, **params):
        super().__init__()
        _check(lib.nnkit_normalizer_create(ctypes.byref(self._h), NORMALIZERS[kind]))
        for k, v in params.items():
            _check(lib.nnkit_normalizer_set(self._h, NORM_KEYS[k], float(v)))

    def fit(self, ds):
        _check(lib.nnkit_normalizer_fit(self.handle, ds.handle))
        return self

    def apply(self, ds):
        """Transforms a dataset in place."""
        _check(lib.nnkit_normalizer_apply(self.handle, ds.handle))
        return ds

    def transform(self, x):
        xb = _Buffer(x, ctypes.c_float, "f")
        n_in = lib.nnkit_normalizer_in_size(self.handle)
        n_out = lib.nnkit_normalizer_out_size(self.handle)
        if n_in == 0:
            raise StateError(E_STATE, "the normalizer is not fitted; fit() it first")
        if xb.count % n_in:
            raise ShapeError(E_SHAPE, "x has %d values, not a multiple of the "
                             "normalizer's input size %d" % (xb.count, n_in))
        if len(xb.shape) > 1 and math.prod(xb.shape[1:]) != n_in:
            raise ShapeError(E_SHAPE, "x has samples of shape %s (%d values); the "
                             "normalizer takes %d" % (tuple(xb.shape[1:]),
                                                      math.prod(xb.shape[1:]), n_in))
        count = xb.count // n_in
        out = (ctypes.c_float * (count * n_out))()
        _check(lib.nnkit_normalizer_transform(self.handle, xb.ptr, out, count))
        return _to_result(out, len(out), (count, n_out))

    @property
    def in_size(self):
        """Floats per input sample (0 before fitting)."""
        return lib.nnkit_normalizer_in_size(self.handle)

    @property
    def out_size(self):
        """Floats per output sample: in_size, or the kept components of PCA."""
        return lib.nnkit_normalizer_out_size(self.handle)

    def compare(self, ds):
        """(max |mean diff|, max |std diff|) of the fit subset vs ds."""
        a, b = ctypes.c_double(), ctypes.c_double()
        _check(lib.nnkit_normalizer_compare(ctypes.byref(a), ctypes.byref(b), self.handle,
                                            ds.handle))
        return a.value, b.value


class _NetNormalizer(Normalizer):
    """The normalizer a Net carries (Net.normalizer): a borrowed view,
    valid while the net keeps it; it can transform and be saved or attached
    to another net, not be refitted."""

    def __init__(self, net, handle):
        _Handle.__init__(self)
        self._h = ctypes.c_void_p(handle)
        self._net = net  # keeps the owner alive

    def fit(self, ds):
        raise StateError(E_STATE, "this normalizer belongs to a net; fit a new "
                         "Normalizer and attach it with Net.set_normalizer")

    def close(self):  # the net frees it
        self._h = ctypes.c_void_p()


AUGMENTATIONS = {"hflip": 1, "vflip": 2, "rotate": 3, "scale": 4, "stretch": 5,
                 "shear_x": 6, "shear_y": 7, "translate": 8, "crop": 9, "brightness": 10,
                 "contrast": 11, "saturation": 12, "noise": 13, "erase": 14}


class Augmenter(_Handle):
    """A chain of random transforms: Augmenter().add('rotate', 0.5, 15)."""
    _free = lib.nnkit_augmenter_free

    def __init__(self, transforms=()):
        super().__init__()
        _check(lib.nnkit_augmenter_create(ctypes.byref(self._h)))
        for t in transforms:
            self.add(*t)

    def add(self, kind, probability=1.0, a=0.0, b=0.0):
        _check(lib.nnkit_augmenter_add(self.handle, AUGMENTATIONS[kind], float(probability),
                                       float(a), float(b)))
        return self

    def __len__(self):
        return lib.nnkit_augmenter_count(self.handle)

    def apply(self, x, shape, seed=0, epoch=0, first_index=0):
        """Augments count samples of the given shape; returns a new array."""
        xb = _Buffer(x, ctypes.c_float, "f")
        per = math.prod(shape)
        if per == 0 or xb.count % per:
            raise ShapeError(E_SHAPE, "x has %d values, not a multiple of the sample "
                             "shape %s (%d values)" % (xb.count, tuple(shape), per))
        buf = (ctypes.c_float * xb.count)()
        ctypes.memmove(buf, xb.ptr, xb.count * 4)
        cshape = (ctypes.c_size_t * len(shape))(*shape)
        _check(lib.nnkit_augmenter_apply(self.handle, buf, xb.count // per, cshape,
                                         len(shape), int(seed), int(epoch),
                                         int(first_index)))
        return _to_result(buf, xb.count, (xb.count // per,) + tuple(shape))


PIPE_KEYS = {"batch_size": 1, "shuffle": 2, "drop_last": 3, "balanced": 4,
             "prefetch": 5, "seed": 6}


class Pipeline(_Handle):
    """dataset -> normalizer -> augmenter -> shuffled batches (prefetched)."""
    _free = lib.nnkit_pipeline_free

    def __init__(self, ds, normalizer=None, augmenter=None, **settings):
        super().__init__()
        self._ds = ds  # borrowed by the C pipeline: keep it alive
        _check(lib.nnkit_pipeline_create(ctypes.byref(self._h), ds.handle))
        self._borrow(ds)  # ds.close() now waits for this pipeline (normalizer/augmenter are copied)
        if normalizer is not None:
            _check(lib.nnkit_pipeline_set_normalizer(self._h, normalizer.handle))
        if augmenter is not None:
            _check(lib.nnkit_pipeline_set_augmenter(self._h, augmenter.handle))
        for k, v in settings.items():
            _check(lib.nnkit_pipeline_set(self._h, PIPE_KEYS[k], float(v)))

    @property
    def handle(self):
        h = _Handle.handle.fget(self)
        if self._ds.closed:
            raise StateError(E_STATE, "the pipeline's Dataset is closed")
        return h

    def __len__(self):
        return lib.nnkit_pipeline_batches_per_epoch(self.handle)

    @property
    def sample_size(self):
        """Floats per output sample (after the normalizer)."""
        return lib.nnkit_pipeline_sample_size(self.handle)

    def batches(self, epoch=0):
        """Yields (x, labels) per batch of one epoch."""
        _check(lib.nnkit_pipeline_begin_epoch(self.handle, int(epoch)))
        per = lib.nnkit_pipeline_sample_size(self.handle)
        while True:
            n = ctypes.c_size_t()
            _check(lib.nnkit_pipeline_next(ctypes.byref(n), self.handle))
            if n.value == 0:
                return
            x = _to_result(lib.nnkit_pipeline_batch_data(self.handle), n.value * per,
                           (n.value, per))
            lp = lib.nnkit_pipeline_batch_labels(self.handle)
            y = _to_result(lp, n.value, None, ctypes.c_int32) if lp else None
            yield x, y


# Initializers ---------------------------------------------------------

INIT_KINDS = {"zeros": 0, "constant": 1, "normal": 2, "uniform": 3, "xavier_normal": 4,
              "xavier_uniform": 5, "he_normal": 6, "he_uniform": 7}


class Init(_Handle):
    """A parameter initializer: Init('he_normal'), Init('normal', 0, 0.01)."""
    _free = lib.nnkit_init_free

    def __init__(self, kind, a=0.0, b=0.0):
        super().__init__()
        k = INIT_KINDS[kind] if isinstance(kind, str) else int(kind)
        _check(lib.nnkit_init_create(ctypes.byref(self._h), k, float(a), float(b)))

    @property
    def kind(self):
        code = lib.nnkit_init_get_kind(self.handle)
        return next(name for name, v in INIT_KINDS.items() if v == code)

    def sample(self, n, fan_in=1, fan_out=1, seed=0, stream=0):
        buf = (ctypes.c_float * n)()
        _check(lib.nnkit_init_fill(self.handle, buf, n, fan_in, fan_out, seed, stream))
        return _to_result(buf, n)


# Layers (descriptions applied to a Net) ------------------------------

ACT = {"relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4, "softmax": 5}
LOSS = {"cross_entropy": 1, "softmax_cross_entropy": 1, "mse": 2}


class Layer:
    def _add(self, net):
        raise NotImplementedError


class Dense(Layer):
    def __init__(self, units, weight_init=None, bias_init=None):
        self.units, self.weight_init, self.bias_init = units, weight_init, bias_init

    def _add(self, net):
        _check(lib.nnkit_net_add_dense(net.handle, int(self.units)))
        if self.weight_init or self.bias_init:
            w = _as_init(self.weight_init)
            b = _as_init(self.bias_init)
            _check(lib.nnkit_net_set_init(net.handle, net.num_layers - 1,
                                          w.handle if w else None,
                                          b.handle if b else None))


def _as_init(spec):
    if spec is None or isinstance(spec, Init):
        return spec
    if isinstance(spec, str):
        return Init(spec)
    return Init(*spec)


class Activation(Layer):
    def __init__(self, kind):
        self.kind = kind

    def _add(self, net):
        _check(lib.nnkit_net_add_activation(net.handle, ACT[self.kind]))


def ReLU():
    return Activation("relu")


def Tanh():
    return Activation("tanh")


def Sigmoid():
    return Activation("sigmoid")


def Softmax():
    return Activation("softmax")


class LeakyReLU(Layer):
    def __init__(self, slope=0.01):
        self.slope = slope

    def _add(self, net):
        _check(lib.nnkit_net_add_leaky_relu(net.handle, float(self.slope)))


class _Simple(Layer):
    """A layer added by one C call with fixed arguments."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def _add(self, net):
        _check(getattr(lib, self.fn)(net.handle, *self.args))


SAME = ctypes.c_size_t(-1).value  # NNKIT_PAD_SAME


def Conv2D(out_channels, kernel=3, stride=1, padding="same", bias=True):
    """Convolution; kernel/stride/padding are ints or (h, w); padding 'same'."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if padding == "same":
        ph = pw = SAME
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return _Simple("nnkit_net_add_conv2d", out_channels, kh, kw, sh, sw, ph, pw,
                   int(bool(bias)))


def _pool(fn, kernel, stride, padding):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    stride = kernel if stride is None else stride
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return _Simple(fn, kh, kw, sh, sw, ph, pw)


def MaxPool2D(kernel=2, stride=None, padding=0):
    return _pool("nnkit_net_add_maxpool2d", kernel, stride, padding)


def AvgPool2D(kernel=2, stride=None, padding=0):
    return _pool("nnkit_net_add_avgpool2d", kernel, stride, padding)


def GlobalAvgPool():
    return _Simple("nnkit_net_add_global_avgpool")


def Flatten():
    return _Simple("nnkit_net_add_flatten")


def BatchNorm(momentum=0.1, eps=1e-5):
    return _Simple("nnkit_net_add_batchnorm", float(momentum), float(eps))


def LayerNorm(eps=1e-5):
    """Layer normalization over each whole sample (PyTorch's nn.LayerNorm
    with normalized_shape = the sample shape)."""
    return _Simple("nnkit_net_add_layernorm", float(eps))


def Dropout(p=0.5):
    return _Simple("nnkit_net_add_dropout", float(p))


def SpatialDropout(p=0.5):
    return _Simple("nnkit_net_add_spatial_dropout", float(p))


# The net ---------------------------------------------------------------

def _check_supervision(labels, targets, n, nout):
    """C buffers of a batch's labels/targets, checked against its n samples
    (and nout outputs) before C reads them: a short buffer would be read
    past its end."""
    lb = tb = None
    if labels is not None:
        lb = _label_buffer(labels)
        if lb.count != n:
            raise ShapeError(E_SHAPE, "%d labels for a batch of %d samples" % (lb.count, n))
    if targets is not None:
        tb = _Buffer(targets, ctypes.c_float, "f")
        if tb.count != n * nout:
            raise ShapeError(E_SHAPE, "%d targets for a batch of %d samples of %d outputs "
                             "(%d expected)" % (tb.count, n, nout, n * nout))
    return lb, tb


# Layer options (nnkit_layer_param), by the names model files use.
LAYER_KEYS = {"units": 1, "out_channels": 2, "kernel_h": 3, "kernel_w": 4,
              "stride_h": 5, "stride_w": 6, "pad_h": 7, "pad_w": 8, "bias": 9,
              "p": 10, "momentum": 11, "eps": 12, "activation": 13, "slope": 14}


def _layer_key(key):
    if isinstance(key, int):
        return key
    try:
        return LAYER_KEYS[key]
    except KeyError:
        raise ValueError("unknown layer option %r; one of %s"
                         % (key, ", ".join(sorted(LAYER_KEYS)))) from None


class Net(_Handle):
    """A sequential network: Net((784,), [Dense(128), ReLU(), Dense(10)])."""
    _free = lib.nnkit_net_free

    _fwd_batch = None  # samples of the last forward(), for backward()'s check
    _views = 0         # live .params/.grads views (they pin the net)

    def __init__(self, input_shape, layers=(), seed=0, loss="cross_entropy"):
        super().__init__()
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        shape = (ctypes.c_size_t * len(input_shape))(*input_shape)
        _check(lib.nnkit_net_create(ctypes.byref(self._h), shape, len(input_shape),
                                    int(seed)))
        for layer in layers:
            self.add(layer)
        self.loss = loss

    def _check_no_views(self, what):
        if self._views:
            raise StateError(E_STATE, "%s would move the parameter buffer while %d "
                             "view(s) from .params/.grads are alive; delete them first "
                             "(keep copies instead: numpy.array(net.params) or "
                             "list(net.params))" % (what, self._views))

    def add(self, layer):
        """Appends a layer (StateError while .params/.grads views are alive:
        adding a layer reallocates the buffer they look at)."""
        self._check_no_views("add()")
        self._fwd_batch = None
        layer._add(self)
        return self

    @property
    def loss(self):
        code = lib.nnkit_net_get_loss(self.handle)
        return next(k for k, v in LOSS.items() if v == code)

    @loss.setter
    def loss(self, kind):
        _check(lib.nnkit_net_set_loss(self.handle, LOSS[kind]))

    @property
    def training(self):
        return bool(lib.nnkit_net_is_training(self.handle))

    @training.setter
    def training(self, on):
        lib.nnkit_net_set_training(self.handle, int(bool(on)))

    @property
    def num_layers(self):
        return lib.nnkit_net_num_layers(self.handle)

    @property
    def input_size(self):
        return lib.nnkit_net_input_size(self.handle)

    @property
    def output_size(self):
        return lib.nnkit_net_output_size(self.handle)

    @property
    def num_params(self):
        return lib.nnkit_net_num_params(self.handle)

    def layer_shape(self, i):
        dims = (ctypes.c_size_t * 3)()
        nd = ctypes.c_size_t()
        _check(lib.nnkit_net_layer_shape(dims, 3, ctypes.byref(nd), self.handle, i))
        return tuple(dims[:nd.value])

    def describe(self, i=None):
        if i is None:
            return [self.describe(k) for k in range(self.num_layers)]
        return lib.nnkit_net_layer_describe(self.handle, i).decode()

    def layer_get(self, i, key):
        """Option `key` of layer i, e.g. net.layer_get(3, "p") for a dropout
        layer's drop probability (names: LAYER_KEYS)."""
        out = ctypes.c_double()
        _check(lib.nnkit_net_layer_get(ctypes.byref(out), self.handle, i,
                                       _layer_key(key)))
        return out.value

    def layer_set(self, i, key, value):
        """Changes a settable option of layer i (dropout "p", batch norm
        "momentum" and "eps", leaky ReLU "slope"); shape options raise."""
        _check(lib.nnkit_net_layer_set(self.handle, i, _layer_key(key),
                                       float(value)))

    def layer_bounds(self, i, key):
        """(lo, hi, flags) of option `key` of layer i, as Optimizer.bounds."""
        lo, hi, flags = ctypes.c_double(), ctypes.c_double(), ctypes.c_int()
        _check(lib.nnkit_net_layer_bounds(ctypes.byref(lo), ctypes.byref(hi),
                                          ctypes.byref(flags), self.handle, i,
                                          _layer_key(key)))
        return lo.value, hi.value, flags.value

    def layer_params(self, i):
        """(offset, count) of layer i's slice of the parameter buffer."""
        off, cnt = ctypes.c_size_t(), ctypes.c_size_t()
        _check(lib.nnkit_net_layer_params(ctypes.byref(off), ctypes.byref(cnt),
                                          self.handle, i))
        return off.value, cnt.value

    def init_params(self):
        _check(lib.nnkit_net_init_params(self.handle))

    def save(self, path, normalizer=None):
        """Writes the net, its class names and the fitted normalizer its
        inputs go through (normalizer if given, else the net's own, if any)
        to a safetensors model file with a checksum, atomically; see
        doc/file-format.md for the layout. PyTorch reads the weights."""
        _check(lib.nnkit_net_save(self.handle,
                                  normalizer.handle if normalizer is not None else None,
                                  os.fsencode(path)))

    @classmethod
    def load(cls, path, with_normalizer=False):
        """Reads a model file written by save(): the net, in evaluation mode,
        with its class names and the saved normalizer attached (net.normalizer),
        so predict, predict_proba and evaluate take raw samples. With
        with_normalizer=True the pair (net, normalizer), the normalizer an
        independent copy (None when the file has none). Bad or corrupt files
        raise FormatError, missing or unreadable ones IOFailure, with the C
        library's sentence."""
        h, nz = ctypes.c_void_p(), ctypes.c_void_p()
        _check(lib.nnkit_net_load(ctypes.byref(h),
                                  ctypes.byref(nz) if with_normalizer else None,
                                  os.fsencode(path)))
        net = cls._wrap(h)
        if not with_normalizer:
            return net
        return net, (Normalizer._wrap(nz) if nz else None)

    @property
    def normalizer(self):
        """The input normalizer the net carries (applied by predict,
        predict_proba, evaluate, confusion), or None. A view owned by the
        net: valid until set_normalizer() or close()."""
        h = lib.nnkit_net_normalizer(self.handle)
        if not h:
            return None
        view = getattr(self, "_nz_view", None)
        if view is None or view._h.value != h:
            view = self._nz_view = _NetNormalizer(self, h)
        return view

    def set_normalizer(self, normalizer):
        """Attaches a copy of a fitted normalizer (None removes it): from
        then on predict, predict_proba, evaluate and confusion take raw
        samples; forward, backward and fit still take normalized ones."""
        _check(lib.nnkit_net_set_normalizer(
            self.handle, normalizer.handle if normalizer is not None else None))
        self._drop_view()

    def _drop_view(self):
        view = getattr(self, "_nz_view", None)
        if view is not None:
            view.close()
            self._nz_view = None

    def close(self):
        self._drop_view()
        super().close()

    @property
    def class_names(self):
        """The names of the outputs (a list of str), or None."""
        names = []
        for i in range(self.output_size):
            n = lib.nnkit_net_class_name(self.handle, i)
            if n is None:
                break
            names.append(n.decode())
        return names or None

    @class_names.setter
    def class_names(self, names):
        if not names:
            _check(lib.nnkit_net_set_class_names(self.handle, None, 0))
            return
        enc = [str(n).encode() for n in names]
        arr = (ctypes.c_char_p * len(enc))(*enc)
        _check(lib.nnkit_net_set_class_names(self.handle, arr, len(enc)))

    def set_init(self, layer, weights=None, bias=None):
        w, b = _as_init(weights), _as_init(bias)
        _check(lib.nnkit_net_set_init(self.handle, layer, w.handle if w else None,
                                      b.handle if b else None))

    def _buffer(self, fn):
        h = self.handle
        n = lib.nnkit_net_num_params(h)
        p = fn(h)
        if not p:
            raise StateError(E_STATE, "the net has no parameters")
        raw = (ctypes.c_float * n).from_address(ctypes.addressof(p.contents))
        raw._nnkit_net = self  # the view (and every array made from it) keeps the net
        self._pin()
        self._views += 1
        weakref.finalize(raw, self._view_gone).atexit = False
        if _np is not None:  # a live, writable view whose base is raw
            return _np.ctypeslib.as_array(raw)
        return raw

    def _view_gone(self):
        self._views -= 1
        self._unpin()

    @property
    def params(self):
        """Live, writable view of the contiguous parameter buffer (a NumPy
        array, or a ctypes float array without NumPy); net.params[:] = w
        sets the weights. The view, and any array sliced from it, keeps the
        net alive: after net.close() it still reads and writes valid memory
        (the net is freed when the last view goes), while the net itself
        raises StateError. add() and cut() move the buffer, so they raise
        StateError while any view is alive: delete the views first, or keep
        copies (numpy.array(net.params), list(net.params))."""
        return self._buffer(lib.nnkit_net_params)

    @property
    def grads(self):
        """Live view of the gradient buffer, with the rules of .params."""
        return self._buffer(lib.nnkit_net_grads)

    def _batch(self, x, raw=False):
        """x as a C buffer and its sample count; raw: samples for the
        raw-input calls (of the attached normalizer's input size)."""
        self._fwd_batch = None  # any call that runs the net replaces the batch
        xb = _Buffer(x, ctypes.c_float, "f")
        size, what = self.input_size, "net's input size"
        if raw:
            h = lib.nnkit_net_normalizer(self.handle)
            if h:
                size = lib.nnkit_normalizer_in_size(h)
                what = "input size of the net's normalizer"
        n = xb.count // size
        if n * size != xb.count or n == 0:
            raise ShapeError(E_SHAPE, "x has %d values, not a positive multiple of the "
                             "%s %d" % (xb.count, what, size))
        if len(xb.shape) > 1 and math.prod(xb.shape[1:]) != size:
            raise ShapeError(E_SHAPE, "x has samples of shape %s (%d values); the %s "
                             "is %d" % (tuple(xb.shape[1:]), math.prod(xb.shape[1:]),
                                        what, size))
        return xb, n

    def forward(self, x):
        """Outputs for already-normalized samples (the attached normalizer,
        if any, is not applied; predict and predict_proba apply it)."""
        xb, n = self._batch(x)
        nout = lib.nnkit_net_output_size(self.handle)
        out = (ctypes.c_float * (n * nout))()
        _check(lib.nnkit_net_forward(self.handle, xb.ptr, n, out, len(out)))
        self._fwd_batch = n
        return _to_result(out, len(out), (n, nout))

    def backward(self, labels=None, targets=None):
        """Loss of the last forward batch; fills the gradient buffer."""
        # The _Buffer objects must outlive the call: they own the memory.
        h = self.handle
        n = self._fwd_batch
        if n is None:
            raise StateError(E_STATE, "backward() needs a preceding forward() of this "
                             "net (none since it was created, changed or used by "
                             "another call)")
        lb, tb = _check_supervision(labels, targets, n, lib.nnkit_net_output_size(h))
        loss = ctypes.c_double()
        _check(lib.nnkit_net_backward(h, lb.ptr if lb else None,
                                      tb.ptr if tb else None, ctypes.byref(loss)))
        return loss.value

    def predict(self, x):
        """Class ids of raw samples (through the attached normalizer)."""
        xb, n = self._batch(x, raw=True)
        out = (ctypes.c_int32 * n)()
        _check(lib.nnkit_net_predict(out, self.handle, xb.ptr, n))
        return _to_result(out, n, None, ctypes.c_int32)

    def predict_proba(self, x):
        """Class probabilities of raw samples (through the attached
        normalizer)."""
        xb, n = self._batch(x, raw=True)
        out = (ctypes.c_float * (n * self.output_size))()
        _check(lib.nnkit_net_predict_proba(out, len(out), self.handle, xb.ptr, n))
        return _to_result(out, len(out), (n, self.output_size))

    def evaluate(self, ds):
        """(mean loss, accuracy) on a dataset of raw samples (through the
        attached normalizer), in evaluation mode."""
        self._fwd_batch = None
        loss, acc = ctypes.c_double(), ctypes.c_double()
        _check(lib.nnkit_net_evaluate(ctypes.byref(loss), ctypes.byref(acc), self.handle,
                                      ds.handle))
        return loss.value, acc.value

    def fit(self, train, val=None, *, epochs=10, batch_size=64, optimizer=None, lr=0.01,
            seed=0, shuffle=True, verbose=False, log=None, callbacks=(),
            early_stopping=None, **settings):
        """Trains with a Trainer and returns its History.

        train/val are Datasets or Pipelines. callbacks: objects with optional
        on_batch(epoch, batch, loss) / on_epoch(epoch, trainer) methods (or
        plain functions, called per epoch) returning None/0 to go on, >0 to
        stop; an exception stops training and is re-raised here.
        early_stopping: dict(monitor='val_loss', patience=5, min_delta=0).
        """
        opt = optimizer or Optimizer("sgd", lr=lr)
        with Trainer(self, opt, epochs=epochs, batch_size=batch_size, seed=seed,
                     shuffle=shuffle, verbose=verbose, log=log, **settings) as tr:
            for cb in callbacks:
                tr.add_callback(cb)
            if early_stopping:
                tr.set_early_stopping(**early_stopping)
            tr.fit(train, val)
            self.last_trainer_summary = {"stop_reason": tr.stop_reason,
                                         "best_epoch": tr.best_epoch}
            return tr.history()

    def set_trainable(self, layer, trainable=True):
        """Freezes (False) or unfreezes a layer's parameters."""
        _check(lib.nnkit_net_set_trainable(self.handle, layer, int(bool(trainable))))

    def is_trainable(self, layer):
        return bool(lib.nnkit_net_is_trainable(self.handle, layer))

    def set_lr_multiplier(self, layer, mult):
        _check(lib.nnkit_net_set_lr_multiplier(self.handle, layer, float(mult)))

    def cut(self, keep):
        """Keeps the first `keep` layers and removes the others (transfer
        learning: cut before the head, then add() a new one). The kept
        layers' parameters, statistics, trainable flags and learning-rate
        multipliers stay bit for bit; views from .params/.grads taken
        before would be invalid, so cut() raises StateError while any
        is alive, and an Optimizer that has stepped
        this net needs reset(). Returns the net."""
        self._check_no_views("cut()")
        self._fwd_batch = None
        _check(lib.nnkit_net_cut(self.handle, int(keep)))
        return self

    def features(self, x, layer, dataset=False):
        """The outputs of layer `layer` in evaluation mode ("CNN codes"):
        for samples x (as predict takes them) or a Dataset, an array of
        shape (n,) + layer_shape(layer) (nested lists without NumPy). With
        a Dataset and dataset=True, a new Dataset of those outputs with the
        same labels/targets and class names instead, ready to fit a small
        classifier on."""
        layer = int(layer)
        if layer < 0:
            raise InvalidArgument(E_INVALID, "layer %d is negative; the net's layers are "
                                  "numbered from 0 (num_layers is %d)"
                                  % (layer, self.num_layers))
        if isinstance(x, Dataset):
            self._fwd_batch = None
            h = ctypes.c_void_p()
            _check(lib.nnkit_net_features(ctypes.byref(h), self.handle, layer, x.handle))
            ds = Dataset._wrap(h)
            if dataset:
                return ds
            with ds:
                return ds.x
        if dataset:
            raise InvalidArgument(E_INVALID, "features(dataset=True) needs a Dataset, "
                                  "not raw samples")
        xb, n = self._batch(x)
        if not 0 <= layer < self.num_layers:  # the library's sentence
            dummy = (ctypes.c_float * 1)()
            _check(lib.nnkit_net_features_batch(dummy, 1, self.handle, layer, xb.ptr,
                                                n))
        shape = self.layer_shape(layer)
        out = (ctypes.c_float * (n * math.prod(shape)))()
        _check(lib.nnkit_net_features_batch(out, len(out), self.handle, layer, xb.ptr, n))
        return _to_result(out, len(out), (n,) + shape)

    def layer_stats(self, x, labels=None, stats=("act_mean", "act_std", "saturated",
                                                  "dead", "grad_norm")):
        """Per-layer statistics of one batch: {stat: [value per layer]}."""
        xb, n = self._batch(x)
        lb, _ = _check_supervision(labels, None, n, 0)
        keys = (ctypes.c_int * len(stats))(*[LAYER_STATS[k] for k in stats])
        out = (ctypes.c_double * (len(stats) * self.num_layers))()
        _check(lib.nnkit_net_layer_stats(out, len(out), keys, len(stats), self.handle,
                                         xb.ptr, lb.ptr if lb else None, None, n))
        L, S = self.num_layers, len(stats)  # out[l * S + j]: stat j of layer l
        return {k: [out[l * S + j] for l in range(L)] for j, k in enumerate(stats)}

    def confusion(self, ds):
        """Confusion matrix (rows = true class) as a list of lists."""
        self._fwd_batch = None
        k = ds.num_classes
        out = (ctypes.c_size_t * (k * k))()
        _check(lib.nnkit_net_confusion(out, len(out), self.handle, ds.handle))
        return [list(out[r * k:(r + 1) * k]) for r in range(k)]

    def activation_histogram(self, layer, bins=50, lo=-1.0, hi=1.0):
        """Counts of the last forward's activations of a layer in bins over [lo, hi]."""
        out = (ctypes.c_uint64 * bins)()
        _check(lib.nnkit_net_activation_histogram(out, bins, float(lo), float(hi),
                                                  self.handle, layer))
        return list(out)


# Optimizers ------------------------------------------------------------

OPTIMIZERS = {"sgd": 1, "rmsprop": 2, "adagrad": 3, "adam": 4, "adamw": 5, "nadam": 6}
OPT_KEYS = {"lr": 1, "momentum": 2, "nesterov": 3, "weight_decay": 4, "beta1": 5,
            "beta2": 6, "eps": 7, "decay": 8, "clip_norm": 9, "clip_value": 10,
            "momentum_decay": 11}


class Optimizer(_Handle):
    """Optimizer('sgd', lr=0.1); hyperparameters by key with checked bounds."""
    _free = lib.nnkit_optimizer_free

    def __init__(self, kind="sgd", **params):
        super().__init__()
        _check(lib.nnkit_optimizer_create(ctypes.byref(self._h), OPTIMIZERS[kind]))
        self.kind = kind
        for k, v in params.items():
            self[k] = v

    def __setitem__(self, key, value):
        _check(lib.nnkit_optimizer_set(self.handle, OPT_KEYS[key], float(value)))

    def __getitem__(self, key):
        out = ctypes.c_double()
        _check(lib.nnkit_optimizer_get(ctypes.byref(out), self.handle, OPT_KEYS[key]))
        return out.value

    @staticmethod
    def bounds(kind, key):
        """(lo, hi, flags): flags 1 = lo open, 2 = hi open, 4 = integers only."""
        lo, hi, flags = ctypes.c_double(), ctypes.c_double(), ctypes.c_int()
        _check(lib.nnkit_optimizer_bounds(ctypes.byref(lo), ctypes.byref(hi),
                                          ctypes.byref(flags), OPTIMIZERS[kind],
                                          OPT_KEYS[key]))
        return lo.value, hi.value, flags.value

    def step(self, net):
        _check(lib.nnkit_optimizer_step(self.handle, net.handle))

    def train_batch(self, net, x, labels=None, targets=None):
        """Forward, backward and step on one batch in one C call (Keras's
        train_on_batch); returns the batch's loss before the step."""
        xb, n = net._batch(x)
        lb, tb = _check_supervision(labels, targets, n, net.output_size)
        loss = ctypes.c_double()
        _check(lib.nnkit_optimizer_train_batch(ctypes.byref(loss), self.handle, net.handle,
                                               xb.ptr, n, lb.ptr if lb else None,
                                               tb.ptr if tb else None))
        return loss.value

    def set_schedule(self, schedule):
        """Attaches a Schedule; the optimizer takes ownership of it."""
        _check(lib.nnkit_optimizer_set_schedule(self.handle, schedule.handle))
        schedule._disown()
        return self

    def add_regularizer(self, reg):
        """Attaches a Regularizer; the optimizer takes ownership of it."""
        _check(lib.nnkit_optimizer_add_regularizer(self.handle, reg.handle))
        reg._disown()
        return self

    def reset(self):
        lib.nnkit_optimizer_reset(self.handle)

    def get_state(self):
        """(float state, scalar state) for checkpoints."""
        n, m = (lib.nnkit_optimizer_state_size(self.handle),
                lib.nnkit_optimizer_state_scalars(self.handle))
        fs, ds = (ctypes.c_float * max(n, 1))(), (ctypes.c_double * max(m, 1))()
        _check(lib.nnkit_optimizer_get_state(fs, n, ds, m, self.handle))
        return list(fs[:n]), list(ds[:m])

    def set_state(self, net, floats, scalars):
        fb = _Buffer(floats, ctypes.c_float, "f")
        db = (ctypes.c_double * max(len(scalars), 1))(*scalars)
        _check(lib.nnkit_optimizer_set_state(self.handle, net.handle, fb.ptr, fb.count, db,
                                             len(scalars)))

    @property
    def steps(self):
        return lib.nnkit_optimizer_steps(self.handle)


class _Owned(_Handle):
    def _disown(self):
        """C took ownership: never free from Python."""
        self._h = ctypes.c_void_p()
        self._attached = True

    @property
    def handle(self):
        if getattr(self, "_attached", False):
            raise StateError(E_STATE, "%s is attached to an optimizer" %
                             type(self).__name__)
        return _Handle.handle.fget(self)


SCHEDULES = {"constant": 1, "step": 2, "multistep": 3, "exponential": 4, "cosine": 5,
             "cosine_restarts": 6, "plateau": 7}
SCHED_KEYS = {"gamma": 1, "step_size": 2, "t_max": 3, "min_lr": 4, "t_0": 5, "t_mult": 6,
              "patience": 7, "threshold": 8, "threshold_abs": 9, "cooldown": 10,
              "maximize": 11, "warmup_steps": 12, "warmup_start": 13, "per_batch": 14}


class Schedule(_Owned):
    """Schedule('cosine', t_max=20, warmup_steps=2); attach with Optimizer.set_schedule."""
    _free = lib.nnkit_schedule_free

    def __init__(self, kind, milestones=None, **params):
        super().__init__()
        _check(lib.nnkit_schedule_create(ctypes.byref(self._h), SCHEDULES[kind]))
        if milestones is not None:
            arr = (ctypes.c_uint64 * len(milestones))(*milestones)
            _check(lib.nnkit_schedule_set_milestones(self._h, arr, len(milestones)))
        for k, v in params.items():
            _check(lib.nnkit_schedule_set(self._h, SCHED_KEYS[k], float(v)))


REGULARIZERS = {"l2": 1, "l1": 2, "elastic_net": 3, "max_norm": 4}
REG_KEYS = {"strength": 1, "l1_ratio": 2, "max": 3, "with_biases": 4, "with_batchnorm": 5}


class Regularizer(_Owned):
    """Regularizer('l2', 1e-3, layers=[0, 2]); attach with Optimizer.add_regularizer."""
    _free = lib.nnkit_regularizer_free

    def __init__(self, kind, value, layers=None, **params):
        super().__init__()
        _check(lib.nnkit_regularizer_create(ctypes.byref(self._h), REGULARIZERS[kind],
                                            float(value)))
        for k, v in params.items():
            _check(lib.nnkit_regularizer_set(self._h, REG_KEYS[k], float(v)))
        if layers is not None:
            arr = (ctypes.c_size_t * len(layers))(*layers)
            _check(lib.nnkit_regularizer_set_layers(self._h, arr, len(layers)))

    def penalty(self, net):
        out = ctypes.c_double()
        _check(lib.nnkit_regularizer_penalty(ctypes.byref(out), self.handle, net.handle))
        return out.value


# Trainer and history ---------------------------------------------------

TRAIN_KEYS = {"epochs": 1, "batch_size": 2, "shuffle": 3, "seed": 4, "verbose": 5,
              "layer_stats": 16, "sanity": 17, "diverge_factor": 18, "diverge_window": 19,
              "keep_good": 20, "diagnose": 21, "checkpoint_every": 32,
              "checkpoint_best": 33, "checkpoint_keep": 34}
LAYER_STATS = {"act_mean": 1, "act_std": 2, "saturated": 3, "dead": 4, "grad_norm": 5,
               "update_ratio": 6, "param_norm": 7}
HISTORY_TABLES = {"epochs": 1, "batches": 2, "layers": 3}
METRICS = {"train_loss": 1, "train_acc": 2, "val_loss": 3, "val_acc": 4, "lr": 5,
           "seconds": 6, "reg_loss": 7}


_STAT_TITLES = {"act_mean": "activation mean", "act_std": "activation std",
                "saturated": "saturated fraction", "dead": "dead ReLU fraction",
                "grad_norm": "gradient norm", "update_ratio": "update / weight ratio",
                "param_norm": "parameter norm"}
_LOG_STATS = ("grad_norm", "update_ratio", "param_norm")


def _plot_layer_stats(records, stats, names, path, title=None):
    """One subplot per statistic of records {stat: [[value per layer] per
    epoch]}: a line per layer over the epochs, or bars over the layers when
    there is one epoch. Layers where a statistic is NaN throughout (a ReLU's
    gradient norm, a dense layer's dead fraction) are left out of it, and so
    are statistics no layer has (saturation without tanh or sigmoid)."""
    stats = (stats,) if isinstance(stats, str) else tuple(stats)
    unknown = [k for k in stats if k not in LAYER_STATS]
    if unknown:
        raise InvalidArgument(E_INVALID, "unknown statistic %s; known: %s" %
                              (", ".join(unknown), ", ".join(LAYER_STATS)))
    if not any(records.get(k) for k in stats):
        raise StateError(E_STATE, "no per-layer statistics to plot (the trainer's "
                         "layer_stats setting was off, or nothing was measured)")
    stats = [k for k in stats if records.get(k) and
             not all(math.isnan(v) for row in records[k] for v in row)]
    if not stats:
        raise StateError(E_STATE, "every requested statistic is NaN for every layer")
    import matplotlib
    if path:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = len(records[stats[0]])
    L = len(records[stats[0]][0])
    names = list(names) if names else ["layer %d" % l for l in range(L)]
    cmap = plt.get_cmap("tab10" if L <= 10 else "viridis")
    colour = [cmap(l % 10) if L <= 10 else cmap(l / max(L - 1, 1)) for l in range(L)]
    cols = min(3, len(stats))
    rows = (len(stats) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows + 0.8),
                             squeeze=False)
    shown = {}
    for ax, k in zip([a for row in axes for a in row], stats):
        per_layer = [[records[k][e][l] for e in range(epochs)] for l in range(L)]
        keep = [l for l in range(L) if not all(math.isnan(v) for v in per_layer[l])]
        finite = [v for l in keep for v in per_layer[l] if math.isfinite(v)]
        if epochs == 1:
            bars = ax.bar(range(len(keep)), [per_layer[l][0] for l in keep],
                          color=[colour[l] for l in keep])
            ax.set_xticks(range(len(keep)))
            ax.set_xticklabels([str(l) for l in keep])
            ax.set_xlabel("layer")
            for l, b in zip(keep, bars):
                shown.setdefault(l, b)
        else:
            for l in keep:
                line, = ax.plot(range(1, epochs + 1), per_layer[l], ".-",
                                color=colour[l])
                shown.setdefault(l, line)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if k in _LOG_STATS and finite and min(finite) > 0:
            ax.set_yscale("log")
        elif k in ("saturated", "dead"):  # fractions: keep 0 visible
            ax.set_ylim(0, max(finite + [0.0]) * 1.1 or 0.05)
        ax.set_title(_STAT_TITLES[k])
    for ax in [a for row in axes for a in row][len(stats):]:
        ax.axis("off")
    order = sorted(shown)
    fig.legend([shown[l] for l in order], [names[l] for l in order], loc="lower center",
               ncol=min(len(order), 6), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(order) - 1) // 6), 1, 1))
    if path:
        fig.savefig(path)
        plt.close(fig)
    return fig


class History:
    """Per-epoch records: history['val_acc'] is a list, one value per epoch."""

    def __init__(self, columns):
        self.columns = columns
        self.layer_stats = {}
        self.layer_names = []

    def __getitem__(self, key):
        return self.columns[key]

    def __len__(self):
        return len(next(iter(self.columns.values()), []))

    def to_csv(self, path):
        keys = list(self.columns)
        with open(path, "w") as f:
            f.write("epoch," + ",".join(keys) + "\n")
            for i in range(len(self)):
                f.write("%d," % (i + 1) + ",".join(repr(self.columns[k][i]) for k in keys)
                        + "\n")

    def plot(self, path=None):
        """Loss and accuracy curves (matplotlib); saves a PNG when path is given."""
        import matplotlib
        if path:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        epochs = range(1, len(self) + 1)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        a1.plot(epochs, self["train_loss"], label="train")
        if not all(math.isnan(v) for v in self["val_loss"]):
            a1.plot(epochs, self["val_loss"], label="val")
        a1.set_xlabel("epoch")
        a1.set_ylabel("loss")
        a1.legend()
        a2.plot(epochs, self["train_acc"], label="train")
        if not all(math.isnan(v) for v in self["val_acc"]):
            a2.plot(epochs, self["val_acc"], label="val")
        a2.set_xlabel("epoch")
        a2.set_ylabel("accuracy")
        a2.legend()
        fig.tight_layout()
        if path:
            fig.savefig(path)
            plt.close(fig)
        return fig

    def plot_layer_stats(self, path=None, stats=("act_mean", "act_std", "saturated", "dead",
                                                 "grad_norm", "update_ratio")):
        """Per-layer statistics per epoch (matplotlib): one subplot per
        statistic, one line per layer; saves a PNG when path is given."""
        return _plot_layer_stats(self.layer_stats, stats, self.layer_names, path)


class Trainer(_Handle):
    """Drives a Net and an Optimizer, borrowed as in C: the trainer keeps
    them alive, and net.close() or optimizer.close() while it exists (also
    from a callback during fit) only closes them for Python; the C objects
    are freed when the trainer is, and the trainer then raises StateError
    (fit stops with it)."""
    _free = lib.nnkit_trainer_free

    def __init__(self, net, optimizer, *, log=None, **settings):
        super().__init__()
        self._net, self._opt = net, optimizer  # keep borrowed handles alive
        _check(lib.nnkit_trainer_create(ctypes.byref(self._h), net.handle,
                                        optimizer.handle))
        for obj in (net, optimizer):
            self._borrow(obj)
        self._log_cb = None
        if log is not None:
            self.set_logger(log)
        for k, v in settings.items():
            self[k] = v

    @property
    def handle(self):
        h = _Handle.handle.fget(self)
        for obj in (self._net, self._opt):
            if obj.closed:
                raise StateError(E_STATE, "the trainer's %s is closed" %
                                 type(obj).__name__)
        self._net._fwd_batch = None  # the trainer runs the net
        return h

    def _closed_during_fit(self):
        """A StateError naming what was closed while fit ran, or None."""
        for obj in [self, self._net, self._opt] + list(getattr(self, "_fit_objs", ())):
            if obj.closed:
                name = "trainer" if obj is self else type(obj).__name__
                return StateError(E_STATE, "the %s was closed during fit(); close it "
                                  "after fit returns" % name)
        return None

    def set_logger(self, fn):
        """fn(line) receives each log line; None restores standard output."""
        if fn is None:
            self._log_cb = None
            lib.nnkit_trainer_set_logger(self.handle, LOG_FN(), None)
            return
        self._log_cb = LOG_FN(lambda line, user: fn(line.decode()))
        lib.nnkit_trainer_set_logger(self.handle, self._log_cb, None)

    def __setitem__(self, key, value):
        _check(lib.nnkit_trainer_set(self.handle, TRAIN_KEYS[key], float(value)))

    def __getitem__(self, key):
        out = ctypes.c_double()
        _check(lib.nnkit_trainer_get(ctypes.byref(out), self.handle, TRAIN_KEYS[key]))
        return out.value

    @staticmethod
    def bounds(key):
        """(lo, hi, flags) of a trainer setting, as Optimizer.bounds."""
        lo, hi, flags = ctypes.c_double(), ctypes.c_double(), ctypes.c_int()
        _check(lib.nnkit_trainer_bounds(ctypes.byref(lo), ctypes.byref(hi),
                                        ctypes.byref(flags), TRAIN_KEYS[key]))
        return lo.value, hi.value, flags.value

    def add_callback(self, cb):
        """Per-epoch and/or per-batch Python callback (see Net.fit)."""
        if not hasattr(self, "_cbs"):
            self._cbs, self._cb_error = [], None
        trainer = self

        def guard(fn, *args):
            if trainer._cb_error is not None:
                return -1
            try:
                r = fn(*args)
            except BaseException as e:  # re-raised by fit()
                trainer._cb_error = e
                return -1
            closed = trainer._closed_during_fit()
            if closed is not None:  # stop now; the C objects are still alive
                trainer._cb_error = closed
                return -1
            try:
                return 0 if r is None else int(r)
            except BaseException as e:
                trainer._cb_error = e
                return -1

        on_epoch = getattr(cb, "on_epoch", None)
        on_batch = getattr(cb, "on_batch", None)
        if on_epoch is None and on_batch is None and callable(cb):
            on_epoch = cb
        if on_epoch is not None:
            f = EPOCH_FN(lambda tr, epoch, user: guard(on_epoch, epoch, trainer))
            self._cbs.append(f)
            _check(lib.nnkit_trainer_add_epoch_callback(self.handle, f, None))
        if on_batch is not None:
            f = BATCH_FN(lambda tr, epoch, batch, loss, user:
                         guard(on_batch, epoch, batch, loss))
            self._cbs.append(f)
            _check(lib.nnkit_trainer_add_batch_callback(self.handle, f, None))
        return self

    def set_early_stopping(self, monitor="val_loss", patience=5, min_delta=0.0):
        _check(lib.nnkit_trainer_set_early_stopping(self.handle, METRICS[monitor],
                                                    int(patience), float(min_delta)))
        return self

    def fit(self, train, val=None):
        """Trains on a Dataset or Pipeline (val likewise, or None)."""
        self._cb_error = None
        h = self.handle
        objs = [self, train] + ([val] if val is not None else [])
        pinned = []
        try:
            for obj in objs:  # a callback may close any of them: C keeps using them
                obj._pin()
                pinned.append(obj)
            self._fit_objs = objs[1:]
            if isinstance(train, Pipeline):
                st = lib.nnkit_trainer_fit_pipeline(h, train.handle,
                                                    val.handle if val is not None else None)
            else:
                st = lib.nnkit_trainer_fit(h, train.handle,
                                           val.handle if val is not None else None)
            closed = self._closed_during_fit()
        finally:
            self._fit_objs = ()
            for obj in reversed(pinned):
                obj._unpin()
        if getattr(self, "_cb_error", None) is not None:
            err, self._cb_error = self._cb_error, None
            raise err
        if closed is not None:  # a logger closed something
            raise closed
        _check(st)
        return self

    def save_checkpoint(self, path):
        """Writes the whole training state (net, optimizer, schedule, settings,
        position in the fit, history, early stopping) to path, atomically."""
        _check(lib.nnkit_trainer_save_checkpoint(self.handle, os.fsencode(path)))
        return self

    def resume(self, path):
        """Restores a checkpoint into this trainer (its net and optimizer built
        as the checkpoint's were); the next fit() continues the checkpoint's
        fit where it stood, to the same weights as the uninterrupted run."""
        _check(lib.nnkit_trainer_resume(self.handle, os.fsencode(path)))
        return self

    def set_checkpoint_dir(self, path):
        """Folder of the periodic checkpoints (checkpoint_every,
        checkpoint_best, checkpoint_keep); None turns them off."""
        _check(lib.nnkit_trainer_set_checkpoint_dir(
            self.handle, os.fsencode(path) if path is not None else None))
        return self

    @property
    def stop_reason(self):
        r = lib.nnkit_trainer_stop_reason(self.handle)
        return r.decode() if r else ""

    @property
    def best_epoch(self):
        out = ctypes.c_size_t()
        if lib.nnkit_trainer_best_epoch(ctypes.byref(out), self.handle) != OK:
            return None
        return out.value

    def find_lr(self, train, lr_min=1e-6, lr_max=10.0, steps=100):
        """LR range test on a copy of the weights: (suggested, lrs, losses)."""
        lrs, losses = (ctypes.c_double * steps)(), (ctypes.c_double * steps)()
        sugg, count = ctypes.c_double(), ctypes.c_size_t()
        _check(lib.nnkit_trainer_find_lr(ctypes.byref(sugg), lrs, losses, steps,
                                         ctypes.byref(count), self.handle, train.handle,
                                         float(lr_min), float(lr_max), int(steps)))
        n = count.value
        return sugg.value, list(lrs[:n]), list(losses[:n])

    def diagnose(self):
        """Diagnosis of the recorded curves: Diagnosis (verdicts + report)."""
        h = ctypes.c_void_p()
        _check(lib.nnkit_trainer_diagnose(ctypes.byref(h), self.handle))
        return Diagnosis._take(h)

    def sanity_check(self, train):
        """Runs the pre-training checks; returns the report text."""
        _check(lib.nnkit_trainer_sanity_check(self.handle, train.handle))
        r = lib.nnkit_trainer_sanity_report(self.handle)
        return r.decode() if r else ""

    def save_history(self, path, table="epochs", fmt="csv"):
        """Writes the epoch, batch or layer table as CSV or JSON Lines (atomic)."""
        h = lib.nnkit_trainer_history(self.handle)
        fn = lib.nnkit_history_save_csv if fmt == "csv" else lib.nnkit_history_save_jsonl
        _check(fn(h, HISTORY_TABLES[table], str(path).encode()))

    @property
    def epochs_done(self):
        return lib.nnkit_trainer_epochs_done(self.handle)

    def metric(self, epoch, name):
        out = ctypes.c_double()
        _check(lib.nnkit_trainer_metric(ctypes.byref(out), self.handle, epoch,
                                        METRICS[name]))
        return out.value

    def history(self):
        cols = {name: [self.metric(e, name) for e in range(self.epochs_done)]
                for name in METRICS}
        h = lib.nnkit_trainer_history(self.handle)
        nb = lib.nnkit_history_batches(h) if h else 0
        losses, lrs = (ctypes.c_double * max(nb, 1))(), (ctypes.c_double * max(nb, 1))()
        got = ctypes.c_size_t()
        if nb:
            _check(lib.nnkit_history_batch_losses(losses, lrs, nb, ctypes.byref(got), h, 0))
        hist = History(cols)
        hist.batch_losses = list(losses[:got.value])
        hist.layer_stats = self._layer_stats(h)
        net = self._net
        hist.layer_names = ["%d %s" % (i, net.describe(i).split()[0])
                            for i in range(net.num_layers)]
        return hist

    def _layer_stats(self, h):
        """{stat: [[value per layer] per epoch]} from the recorded history."""
        if not h:
            return {}
        L = lib.nnkit_history_num_layers(h)
        if L == 0:
            return {}
        names = list(LAYER_STATS)
        keys = (ctypes.c_int * len(names))(*[LAYER_STATS[k] for k in names])
        out = {k: [] for k in names}
        for e in range(lib.nnkit_history_epochs(h)):
            buf = (ctypes.c_double * (len(names) * L))()
            if lib.nnkit_history_layer_stats(buf, len(buf), keys, len(names), h, e) != OK:
                return {}
            S = len(names)  # buf[l * S + j]: stat j of layer l
            for j, k in enumerate(names):
                out[k].append([buf[l * S + j] for l in range(L)])
        return out


VERDICTS = {"healthy": 1, "lr_too_high": 2, "oscillating": 3, "lr_too_low": 4,
            "overfitting": 5, "underfitting": 6, "vanishing": 7, "saturating": 8,
            "dead_relus": 9, "noisy_batches": 10, "too_short": 11}


def verdict_name(verdict):
    """The name a Diagnosis reports for a VERDICTS key, e.g. 'learning rate too low'."""
    return lib.nnkit_verdict_name(VERDICTS[verdict]).decode()


class Diagnosis(_Handle):
    """What the curves show: .verdicts [(name, evidence, advice)], .report."""
    _free = lib.nnkit_diagnosis_free

    @classmethod
    def _take(cls, h):
        d = cls.__new__(cls)
        _Handle.__init__(d)
        d._h = h
        return d

    @property
    def verdicts(self):
        out = []
        for i in range(lib.nnkit_diagnosis_count(self.handle)):
            v = lib.nnkit_diagnosis_verdict(self.handle, i)
            out.append((lib.nnkit_verdict_name(v).decode(),
                        lib.nnkit_diagnosis_evidence(self.handle, i).decode(),
                        lib.nnkit_diagnosis_advice(self.handle, i).decode()))
        return out

    @property
    def report(self):
        return lib.nnkit_diagnosis_report(self.handle).decode()

    def __str__(self):
        return self.report


class Monitor:
    """Per-layer statistics of a fixed probe batch, measured in evaluation
    mode after every epoch (pass it to Net.fit's callbacks) or by measure();
    plot() draws them. net and the probe are borrowed."""

    def __init__(self, net, x, labels=None, stats=("act_mean", "act_std", "saturated",
                                                    "dead", "grad_norm"), size=256):
        if isinstance(x, Dataset):  # the first `size` samples and their labels
            with x.subset(range(min(int(size), len(x)))) as probe:
                x, labels = probe.x, probe.labels
        stats = (stats,) if isinstance(stats, str) else tuple(stats)
        self.net, self.x, self.labels, self.stats = net, x, labels, stats
        self.records = {k: [] for k in self.stats}

    def measure(self):
        """Measures the probe now and records it: {stat: [value per layer]}.
        Parameters, batch-norm statistics and the mode are left as they were;
        the gradient buffer is overwritten when there are labels."""
        was_training = self.net.training
        self.net.training = False
        try:
            got = self.net.layer_stats(self.x, self.labels, stats=self.stats)
        finally:
            self.net.training = was_training
        for k in self.stats:
            self.records[k].append(got[k])
        return got

    def on_epoch(self, epoch, trainer):
        self.measure()

    def __len__(self):
        return len(self.records[self.stats[0]]) if self.stats else 0

    def plot(self, path=None, stats=None, title=None):
        """One subplot per statistic: lines per layer over the measurements,
        bars per layer after a single one; saves a PNG when path is given."""
        names = ["%d %s" % (i, self.net.describe(i).split()[0])
                 for i in range(self.net.num_layers)]
        return _plot_layer_stats(self.records, stats or self.stats, names, path, title)


from .search import search, uniform, log_uniform, integer, choice  # noqa: E402  (hyperparameter search)
