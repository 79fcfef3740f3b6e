"""Ensembles (nnkit/ensemble.h): nets answering together, snapshot
ensembles of one run and weight averaging.

    ens = nnkit.Ensemble([net1, net2, net3])            # mean of probabilities
    ens = nnkit.Ensemble(nets, weights=[1, 2, 1], kind="vote")
    ens.predict(X); ens.predict_proba(X); ens.evaluate(ds); ens.save(path)

    hist = net.fit(train, optimizer=opt, snapshots=5, ema_decay=0.999)
    net.snapshot_ensemble      # Ensemble of the run's cycle-end snapshots
    net.averaged               # Net with the averaged weights (batch-norm
                               # statistics recomputed on train)

Snapshots need a cosine schedule on the optimizer (COSINE_RESTARTS, or
COSINE's minima). The Trainer gains snapshot_ensemble(m) and averaged(train).
"""
from __future__ import annotations

import ctypes
import os
from typing import Any, List, Optional, Sequence, Tuple, Union

from . import mining  # noqa: F401  (nnkit.mining, and Net.per_sample_loss)
from ._arrays import Buffer as _Buffer, to_result as _to_result
from ._handle import Handle as _Handle
from ._lib import lib
from ._names import lookup, table
from .data import Dataset
from .errors import E_SHAPE, ShapeError, check as _check
from .model import Net
from .train import Trainer

__all__ = ["Ensemble", "ENSEMBLE_KINDS"]

#: nnkit_ensemble_kind
ENSEMBLE_KINDS = table("nnkit_ensemble_kind")


class Ensemble(_Handle):
    """Copies of nets with the same input and output shapes, combined by
    the weighted mean of their class probabilities (kind "mean") or a
    weighted majority vote ("vote"). Each net is copied when added: the
    ensemble does not keep the Python Net objects alive or change them."""
    _free = lib.nnkit_ensemble_free

    def __init__(self, nets: Sequence[Net] = (), weights: Optional[Sequence[float]] = None,
                 kind: Union[str, int] = "mean") -> None:
        """nets (copied), their weights (1 each by default) and how to
        combine them: "mean" of probabilities or "vote" (ENSEMBLE_KINDS)."""
        super().__init__()
        _check(lib.nnkit_ensemble_create(ctypes.byref(self._h),
                                         lookup(ENSEMBLE_KINDS, kind, "ensemble kind")))
        nets = list(nets)
        if weights is None:
            weights = [1.0] * len(nets)
        if len(weights) != len(nets):
            self.close()
            raise ShapeError(E_SHAPE, "%d weights for %d nets" % (len(weights), len(nets)))
        try:
            for net, w in zip(nets, weights):
                self.add(net, w)
        except Exception:
            self.close()
            raise

    def add(self, net: Net, weight: float = 1.0) -> "Ensemble":
        """Adds a copy of net; a net unlike the first member raises
        ShapeError with the sentence saying what differs."""
        _check(lib.nnkit_ensemble_add(self.handle, net.handle, float(weight)))
        return self

    def __repr__(self) -> str:
        if self.closed:
            return "Ensemble(closed)"
        n = len(self)
        return "Ensemble(%d net%s, %s)" % (n, "" if n == 1 else "s", self.kind)

    def __len__(self) -> int:
        return lib.nnkit_ensemble_size(self.handle)

    @property
    def kind(self) -> str:
        """Either "mean" or "vote"."""
        k = lib.nnkit_ensemble_get_kind(self.handle)
        return {v: n for n, v in ENSEMBLE_KINDS.items()}[k]

    @property
    def weights(self) -> List[float]:
        """The members' weights, in order."""
        return [lib.nnkit_ensemble_weight(self.handle, i) for i in range(len(self))]

    def _raw(self, x: Any) -> Tuple[Any, int]:
        """x as a C buffer of raw samples and its count."""
        h = self.handle
        m = lib.nnkit_ensemble_member(h, 0)
        if not m:
            return _Buffer(x, ctypes.c_float, "f"), 1  # C says the ensemble is empty
        nz = lib.nnkit_net_normalizer(m)
        size = lib.nnkit_normalizer_in_size(nz) if nz else lib.nnkit_net_input_size(m)
        xb = _Buffer(x, ctypes.c_float, "f")
        n = xb.count // size
        if n * size != xb.count or n == 0:
            raise ShapeError(E_SHAPE, "x has %d values, not a positive multiple of the "
                             "members' input size %d" % (xb.count, size))
        return xb, n

    @property
    def output_size(self) -> int:
        """Outputs (classes) of each member; 0 for an empty ensemble."""
        m = lib.nnkit_ensemble_member(self.handle, 0)
        return lib.nnkit_net_output_size(m) if m else 0

    def predict_proba(self, x: Any) -> Any:
        """Combined class probabilities (vote shares for kind "vote")."""
        xb, n = self._raw(x)
        w = max(self.output_size, 1)
        out = (ctypes.c_float * (n * w))()
        _check(lib.nnkit_ensemble_predict_proba(out, len(out), self.handle, xb.ptr, n))
        return _to_result(out, len(out), (n, w))

    def predict(self, x: Any) -> Any:
        """Combined class ids of raw samples (argmax of predict_proba)."""
        xb, n = self._raw(x)
        out = (ctypes.c_int32 * n)()
        _check(lib.nnkit_ensemble_predict(out, self.handle, xb.ptr, n))
        return _to_result(out, n, None, ctypes.c_int32)

    def evaluate(self, ds: Dataset) -> Tuple[float, float]:
        """(mean loss, accuracy) on a Dataset of raw samples."""
        loss, acc = ctypes.c_double(), ctypes.c_double()
        _check(lib.nnkit_ensemble_evaluate(ctypes.byref(loss), ctypes.byref(acc),
                                           self.handle, ds.handle))
        return loss.value, acc.value

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the ensemble as one file (atomically, with a checksum)."""
        _check(lib.nnkit_ensemble_save(self.handle, os.fsencode(path)))

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"]) -> "Ensemble":
        """Reads a file written by save()."""
        h = ctypes.c_void_p()
        _check(lib.nnkit_ensemble_load(ctypes.byref(h), os.fsencode(path)))
        return cls._wrap(h)

    @classmethod
    def _take(cls, h: Any) -> "Ensemble":
        return cls._wrap(h)


def _snapshot_ensemble(self: Trainer, m: Optional[int] = None,
                       kind: Union[str, int] = "mean") -> Ensemble:
    """An Ensemble of the newest m cycle-end snapshots (all held by
    default)."""
    held = lib.nnkit_trainer_num_snapshots(self.handle)
    h = ctypes.c_void_p()
    _check(lib.nnkit_trainer_apply_snapshots(ctypes.byref(h), self.handle,
                                             held if m is None else int(m),
                                             lookup(ENSEMBLE_KINDS, kind, "ensemble kind")))
    return Ensemble._take(h)


def _averaged(self: Trainer, train: Optional[Dataset] = None) -> Net:
    """A Net with the averaged weights (ema_decay); with train (a Dataset,
    as the trainer saw it) its batch-norm statistics are recomputed."""
    h = ctypes.c_void_p()
    _check(lib.nnkit_trainer_apply_average(ctypes.byref(h), self.handle,
                                           train.handle if train is not None else None))
    return Net._wrap(h)


def _num_snapshots(self: Trainer) -> int:
    """Cycle-end snapshots the trainer holds (NNKIT_TRAIN_SNAPSHOTS)."""
    return lib.nnkit_trainer_num_snapshots(self.handle)


Trainer.snapshot_ensemble = _snapshot_ensemble
Trainer.averaged = _averaged
Trainer.num_snapshots = property(_num_snapshots)


def _keep_results(net: Net, tr: Trainer, train: Any) -> None:
    """After Net.fit with snapshots or ema_decay: net.snapshot_ensemble and
    net.averaged (None when the run kept none)."""
    net.snapshot_ensemble = tr.snapshot_ensemble() if tr.num_snapshots else None
    net.averaged = None
    if tr["ema_decay"] > 0:
        net.averaged = tr.averaged(train if isinstance(train, Dataset) else None)
