"""nnkit: train neural networks on the CPU, from Python, through libnnkit.

A ctypes layer over the C library, one module per noun:

  nnkit.data     Dataset, Normalizer, Augmenter, Pipeline
  nnkit.layers   Init and the layers (Dense, Conv2D, ReLU, Dropout, ...)
  nnkit.model    Net, with Keras-style fit / evaluate / predict on arrays
  nnkit.optim    Optimizer, Schedule, Regularizer
  nnkit.train    Trainer, History, LRFinder
  nnkit.monitor  Diagnosis, Monitor
  nnkit.plot     the pictures (training curves, confusion matrix, filters,
                 histograms, learning-rate finder), as PNG
  nnkit.errors   Error and one subclass per NNKIT_E_* status

Every name is also importable from ``nnkit`` itself. Every C error is an
``nnkit.Error`` subclass carrying the C sentence; bad Python inputs raise
ValueError/TypeError naming the expected and the given shape or dtype.
NumPy is optional (lists come back without it); matplotlib only for the
pictures. ``nnkit.__library__`` is the path of the libnnkit loaded,
``nnkit.__version__`` the package's version, ``nnkit.version()`` the
library's.
"""
from __future__ import annotations

from ._lib import lib, PACKAGE_VERSION, library_path
from ._arrays import _np, _flatten
from ._arrays import Buffer as _Buffer, label_buffer as _label_buffer, \
    to_result as _to_result, as_int as _as_int, is_bytes as _is_bytes
from ._handle import Handle as _Handle
from .errors import (Error, InvalidArgument, InvalidType, OutOfMemory, IOFailure, FormatError,  # noqa: F401
                     ShapeError, StateError, Diverged, Aborted, OK, E_INVALID, E_NOMEM,
                     E_IO, E_FORMAT, E_SHAPE, E_STATE, E_DIVERGED, E_USER)
from .errors import check as _check
from .data import (Dataset, Normalizer, Augmenter, Pipeline, NORMALIZERS, NORM_KEYS,  # noqa: F401
                   AUGMENTATIONS, PIPE_KEYS, CSV_HEADERS, _NetNormalizer)
from .layers import (Init, Layer, Dense, Activation, ReLU, Tanh, Sigmoid, Softmax,  # noqa: F401
                     LeakyReLU, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool, Flatten,
                     BatchNorm, LayerNorm, Dropout, SpatialDropout, INIT_KINDS, ACT, SAME)
from .model import Net, LOSS, LAYER_KEYS, LAYER_STATS, _check_supervision  # noqa: F401
from .optim import (Optimizer, Schedule, Regularizer, OPTIMIZERS, OPT_KEYS,  # noqa: F401
                    SCHEDULES, SCHED_KEYS, REGULARIZERS, REG_KEYS, BOUND_FLAGS)
from .train import Trainer, History, LRFinder, TRAIN_KEYS, METRICS, HISTORY_TABLES  # noqa: F401
from .monitor import Diagnosis, Monitor, VERDICTS, verdict_name  # noqa: F401
from .plot import layer_stats as _plot_layer_stats  # noqa: F401
# The helpers the package's modules share, for modules added later.
from ._arrays import _INT_MIN, _INT_MAX, samples as _samples  # noqa: F401
from ._lib import LOG_FN, EPOCH_FN, BATCH_FN  # noqa: F401
from ._names import lookup as _lookup, table as _table, name_of as _name_of  # noqa: F401
from .errors import _ERRORS  # noqa: F401
from .layers import _as_init, _Simple  # noqa: F401
from .model import _layer_key  # noqa: F401
from .optim import _Owned, _bounds  # noqa: F401
from .train import as_dataset as _as_dataset  # noqa: F401
from . import plot  # noqa: F401

__version__ = PACKAGE_VERSION
__library__ = library_path()


def version() -> str:
    """The loaded library's version string, e.g. '0.2.0'."""
    return lib.nnkit_version().decode()


def set_num_threads(n: int) -> None:
    """Threads used by nnkit's math (0 = all cores); process-wide."""
    lib.nnkit_set_num_threads(_as_int(n, "the thread count", -2 ** 31, 2 ** 31 - 1))


def get_num_threads() -> int:
    """Threads nnkit's math uses now (>= 1)."""
    return lib.nnkit_get_num_threads()


KERNELS = _table("nnkit_kernels")


def set_kernels(mode: str) -> None:
    """How nnkit picks between its own kernels and BLAS, process-wide:
    'measure' (the default: each shape's first call times both and keeps
    the faster), 'own' (nnkit's kernels wherever the CPU runs them:
    bit-for-bit the same results from one process to the next) or 'blas'.
    The environment variable NNKIT_KERNELS sets the starting mode."""
    lib.nnkit_set_kernels(_lookup(KERNELS, mode, "kernel mode"))


def get_kernels() -> str:
    """The current kernel mode: 'measure', 'own' or 'blas'."""
    return _name_of(KERNELS, lib.nnkit_get_kernels())


__all__ = [
    "Error", "InvalidArgument", "InvalidType", "OutOfMemory", "IOFailure", "FormatError", "ShapeError",
    "StateError", "Diverged", "Aborted", "OK", "E_INVALID", "E_NOMEM", "E_IO", "E_FORMAT",
    "E_SHAPE", "E_STATE", "E_DIVERGED", "E_USER",
    "Dataset", "Normalizer", "Augmenter", "Pipeline", "NORMALIZERS", "NORM_KEYS",
    "AUGMENTATIONS", "PIPE_KEYS", "CSV_HEADERS",
    "Init", "Layer", "Dense", "Activation", "ReLU", "Tanh", "Sigmoid", "Softmax",
    "LeakyReLU", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool", "Flatten",
    "BatchNorm", "LayerNorm", "Dropout", "SpatialDropout", "INIT_KINDS", "ACT", "SAME",
    "Net", "LOSS", "LAYER_KEYS", "LAYER_STATS",
    "Optimizer", "Schedule", "Regularizer", "OPTIMIZERS", "OPT_KEYS", "SCHEDULES",
    "SCHED_KEYS", "REGULARIZERS", "REG_KEYS", "BOUND_FLAGS",
    "Trainer", "History", "LRFinder", "TRAIN_KEYS", "METRICS", "HISTORY_TABLES",
    "Diagnosis", "Monitor", "VERDICTS", "verdict_name",
    "plot", "version", "set_num_threads", "get_num_threads", "set_kernels", "get_kernels",
    "KERNELS", "__version__", "__library__",
]

from .search import search, uniform, log_uniform, integer, choice  # noqa: E402  (hyperparameter search)

__all__ += ["search", "uniform", "log_uniform", "integer", "choice"]

from .ensemble import Ensemble  # noqa: E402,F401 (also nnkit.ensemble, nnkit.mining)

__all__ += ["Ensemble"]
