"""Data: Dataset (samples with labels or targets), Normalizer, Augmenter and
Pipeline (include/nnkit/data.h, normalizer.h, pipeline.h)."""
from __future__ import annotations

import ctypes
import math
import os
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ._arrays import Buffer, as_int, is_bytes, label_buffer, samples, to_result
from ._handle import Handle
from ._lib import lib
from ._names import lookup, table
from ._prototypes import NNKIT_CSV_NO_LABEL
from .errors import E_INVALID, E_SHAPE, E_STATE, InvalidArgument, ShapeError, StateError

__all__ = ["Dataset", "Normalizer", "Augmenter", "Pipeline", "NORMALIZERS", "NORM_KEYS",
           "AUGMENTATIONS", "PIPE_KEYS", "CSV_HEADERS"]

NORMALIZERS = table("nnkit_norm_kind")
NORM_KEYS = table("nnkit_norm_param")
AUGMENTATIONS = table("nnkit_aug_kind")
PIPE_KEYS = table("nnkit_pipe_param")
CSV_HEADERS = table("nnkit_csv_header")

PathLike = Union[str, "os.PathLike[str]"]


def _path(p: PathLike) -> bytes:
    return os.fsencode(p)


class Dataset(Handle):
    """Samples read as float32 (NCHW per sample) with class labels or float
    targets.

    ``Dataset(x, labels)``: x an array (or nested lists) of shape
    (n,) + sample shape, labels n integer class ids. ``Dataset(x,
    targets=y)``: y float targets, (n,) or (n, k), for a regression net.
    A uint8 array (or bytes) with labels is kept as bytes in memory, a
    quarter of float32's size, and reads as the floats 0..255 (scale it
    with .scale(1 / 255)); so are IDX ubyte files."""
    _free = lib.nnkit_dataset_free

    def __init__(self, x: Any, labels: Any = None, *, shape: Optional[Sequence[int]] = None,
                 num_classes: int = 0, targets: Any = None) -> None:
        super().__init__()
        if labels is not None and targets is not None:
            raise InvalidArgument(E_INVALID, "a Dataset has labels or targets, not both")
        compact = targets is None and is_bytes(x)
        xb = (Buffer(x, ctypes.c_uint8, "B", "x") if compact
              else Buffer(x, ctypes.c_float, "f", "x"))
        if shape is None:
            shape = xb.shape[1:] if len(xb.shape) > 1 else (1,)
        shape = tuple(as_int(d, "a sample dimension", 1) for d in shape)
        per = math.prod(shape)
        if per == 0 or xb.count % per or xb.count == 0:
            raise ShapeError(E_SHAPE, "x has shape %s (%d values), not a positive multiple "
                             "of the sample shape %s (%d values)"
                             % (tuple(xb.shape), xb.count, shape, per))
        count = xb.count // per
        cshape = (ctypes.c_size_t * len(shape))(*shape)
        if targets is not None:
            tb = Buffer(targets, ctypes.c_float, "f", "targets")
            if tb.count == 0 or tb.count % count or (len(tb.shape) > 1 and tb.shape[0] != count):
                raise ShapeError(E_SHAPE, "targets have shape %s for %d samples; expected "
                                 "(%d,) or (%d, k)" % (tuple(tb.shape), count, count, count))
            lib.nnkit_dataset_from_targets(ctypes.byref(self._h), xb.ptr, tb.ptr,
                                           count, cshape, len(shape), tb.count // count)
        else:
            lp = None
            if labels is not None:
                lb = label_buffer(labels)
                if lb.count != count or len(lb.shape) > 1:
                    raise ShapeError(E_SHAPE, "labels have shape %s for %d samples; "
                                     "expected (%d,) class ids"
                                     % (tuple(lb.shape), count, count))
                lp = lb.ptr
            make = lib.nnkit_dataset_from_bytes if compact else lib.nnkit_dataset_from_buffers
            make(ctypes.byref(self._h), xb.ptr, lp, count, cshape, len(shape),
                 as_int(num_classes, "num_classes", 0, 2 ** 32 - 1))

    def __repr__(self) -> str:
        if self.closed:
            return "Dataset(closed)"
        what = ("%d classes" % self.num_classes if self.num_classes else
                "targets of %d" % self.target_dim if self.target_dim else "unlabelled")
        return "Dataset(%s samples of %s, %s)" % (format(len(self), ","), self.shape, what)

    @classmethod
    def load_idx(cls, images: PathLike, labels: Optional[PathLike] = None,
                 num_classes: int = 0) -> "Dataset":
        """Loads IDX files (gzip or plain), the MNIST format."""
        h = ctypes.c_void_p()
        lib.nnkit_dataset_load_idx(ctypes.byref(h), _path(images),
                                   _path(labels) if labels else None, int(num_classes))
        return cls._wrap(h)

    def save_idx(self, images: PathLike, labels: Optional[PathLike] = None,
                 gzip: bool = True) -> None:
        """Writes the samples (and labels) as IDX files, gzipped by default."""
        lib.nnkit_dataset_save_idx(self.handle, _path(images),
                                   _path(labels) if labels else None, int(bool(gzip)))

    def subset(self, indices: Iterable[int]) -> "Dataset":
        """A new Dataset of the samples at indices (copied, in that order)."""
        indices = [as_int(i, "an index", 0) for i in indices]
        idx = (ctypes.c_size_t * len(indices))(*indices)
        h = ctypes.c_void_p()
        lib.nnkit_dataset_subset(ctypes.byref(h), self.handle, idx, len(indices))
        return Dataset._wrap(h)

    def scale(self, scale: float, shift: float = 0.0) -> "Dataset":
        """x = x * scale + shift, in place; returns the dataset."""
        lib.nnkit_dataset_scale(self.handle, float(scale), float(shift))
        return self

    def __len__(self) -> int:
        return lib.nnkit_dataset_count(self.handle)

    @property
    def shape(self) -> Tuple[int, ...]:
        """The shape of one sample, e.g. (1, 28, 28)."""
        h = self.handle
        return tuple(lib.nnkit_dataset_dim(h, i) for i in range(lib.nnkit_dataset_ndim(h)))

    @property
    def sample_size(self) -> int:
        """Floats per sample (the product of shape)."""
        return lib.nnkit_dataset_sample_size(self.handle)

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for targets or no labels)."""
        return lib.nnkit_dataset_num_classes(self.handle)

    @property
    def target_dim(self) -> int:
        """Floats per target (0 for a labelled set)."""
        return lib.nnkit_dataset_target_dim(self.handle)

    @property
    def x(self) -> Any:
        """The samples, a float32 copy of shape (n,) + shape."""
        n = len(self) * self.sample_size
        return to_result(lib.nnkit_dataset_data(self.handle), n, (len(self),) + self.shape)

    @property
    def labels(self) -> Any:
        """The class ids (int32 copy), or None."""
        p = lib.nnkit_dataset_labels(self.handle)
        return to_result(p, len(self), None, ctypes.c_int32) if p else None

    @property
    def targets(self) -> Any:
        """The float targets, shape (n, target_dim), or None."""
        p = lib.nnkit_dataset_targets(self.handle)
        return to_result(p, len(self) * self.target_dim, (len(self), self.target_dim)) \
            if p else None

    def class_counts(self) -> List[int]:
        """Samples per class, a list of num_classes counts."""
        k = self.num_classes
        out = (ctypes.c_size_t * max(k, 1))()
        lib.nnkit_dataset_class_counts(out, k, self.handle)
        return list(out[:k])

    @classmethod
    def load_csv(cls, path: PathLike, delimiter: str = ",", header: Union[str, bool] = "auto",
                 label: Union[str, int, None] = -1) -> "Dataset":
        """CSV: label is a column name, a 0-based index (negative counts from
        the end; -1, the default, is the last column) or None (unlabelled);
        header is 'auto', 'yes'/True or 'no'/False."""
        hdr = {True: "yes", False: "no"}.get(header, header) if isinstance(header, bool) \
            else header
        hdr = lookup(CSV_HEADERS, hdr, "CSV header mode")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise TypeError("delimiter must be one character, not %r" % (delimiter,))
        name = label.encode() if isinstance(label, str) else None
        index = NNKIT_CSV_NO_LABEL if label is None else (
            as_int(label, "the label column") if name is None else 0)
        h = ctypes.c_void_p()
        lib.nnkit_dataset_load_csv(ctypes.byref(h), _path(path), delimiter.encode(), hdr,
                                   name, index)
        return cls._wrap(h)

    @classmethod
    def load_image_folder(cls, root: PathLike, channels: int = 1, height: int = 28,
                          width: int = 28, resize: bool = True) -> "Dataset":
        """ImageFolder layout: one sub-folder per class of PNG/JPEG files."""
        h = ctypes.c_void_p()
        lib.nnkit_dataset_load_image_folder(ctypes.byref(h), _path(root),
                                            as_int(channels, "channels", 1),
                                            as_int(height, "height", 0),
                                            as_int(width, "width", 0), int(bool(resize)))
        return cls._wrap(h)

    @classmethod
    def concat(cls, parts: Sequence["Dataset"]) -> "Dataset":
        """One Dataset of the samples of parts, in order (same sample shape)."""
        arr = (ctypes.c_void_p * len(parts))(*[p.handle.value for p in parts])
        h = ctypes.c_void_p()
        lib.nnkit_dataset_concat(ctypes.byref(h), arr, len(parts))
        return cls._wrap(h)

    def class_name(self, i: int) -> Optional[str]:
        """The name of class i, or None."""
        r = lib.nnkit_dataset_class_name(self.handle, as_int(i, "the class", 0))
        return r.decode() if r else None

    def split(self, fraction: float = 0.2, seed: int = 0) -> Tuple["Dataset", "Dataset"]:
        """Stratified hold-out: (train, held_out)."""
        a, b = ctypes.c_void_p(), ctypes.c_void_p()
        lib.nnkit_dataset_split(ctypes.byref(a), ctypes.byref(b), self.handle,
                                float(fraction), int(seed))
        return Dataset._wrap(a), Dataset._wrap(b)

    def fold(self, k: int, i: int, seed: int = 0) -> Tuple["Dataset", "Dataset"]:
        """Fold i of a stratified k-fold: (train, val)."""
        a, b = ctypes.c_void_p(), ctypes.c_void_p()
        lib.nnkit_dataset_fold(ctypes.byref(a), ctypes.byref(b), self.handle,
                               as_int(k, "k", 0), as_int(i, "the fold", 0), int(seed))
        return Dataset._wrap(a), Dataset._wrap(b)


class Normalizer(Handle):
    """Normalizer('zca_whiten', epsilon=0.1).fit(train); then .apply(ds).
    Kinds: NORMALIZERS; settings: NORM_KEYS."""
    _free = lib.nnkit_normalizer_free

    def __init__(self, kind: str, **params: float) -> None:
        super().__init__()
        lib.nnkit_normalizer_create(ctypes.byref(self._h),
                                    lookup(NORMALIZERS, kind, "normalizer"))
        self._kind = kind
        for k, v in params.items():
            lib.nnkit_normalizer_set(self._h, lookup(NORM_KEYS, k, "normalizer setting"),
                                     float(v))

    def __repr__(self) -> str:
        if self.closed:
            return "Normalizer(closed)"
        fitted = ("fitted, %d -> %d" % (self.in_size, self.out_size) if self.in_size
                  else "not fitted")
        return "Normalizer(%s)" % fitted

    def fit(self, ds: Dataset) -> "Normalizer":
        """Learns the statistics from ds (the training set only)."""
        lib.nnkit_normalizer_fit(self.handle, ds.handle)
        return self

    def apply(self, ds: Dataset) -> Dataset:
        """Transforms a dataset in place."""
        lib.nnkit_normalizer_apply(self.handle, ds.handle)
        return ds

    def transform(self, x: Any) -> Any:
        """The normalized samples of x, shape (n, out_size)."""
        n_in = lib.nnkit_normalizer_in_size(self.handle)
        n_out = lib.nnkit_normalizer_out_size(self.handle)
        if n_in == 0:
            raise StateError(E_STATE, "the normalizer is not fitted; fit() it first")
        xb, count = samples(x, (n_in,), "x", "the normalizer")
        out = (ctypes.c_float * (count * n_out))()
        lib.nnkit_normalizer_transform(self.handle, xb.ptr, out, count)
        return to_result(out, len(out), (count, n_out))

    @property
    def in_size(self) -> int:
        """Floats per input sample (0 before fitting)."""
        return lib.nnkit_normalizer_in_size(self.handle)

    @property
    def out_size(self) -> int:
        """Floats per output sample: in_size, or the kept components of PCA."""
        return lib.nnkit_normalizer_out_size(self.handle)

    def compare(self, ds: Dataset) -> Tuple[float, float]:
        """(max |mean diff|, max |std diff|) of the fit subset vs ds."""
        a, b = ctypes.c_double(), ctypes.c_double()
        lib.nnkit_normalizer_compare(ctypes.byref(a), ctypes.byref(b), self.handle,
                                     ds.handle)
        return a.value, b.value


class _NetNormalizer(Normalizer):
    """The normalizer a Net carries (Net.normalizer): a borrowed view,
    valid while the net keeps it; it can transform and be saved or attached
    to another net, not be refitted."""

    def __init__(self, net: Any, handle: int) -> None:
        Handle.__init__(self)
        self._h = ctypes.c_void_p(handle)
        self._net = net  # keeps the owner alive

    def fit(self, ds: Dataset) -> "Normalizer":
        """Refused: this normalizer belongs to a net."""
        raise StateError(E_STATE, "this normalizer belongs to a net; fit a new "
                         "Normalizer and attach it with Net.set_normalizer")

    def close(self) -> None:
        """Forgets the view (the net frees the normalizer)."""
        self._h = ctypes.c_void_p()


class Augmenter(Handle):
    """A chain of random transforms: Augmenter().add('rotate', 0.5, -15, 15).
    Kinds: AUGMENTATIONS."""
    _free = lib.nnkit_augmenter_free

    def __init__(self, transforms: Iterable[Sequence[Any]] = ()) -> None:
        super().__init__()
        lib.nnkit_augmenter_create(ctypes.byref(self._h))
        for t in transforms:
            self.add(*t)

    def __repr__(self) -> str:
        return "Augmenter(closed)" if self.closed else "Augmenter(%d transforms)" % len(self)

    def add(self, kind: str, probability: float = 1.0, a: float = 0.0,
            b: float = 0.0) -> "Augmenter":
        """Appends a transform applied with the given probability; a and b
        are its range (see include/nnkit/pipeline.h)."""
        lib.nnkit_augmenter_add(self.handle, lookup(AUGMENTATIONS, kind, "augmentation"),
                                float(probability), float(a), float(b))
        return self

    def __len__(self) -> int:
        return lib.nnkit_augmenter_count(self.handle)

    def apply(self, x: Any, shape: Sequence[int], seed: int = 0, epoch: int = 0,
              first_index: int = 0) -> Any:
        """Augments samples of the given shape; returns a new array."""
        shape = tuple(as_int(d, "a sample dimension", 1) for d in shape)
        xb, count = samples(x, shape, "x", "the augmenter")
        buf = (ctypes.c_float * xb.count)()
        ctypes.memmove(buf, xb.ptr, xb.count * 4)
        cshape = (ctypes.c_size_t * len(shape))(*shape)
        lib.nnkit_augmenter_apply(self.handle, buf, count, cshape, len(shape), int(seed),
                                  int(epoch), int(first_index))
        return to_result(buf, xb.count, (count,) + shape)


class Pipeline(Handle):
    """dataset -> normalizer -> augmenter -> shuffled batches (prefetched).
    Settings: PIPE_KEYS."""
    _free = lib.nnkit_pipeline_free

    def __init__(self, ds: Dataset, normalizer: Optional[Normalizer] = None,
                 augmenter: Optional[Augmenter] = None, **settings: float) -> None:
        super().__init__()
        if not isinstance(ds, Dataset):
            raise TypeError("Pipeline takes a Dataset, not %s" % type(ds).__name__)
        self._ds = ds  # borrowed by the C pipeline: keep it alive
        lib.nnkit_pipeline_create(ctypes.byref(self._h), ds.handle)
        self._borrow(ds)  # ds.close() now waits for this pipeline (normalizer/augmenter are copied)
        if normalizer is not None:
            lib.nnkit_pipeline_set_normalizer(self._h, normalizer.handle)
        if augmenter is not None:
            lib.nnkit_pipeline_set_augmenter(self._h, augmenter.handle)
        for k, v in settings.items():
            self[k] = v

    def __repr__(self) -> str:
        if self.closed:
            return "Pipeline(closed)"
        return "Pipeline(%d batches of %d per epoch)" % (len(self), int(self["batch_size"]))

    def __setitem__(self, key: str, value: float) -> None:
        lib.nnkit_pipeline_set(self.handle, lookup(PIPE_KEYS, key, "pipeline setting"),
                               float(value))

    def __getitem__(self, key: str) -> float:
        out = ctypes.c_double()
        lib.nnkit_pipeline_get(ctypes.byref(out), self.handle,
                               lookup(PIPE_KEYS, key, "pipeline setting"))
        return out.value

    @property
    def handle(self) -> ctypes.c_void_p:
        """The C handle; StateError once it or its Dataset is closed."""
        h = Handle.handle.fget(self)
        if self._ds.closed:
            raise StateError(E_STATE, "the pipeline's Dataset is closed")
        return h

    @property
    def dataset(self) -> Dataset:
        """The Dataset the pipeline reads (borrowed)."""
        return self._ds

    def __len__(self) -> int:
        return lib.nnkit_pipeline_batches_per_epoch(self.handle)

    @property
    def sample_size(self) -> int:
        """Floats per output sample (after the normalizer)."""
        return lib.nnkit_pipeline_sample_size(self.handle)

    @property
    def shape(self) -> Tuple[int, ...]:
        """The shape of one output sample (after the normalizer)."""
        h = self.handle
        return tuple(lib.nnkit_pipeline_dim(h, i) for i in range(lib.nnkit_pipeline_ndim(h)))

    def batches(self, epoch: int = 0) -> Iterator[Tuple[Any, Any]]:
        """Yields (x, y) per batch of one epoch: x of shape (n,) + shape,
        y the n class ids, or the (n, target_dim) float targets of a
        regression set, or None for an unlabelled one."""
        lib.nnkit_pipeline_begin_epoch(self.handle, as_int(epoch, "epoch", 0))
        per = lib.nnkit_pipeline_sample_size(self.handle)
        shape = self.shape
        tdim = self._ds.target_dim
        while True:
            n = ctypes.c_size_t()
            lib.nnkit_pipeline_next(ctypes.byref(n), self.handle)
            if n.value == 0:
                return
            x = to_result(lib.nnkit_pipeline_batch_data(self.handle), n.value * per,
                          (n.value,) + shape)
            lp = lib.nnkit_pipeline_batch_labels(self.handle)
            tp = lib.nnkit_pipeline_batch_targets(self.handle)
            if lp:
                y = to_result(lp, n.value, None, ctypes.c_int32)
            elif tp:
                y = to_result(tp, n.value * tdim, (n.value, tdim))
            else:
                y = None
            yield x, y
