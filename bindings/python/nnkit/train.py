"""Training: Trainer (include/nnkit/train.h), History, the Keras-style fit
behind Net.fit, and logging through Python (log lines to sys.stdout or a
logging.Logger, a progress bar with ETA on a terminal or in a notebook)."""
from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ._arrays import Buffer, as_int, label_buffer, samples
from ._handle import Handle
from ._lib import BATCH_FN, EPOCH_FN, LOG_FN, lib
from ._names import lookup, table
from .data import Dataset, Pipeline
from .errors import E_INVALID, E_SHAPE, E_STATE, Error, InvalidArgument, ShapeError, \
    StateError
from .model import LAYER_STATS, Net
from .optim import Optimizer, _bounds

__all__ = ["Trainer", "History", "LRFinder", "TRAIN_KEYS", "METRICS", "HISTORY_TABLES",
           "fit", "as_dataset"]

TRAIN_KEYS = table("nnkit_train_param")
METRICS = table("nnkit_metric")
HISTORY_TABLES = table("nnkit_history_table")

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------- arrays -> Dataset

def as_dataset(net: Net, x: Any, y: Any, what: str, raw: bool = False) -> Tuple[Dataset, bool]:
    """(dataset, made_here): x itself when it is a Dataset, else a Dataset
    of arrays x and y checked against the net: samples of its input shape
    (of its normalizer's input size when raw), integer class labels for a
    classifier, float targets of output_size for loss='mse'."""
    if isinstance(x, Dataset):
        if y is not None:
            raise TypeError("%s: with a Dataset, y must be None (the labels are in the "
                            "Dataset); got %s" % (what, type(y).__name__))
        return x, False
    if isinstance(x, Pipeline):
        raise TypeError("%s takes a Dataset or arrays (x, y), not a Pipeline" % what)
    if y is None:
        raise ValueError("%s(x, y): y is missing; give the labels (or targets) of x, or "
                         "a Dataset" % what)
    shape = net.input_shape
    owner = "the net"
    if raw and net.normalizer is not None:
        shape, owner = (net.normalizer.in_size,), "the net's normalizer"
    xb, n = samples(x, shape, "x", owner)
    if net._input_shape is not None and owner == "the net":
        sample_shape = net._input_shape  # (n, 784) for a (1, 28, 28) net: the net's shape
    elif len(xb.shape) > 1:
        sample_shape = tuple(xb.shape[1:])
    else:
        sample_shape = tuple(shape)
    if net.is_classifier:
        lb = label_buffer(y, "y")
        if len(lb.shape) != 1 or lb.count != n:
            raise ShapeError(E_SHAPE, "y has shape %s; for %d samples a classifier takes "
                             "(%d,) integer class ids%s"
                             % (tuple(lb.shape), n, n,
                                " (one-hot rows? pass y.argmax(1))" if len(lb.shape) == 2
                                else ""))
        return Dataset(xb.keep, lb.keep, shape=sample_shape,
                       num_classes=net.output_size), True
    tb = Buffer(y, ctypes.c_float, "f", "y")
    k = net.output_size
    if tb.count != n * k or (tb.shape and tb.shape[0] != n):
        raise ShapeError(E_SHAPE, "y has shape %s; for %d samples a regression net of %d "
                         "outputs takes targets of shape (%d, %d)%s"
                         % (tuple(tb.shape), n, k, n, k, " or (%d,)" % n if k == 1 else ""))
    return Dataset(xb.keep, shape=sample_shape, targets=tb.keep), True


# ---------------------------------------------------------------- logging and progress

def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        return shell.get_ipython() is not None
    except Exception:
        return False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


def _line_writer(log: Any) -> Callable[[str], None]:
    """A function of one log line: to sys.stdout (looked up at each line,
    so contextlib.redirect_stdout and notebooks capture it), a
    logging.Logger (at INFO), or the caller's function."""
    if log is None:
        def to_stdout(line: str) -> None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        return to_stdout
    if isinstance(log, logging.Logger):
        return lambda line: log.info("%s", line)
    if callable(log):
        return log
    raise TypeError("log must be None (sys.stdout), a logging.Logger or a function of one "
                    "line, not %s" % type(log).__name__)


class _Progress:
    """A per-epoch progress bar with ETA: tqdm's (python3-tqdm) when
    installed, else a plain one redrawn in place with '\\r'."""

    def __init__(self, epochs: int, batches: int) -> None:
        self.epochs, self.batches = epochs, batches
        self.bar: Any = None
        self.start = 0.0
        try:
            if _in_notebook():
                from tqdm.auto import tqdm
            else:
                from tqdm import tqdm
            self.tqdm: Any = tqdm
        except ImportError:
            self.tqdm = None

    def batch(self, epoch: int, batch: int) -> None:
        if batch == 0 or self.bar is None and self.start == 0.0:
            self.open(epoch)
        if self.tqdm is not None:
            self.bar.update(1)
            return
        done = batch + 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / done * (self.batches - done) if done else 0.0
        width = 30
        fill = int(width * done / max(self.batches, 1))
        sys.stdout.write("\r  epoch %d/%d [%s%s] %d/%d ETA %.0fs " %
                         (epoch + 1, self.epochs, "=" * fill, " " * (width - fill), done,
                          self.batches, eta))
        sys.stdout.flush()

    def open(self, epoch: int) -> None:
        self.close()
        self.start = time.monotonic()
        if self.tqdm is not None:
            self.bar = self.tqdm(total=self.batches, desc="epoch %d/%d" % (epoch + 1,
                                                                           self.epochs),
                                 leave=False, file=sys.stdout, unit="batch")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.start and self.tqdm is None:
            sys.stdout.write("\r" + " " * 70 + "\r")
        self.start = 0.0

    def write(self, line: str, out: Callable[[str], None]) -> None:
        """A log line, printed above the bar."""
        self.close()
        out(line)


# ---------------------------------------------------------------- History

class History:
    """Per-epoch records: history['val_acc'] is a list, one value per epoch
    (names: METRICS); history.history is the dict of them all, as Keras's.
    Pictures: plot() (loss and accuracy curves), plot_layer_stats()."""

    def __init__(self, columns: Dict[str, List[float]]) -> None:
        self.columns = columns
        self.layer_stats: Dict[str, List[List[float]]] = {}
        self.layer_names: List[str] = []
        self.batch_losses: List[float] = []
        self.stop_reason = ""
        self.best_epoch: Optional[int] = None

    @property
    def history(self) -> Dict[str, List[float]]:
        """{metric: [value per epoch]} (Keras's History.history)."""
        return self.columns

    def __getitem__(self, key: str) -> List[float]:
        if key not in self.columns:
            raise KeyError("unknown history column %r; the columns are %s"
                           % (key, ", ".join(self.columns)))
        return self.columns[key]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def __repr__(self) -> str:
        if not len(self):
            return "History(0 epochs)"
        last = ["%s %.4g" % (k, self.columns[k][-1]) for k in
                ("train_loss", "train_acc", "val_loss", "val_acc")
                if k in self.columns and not math.isnan(self.columns[k][-1])]
        return "History(%d epochs, last: %s)" % (len(self), ", ".join(last))

    @classmethod
    def from_csv(cls, path: PathLike) -> "History":
        """Reads an epoch table written by Trainer.save_history, the C
        library's nnkit_history_save_csv (the C examples' *_history.csv)
        or to_csv: History.from_csv('digits_history.csv').plot('c.png')."""
        import csv
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or "train_loss" not in rows[0]:
            raise InvalidArgument(E_INVALID, "%s is not an epoch table: its first row "
                                  "lacks the train_loss column" % os.fspath(path))
        header = rows[0]
        cols: Dict[str, List[float]] = {name: [] for name in METRICS if name in header}
        for r in rows[1:]:
            if not r:
                continue
            for name in cols:
                cell = r[header.index(name)].strip()
                cols[name].append(float(cell) if cell else float("nan"))
        return cls(cols)

    def to_csv(self, path: PathLike) -> None:
        """Writes epoch,<metrics...> rows."""
        keys = list(self.columns)
        with open(path, "w") as f:
            f.write("epoch," + ",".join(keys) + "\n")
            for i in range(len(self)):
                f.write("%d," % (i + 1) + ",".join(repr(self.columns[k][i]) for k in keys)
                        + "\n")

    def plot(self, path: Optional[PathLike] = None) -> Any:
        """Loss and accuracy curves, train and validation (matplotlib
        Figure); writes a PNG when path is given."""
        from .plot import training_curves
        return training_curves(self, path=path)

    def plot_layer_stats(self, path: Optional[PathLike] = None,
                         stats: Sequence[str] = ("act_mean", "act_std", "saturated", "dead",
                                                 "grad_norm", "update_ratio")) -> Any:
        """Per-layer statistics per epoch (matplotlib): one subplot per
        statistic, one line per layer; writes a PNG when path is given."""
        from .plot import layer_stats
        return layer_stats(self.layer_stats, stats, self.layer_names, path)


class LRFinder(NamedTuple):
    """Result of Trainer.find_lr: the suggested rate and the curve; unpacks
    as (suggested, lrs, losses); plot() draws the curve."""
    suggested: float
    lrs: List[float]
    losses: List[float]

    def plot(self, path: Optional[PathLike] = None) -> Any:
        """Loss against learning rate (log axis), the suggestion marked;
        writes a PNG when path is given."""
        from .plot import lr_finder
        return lr_finder(self, path=path)


# ---------------------------------------------------------------- Trainer

class Trainer(Handle):
    """Drives a Net and an Optimizer, borrowed as in C: the trainer keeps
    them alive, and net.close() or optimizer.close() while it exists (also
    from a callback during fit) only closes them for Python; the C objects
    are freed when the trainer is, and the trainer then raises StateError
    (fit stops with it). Settings: TRAIN_KEYS (tr['epochs'] = 5).

    Log lines go through Python: to sys.stdout by default (so
    contextlib.redirect_stdout and notebooks capture them), or to log (a
    logging.Logger or a function of one line). With verbose on a
    terminal or in a notebook each epoch shows a progress bar with ETA."""
    _free = lib.nnkit_trainer_free

    def __init__(self, net: Net, optimizer: Optimizer, *, log: Any = None,
                 **settings: float) -> None:
        super().__init__()
        if not isinstance(net, Net):
            raise TypeError("Trainer takes a Net, not %s" % type(net).__name__)
        if not isinstance(optimizer, Optimizer):
            raise TypeError("Trainer takes an Optimizer, not %s" % type(optimizer).__name__)
        self._net, self._opt = net, optimizer  # keep borrowed handles alive
        lib.nnkit_trainer_create(ctypes.byref(self._h), net.handle, optimizer.handle)
        for obj in (net, optimizer):
            self._borrow(obj)
        self._cbs: List[Any] = []
        self._cb_error: Optional[BaseException] = None
        self._progress: Optional[_Progress] = None
        self._progress_cbs = False
        self.set_logger(log)
        for k, v in settings.items():
            self[k] = v

    def __repr__(self) -> str:
        if self.closed:
            return "Trainer(closed)"
        return "Trainer(%r, %r, %d epochs done)" % (self._net, self._opt, self.epochs_done)

    @property
    def handle(self) -> ctypes.c_void_p:
        """The C handle; StateError once it, its net or its optimizer is closed."""
        h = Handle.handle.fget(self)
        for obj in (self._net, self._opt):
            if obj.closed:
                raise StateError(E_STATE, "the trainer's %s is closed" %
                                 type(obj).__name__)
        self._net._fwd_batch = None  # the trainer runs the net
        return h

    @property
    def net(self) -> Net:
        """The trained Net (borrowed)."""
        return self._net

    @property
    def optimizer(self) -> Optimizer:
        """The Optimizer (borrowed)."""
        return self._opt

    def _closed_during_fit(self) -> Optional[StateError]:
        """A StateError naming what was closed while fit ran, or None."""
        for obj in [self, self._net, self._opt] + list(getattr(self, "_fit_objs", ())):
            if obj.closed:
                name = "trainer" if obj is self else type(obj).__name__
                return StateError(E_STATE, "the %s was closed during fit(); close it "
                                  "after fit returns" % name)
        return None

    def set_logger(self, log: Any) -> None:
        """Where log lines go: None for sys.stdout (looked up per line), a
        logging.Logger (INFO), or a function fn(line)."""
        out = _line_writer(log)

        def receive(line: bytes, user: Any) -> None:
            text = line.decode(errors="replace")
            try:
                if self._progress is not None:
                    self._progress.write(text, out)
                else:
                    out(text)
            except BaseException as e:  # re-raised by fit()
                if self._cb_error is None:
                    self._cb_error = e

        self._log_cb = LOG_FN(receive)
        lib.nnkit_trainer_set_logger(self.handle, self._log_cb, None)

    def __setitem__(self, key: str, value: float) -> None:
        if isinstance(value, bool):
            value = int(value)
        lib.nnkit_trainer_set(self.handle, lookup(TRAIN_KEYS, key, "trainer setting"),
                              float(value))

    def __getitem__(self, key: str) -> float:
        out = ctypes.c_double()
        lib.nnkit_trainer_get(ctypes.byref(out), self.handle,
                              lookup(TRAIN_KEYS, key, "trainer setting"))
        return out.value

    @staticmethod
    def bounds(key: str) -> Tuple[float, float, int]:
        """(lo, hi, flags) of a trainer setting, as Optimizer.bounds."""
        return _bounds(lib.nnkit_trainer_bounds, lookup(TRAIN_KEYS, key, "trainer setting"))

    def _guard(self, fn: Callable[..., Any], *args: Any) -> int:
        """Calls a Python callback from C: exceptions and closed objects
        stop the fit (fit re-raises them)."""
        if self._cb_error is not None:
            return -1
        try:
            r = fn(*args)
        except BaseException as e:  # re-raised by fit()
            self._cb_error = e
            return -1
        closed = self._closed_during_fit()
        if closed is not None:  # stop now; the C objects are still alive
            self._cb_error = closed
            return -1
        try:
            return 0 if r is None else int(r)
        except BaseException as e:
            self._cb_error = e
            return -1

    def add_callback(self, cb: Any) -> "Trainer":
        """Per-epoch and/or per-batch Python callback (see Net.fit)."""
        on_epoch = getattr(cb, "on_epoch", None)
        on_batch = getattr(cb, "on_batch", None)
        if on_epoch is None and on_batch is None:
            if not callable(cb):
                raise TypeError("a callback is a function of (epoch, trainer) or an object "
                                "with on_epoch/on_batch methods, not %s" % type(cb).__name__)
            on_epoch = cb
        if on_epoch is not None:
            f = EPOCH_FN(lambda tr, epoch, user: self._guard(on_epoch, epoch, self))
            self._cbs.append(f)
            lib.nnkit_trainer_add_epoch_callback(self.handle, f, None)
        if on_batch is not None:
            f = BATCH_FN(lambda tr, epoch, batch, loss, user:
                         self._guard(on_batch, epoch, batch, loss))
            self._cbs.append(f)
            lib.nnkit_trainer_add_batch_callback(self.handle, f, None)
        return self

    def set_early_stopping(self, monitor: str = "val_loss", patience: int = 5,
                           min_delta: float = 0.0) -> "Trainer":
        """Stops when monitor (METRICS) has not improved by min_delta for
        patience epochs, restoring the best epoch's weights."""
        lib.nnkit_trainer_set_early_stopping(self.handle, lookup(METRICS, monitor, "metric"),
                                             as_int(patience, "patience", 0),
                                             float(min_delta))
        return self

    def _start_progress(self, train: Any) -> None:
        """A progress bar when verbose and on a terminal or in a notebook."""
        self._progress = None
        if self["verbose"] < 1 or not (_isatty(sys.stdout) or _in_notebook()):
            return
        if isinstance(train, Pipeline):
            batches = len(train)
        else:
            bs = int(self["batch_size"])
            batches = (len(train) + bs - 1) // bs
        self._progress = _Progress(int(self["epochs"]), batches)
        if not self._progress_cbs:  # registered once; idle while _progress is None
            def on_batch(tr: Any, epoch: int, batch: int, loss: float, user: Any) -> int:
                if self._progress is not None:
                    self._guard(self._progress.batch, epoch, batch)
                return 0 if self._cb_error is None else -1

            f = BATCH_FN(on_batch)
            self._cbs.append(f)
            lib.nnkit_trainer_add_batch_callback(self.handle, f, None)
            self._progress_cbs = True

    def fit(self, train: Union[Dataset, Pipeline],
            val: Optional[Union[Dataset, Pipeline]] = None) -> "Trainer":
        """Trains on a Dataset or Pipeline (val likewise, or None)."""
        for what, d in (("train", train), ("val", val)):
            if d is not None and not isinstance(d, (Dataset, Pipeline)):
                raise TypeError("Trainer.fit: %s must be a Dataset or a Pipeline, not %s "
                                "(Net.fit takes arrays)" % (what, type(d).__name__))
        self._cb_error = None
        h = self.handle
        objs = [self, train] + ([val] if val is not None else [])
        pinned = []
        failure: Optional[Error] = None
        closed: Optional[StateError] = None
        try:
            for obj in objs:  # a callback may close any of them: C keeps using them
                obj._pin()
                pinned.append(obj)
            self._fit_objs = objs[1:]
            self._start_progress(train)
            try:
                if isinstance(train, Pipeline):
                    lib.nnkit_trainer_fit_pipeline(h, train.handle,
                                                   val.handle if val is not None else None)
                else:
                    lib.nnkit_trainer_fit(h, train.handle,
                                          val.handle if val is not None else None)
            except Error as e:
                failure = e
            closed = self._closed_during_fit()
        finally:
            if self._progress is not None:
                self._progress.close()
                self._progress = None
            self._fit_objs = ()
            for obj in reversed(pinned):
                obj._unpin()
        if self._cb_error is not None:
            err, self._cb_error = self._cb_error, None
            raise err
        if closed is not None:  # a logger closed something
            raise closed
        if failure is not None:
            raise failure
        return self

    def save_checkpoint(self, path: PathLike) -> "Trainer":
        """Writes the whole training state (net, optimizer, schedule, settings,
        position in the fit, history, early stopping) to path, atomically."""
        lib.nnkit_trainer_save_checkpoint(self.handle, os.fsencode(path))
        return self

    def resume(self, path: PathLike) -> "Trainer":
        """Restores a checkpoint into this trainer (its net and optimizer built
        as the checkpoint's were); the next fit() continues the checkpoint's
        fit where it stood, to the same weights as the uninterrupted run."""
        lib.nnkit_trainer_resume(self.handle, os.fsencode(path))
        return self

    def set_checkpoint_dir(self, path: Optional[PathLike]) -> "Trainer":
        """Folder of the periodic checkpoints (checkpoint_every,
        checkpoint_best, checkpoint_keep); None turns them off."""
        lib.nnkit_trainer_set_checkpoint_dir(
            self.handle, os.fsencode(path) if path is not None else None)
        return self

    @property
    def stop_reason(self) -> str:
        """Why the last fit stopped ("" before any fit)."""
        r = lib.nnkit_trainer_stop_reason(self.handle)
        return r.decode() if r else ""

    @property
    def best_epoch(self) -> Optional[int]:
        """The epoch early stopping kept, numbered from 1 as the log prints it
        ("Restored the weights of epoch 13" is 13), or None."""
        out = ctypes.c_size_t()
        try:
            lib.nnkit_trainer_best_epoch(ctypes.byref(out), self.handle)
        except Error:
            return None
        return out.value

    def find_lr(self, train: Dataset, lr_min: float = 1e-6, lr_max: float = 10.0,
                steps: int = 100) -> LRFinder:
        """LR range test on a copy of the weights: LRFinder(suggested, lrs,
        losses); .plot(path) draws the curve."""
        steps = as_int(steps, "steps", 1)
        lrs, losses = (ctypes.c_double * steps)(), (ctypes.c_double * steps)()
        sugg, count = ctypes.c_double(), ctypes.c_size_t()
        lib.nnkit_trainer_find_lr(ctypes.byref(sugg), lrs, losses, steps,
                                  ctypes.byref(count), self.handle, train.handle,
                                  float(lr_min), float(lr_max), steps)
        n = count.value
        return LRFinder(sugg.value, list(lrs[:n]), list(losses[:n]))

    def diagnose(self) -> Any:
        """Diagnosis of the recorded curves: Diagnosis (verdicts + report)."""
        from .monitor import Diagnosis
        h = ctypes.c_void_p()
        lib.nnkit_trainer_diagnose(ctypes.byref(h), self.handle)
        return Diagnosis._take(h)

    def sanity_check(self, train: Dataset) -> str:
        """Runs the pre-training checks; returns the report text."""
        lib.nnkit_trainer_sanity_check(self.handle, train.handle)
        r = lib.nnkit_trainer_sanity_report(self.handle)
        return r.decode() if r else ""

    def save_history(self, path: PathLike, table: str = "epochs", fmt: str = "csv") -> None:
        """Writes the epoch, batch or layer table (HISTORY_TABLES) as CSV or
        JSON Lines ('jsonl'), atomically."""
        h = lib.nnkit_trainer_history(self.handle)
        if fmt not in ("csv", "jsonl"):
            raise InvalidArgument(E_INVALID, "unknown history format %r; the valid ones "
                                  "are csv, jsonl" % (fmt,))
        fn = lib.nnkit_history_save_csv if fmt == "csv" else lib.nnkit_history_save_jsonl
        fn(h, lookup(HISTORY_TABLES, table, "history table"), os.fsencode(path))

    @property
    def epochs_done(self) -> int:
        """Epochs recorded so far (over all fits)."""
        return lib.nnkit_trainer_epochs_done(self.handle)

    def metric(self, epoch: int, name: str) -> float:
        """Metric name (METRICS) of a 0-based epoch."""
        out = ctypes.c_double()
        lib.nnkit_trainer_metric(ctypes.byref(out), self.handle, as_int(epoch, "epoch", 0),
                                 lookup(METRICS, name, "metric"))
        return out.value

    def history(self) -> History:
        """Everything recorded so far, as a History."""
        cols = {name: [self.metric(e, name) for e in range(self.epochs_done)]
                for name in METRICS}
        h = lib.nnkit_trainer_history(self.handle)
        nb = lib.nnkit_history_batches(h) if h else 0
        losses, lrs = (ctypes.c_double * max(nb, 1))(), (ctypes.c_double * max(nb, 1))()
        got = ctypes.c_size_t()
        if nb:
            lib.nnkit_history_batch_losses(losses, lrs, nb, ctypes.byref(got), h, 0)
        hist = History(cols)
        hist.batch_losses = list(losses[:got.value])
        hist.layer_stats = self._layer_stats(h)
        net = self._net
        hist.layer_names = ["%d %s" % (i, net.describe(i).split()[0])
                            for i in range(net.num_layers)]
        hist.stop_reason = self.stop_reason
        hist.best_epoch = self.best_epoch
        return hist

    def _layer_stats(self, h: Any) -> Dict[str, List[List[float]]]:
        """{stat: [[value per layer] per epoch]} from the recorded history."""
        if not h:
            return {}
        L = lib.nnkit_history_num_layers(h)
        if L == 0:
            return {}
        names = list(LAYER_STATS)
        keys = (ctypes.c_int * len(names))(*[LAYER_STATS[k] for k in names])
        out: Dict[str, List[List[float]]] = {k: [] for k in names}
        for e in range(lib.nnkit_history_epochs(h)):
            buf = (ctypes.c_double * (len(names) * L))()
            try:
                lib.nnkit_history_layer_stats(buf, len(buf), keys, len(names), h, e)
            except Error:
                return {}
            S = len(names)  # buf[l * S + j]: stat j of layer l
            for j, k in enumerate(names):
                out[k].append([buf[l * S + j] for l in range(L)])
        return out


# ---------------------------------------------------------------- Net.fit

def fit(net: Net, x: Any, y: Any = None, *, validation_split: float = 0.0,
        validation_data: Any = None, epochs: int = 10, batch_size: int = 64,
        optimizer: Optional[Optimizer] = None, lr: float = 0.01, seed: int = 0,
        shuffle: bool = True, verbose: Union[bool, int] = False, log: Any = None,
        callbacks: Sequence[Any] = (), early_stopping: Optional[Dict[str, Any]] = None,
        **settings: float) -> History:
    """Net.fit (see there): arrays or Datasets in, a History out."""
    if not isinstance(net, Net):
        raise TypeError("fit takes a Net, not %s" % type(net).__name__)
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        callbacks = [callbacks]
    owned: List[Dataset] = []
    try:
        if isinstance(x, (Dataset, Pipeline)):
            if y is not None:
                if isinstance(y, (Dataset, Pipeline)) and validation_data is None:
                    validation_data = y  # the older form fit(train, val)
                else:
                    raise TypeError("fit: with a %s as x, y must be None (the labels are in "
                                    "it); got %s" % (type(x).__name__, type(y).__name__))
            train = x
        else:
            train, _ = as_dataset(net, x, y, "fit")
            owned.append(train)
        val = None
        if validation_split:
            vs = float(validation_split)
            if not 0.0 < vs < 1.0:
                raise InvalidArgument(E_INVALID, "validation_split %r is outside (0, 1)"
                                      % (validation_split,))
            if validation_data is not None:
                raise InvalidArgument(E_INVALID, "give validation_split or "
                                      "validation_data, not both")
            if not isinstance(train, Dataset):
                raise TypeError("validation_split needs arrays or a Dataset, not a Pipeline; "
                                "pass validation_data")
            n = len(train)
            split_at = int(math.floor(n * (1.0 - vs)))  # Keras: the last samples
            if split_at == 0 or split_at == n:
                raise InvalidArgument(E_INVALID, "validation_split %g of %d samples leaves "
                                      "%d for training and %d for validation; both must "
                                      "be at least 1" % (vs, n, split_at, n - split_at))
            full = train
            train = full.subset(range(split_at))
            owned.append(train)
            val = full.subset(range(split_at, n))
            owned.append(val)
        if validation_data is not None:
            if isinstance(validation_data, (Dataset, Pipeline)):
                val = validation_data
            elif isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
                val, _ = as_dataset(net, validation_data[0], validation_data[1],
                                    "validation_data")
                owned.append(val)
            else:
                raise TypeError("validation_data must be a Dataset or a pair (x_val, y_val), "
                                "not %s" % type(validation_data).__name__)
        opt = optimizer if optimizer is not None else Optimizer("sgd", lr=lr)
        with Trainer(net, opt, epochs=epochs, batch_size=batch_size, seed=seed,
                     shuffle=shuffle, verbose=int(verbose), log=log, **settings) as tr:
            for cb in callbacks:
                tr.add_callback(cb)
            if early_stopping:
                tr.set_early_stopping(**early_stopping)
            tr.fit(train, val)
            net.last_trainer_summary = {"stop_reason": tr.stop_reason,
                                        "best_epoch": tr.best_epoch}
            if settings.get("snapshots") or settings.get("ema_decay"):
                from .ensemble import _keep_results  # net.snapshot_ensemble, net.averaged
                _keep_results(net, tr, train)
            return tr.history()
    finally:
        for d in owned:
            d.close()
