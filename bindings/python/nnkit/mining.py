"""Hard-sample mining (nnkit/mining.h): per-sample losses of a labelled set,
uncertainty of an unlabelled pool, the k hardest as indices or a Dataset.

    scores = nnkit.mining.uncertainty(net, X_pool, kind="margin")
    chosen = nnkit.mining.top_k(scores, 500)          # indices, hardest first
    losses = net.per_sample_loss(X, y)                # one loss per sample

Every score is larger for a harder sample. Results are NumPy float64
arrays (lists without NumPy). Online hard example mining in a fit is the
trainer setting ``ohem_k`` (``net.fit(..., ohem_k=16)``).
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence, Union

from ._arrays import Buffer as _Buffer, _np
from ._lib import lib
from ._names import lookup, table
from .data import Dataset
from .errors import E_INVALID, InvalidArgument, check as _check
from .model import Net

__all__ = ["UNCERTAINTY", "uncertainty", "uncertainty_of_probs", "top_k", "hardest",
           "per_sample_loss"]

#: nnkit_uncertainty: "max_prob" (1 - max p), "margin" (1 - (p1 - p2)),
#: "entropy" (-sum p ln p, in nats).
UNCERTAINTY = table("nnkit_uncertainty")


def _doubles(arr: Any, n: int) -> Any:
    """A ctypes double array as a NumPy float64 array (or a list)."""
    if _np is not None:
        return _np.frombuffer(arr, dtype=_np.float64, count=n).copy()
    return list(arr)


def _scores(scores: Sequence[float]) -> Any:
    n = len(scores)
    return (ctypes.c_double * n)(*[float(s) for s in scores]), n


def uncertainty_of_probs(probs: Any, kind: Union[str, int] = "margin") -> Any:
    """Uncertainty scores of rows of class probabilities (count x classes):
    kind "max_prob", "margin" or "entropy" (UNCERTAINTY); larger is more
    uncertain."""
    pb = _Buffer(probs, ctypes.c_float, "f")
    if len(pb.shape) != 2 or pb.shape[0] == 0:
        raise InvalidArgument(E_INVALID, "probs must be a 2-D array of rows of class "
                              "probabilities")
    n, c = pb.shape
    out = (ctypes.c_double * n)()
    _check(lib.nnkit_mining_uncertainty(out, n, pb.ptr, n, c,
                                        lookup(UNCERTAINTY, kind, "uncertainty kind")))
    return _doubles(out, n)


def uncertainty(model: Any, x: Any, kind: Union[str, int] = "margin") -> Any:
    """How unsure a Net or an Ensemble is about each raw sample of x:
    kind "max_prob" (lowest max-probability), "margin" (smallest margin
    between the two likeliest classes) or "entropy" (highest entropy);
    larger is more uncertain."""
    if isinstance(model, Net):
        xb, n = model._batch(x, raw=True)
        out = (ctypes.c_double * n)()
        _check(lib.nnkit_net_uncertainty(out, n, model.handle, xb.ptr, n,
                                         lookup(UNCERTAINTY, kind, "uncertainty kind")))
        return _doubles(out, n)
    return uncertainty_of_probs(model.predict_proba(x), kind)


def top_k(scores: Sequence[float], k: int) -> Any:
    """Indices of the k largest scores, largest first (ties: lower index)."""
    sb, n = _scores(scores)
    out = (ctypes.c_size_t * max(int(k), 1))()
    _check(lib.nnkit_mining_top_k(out, int(k), sb, n))
    idx = list(out)[:int(k)]
    return _np.asarray(idx, dtype=_np.int64) if _np is not None else idx


def hardest(ds: Dataset, scores: Sequence[float], k: int) -> Dataset:
    """A new Dataset of the k samples of ds with the largest scores."""
    if len(scores) != len(ds):
        raise InvalidArgument(E_INVALID, "%d scores for a dataset of %d samples" %
                              (len(scores), len(ds)))
    sb, _ = _scores(scores)
    h = ctypes.c_void_p()
    _check(lib.nnkit_mining_subset(ctypes.byref(h), ds.handle, sb, int(k)))
    return Dataset._wrap(h)


def per_sample_loss(net: Net, x: Any, y: Any = None, *, targets: Any = None) -> Any:
    """The loss of each raw sample (x with class ids y, or float targets),
    in evaluation mode; their mean is net.evaluate()'s loss."""
    nz = lib.nnkit_net_normalizer(net.handle)
    size = lib.nnkit_normalizer_in_size(nz) if nz else net.input_size
    ds = Dataset(x, y, shape=(size,), num_classes=net.output_size if targets is None else 0,
                 targets=targets)
    try:
        n = len(ds)
        out = (ctypes.c_double * n)()
        net._fwd_batch = None
        _check(lib.nnkit_net_sample_losses(out, n, net.handle, ds.handle))
    finally:
        ds.close()
    return _doubles(out, n)


Net.per_sample_loss = per_sample_loss
