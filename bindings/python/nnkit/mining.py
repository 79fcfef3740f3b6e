"""Hard-sample mining (nnkit/mining.h): per-sample losses of a labelled set,
uncertainty of an unlabelled pool, the k hardest as indices or a Dataset.

    scores = nnkit.mining.uncertainty(net, X_pool, kind="margin")
    chosen = nnkit.mining.top_k(scores, 500)          # indices, hardest first
    losses = net.per_sample_loss(X, y)                # one loss per sample

Every score is larger for a harder sample. Results are NumPy float64
arrays (lists without NumPy). Online hard example mining in a fit is the
trainer setting ``ohem_k`` (``net.fit(..., ohem_k=16)``).
"""
import ctypes

from . import (_Buffer, _check, _np, Dataset, E_INVALID, InvalidArgument, Net, lib)

__all__ = ["UNCERTAINTY", "uncertainty", "uncertainty_of_probs", "top_k", "hardest",
           "per_sample_loss"]

#: nnkit_uncertainty: "max_prob" (1 - max p), "margin" (1 - (p1 - p2)),
#: "entropy" (-sum p ln p, in nats).
UNCERTAINTY = {"max_prob": 1, "margin": 2, "entropy": 3}


def _doubles(arr, n):
    """A ctypes double array as a NumPy float64 array (or a list)."""
    if _np is not None:
        return _np.frombuffer(arr, dtype=_np.float64, count=n).copy()
    return list(arr)


def _kind(kind):
    try:
        return UNCERTAINTY[kind]
    except KeyError:
        raise InvalidArgument(E_INVALID, "unknown uncertainty kind %r; use one of %s" %
                              (kind, ", ".join(UNCERTAINTY))) from None


def uncertainty_of_probs(probs, kind="margin"):
    """Uncertainty scores of rows of class probabilities (count x classes)."""
    pb = _Buffer(probs, ctypes.c_float, "f")
    if len(pb.shape) != 2 or pb.shape[0] == 0:
        raise InvalidArgument(E_INVALID, "probs must be a 2-D array of rows of class "
                              "probabilities")
    n, c = pb.shape
    out = (ctypes.c_double * n)()
    _check(lib.nnkit_mining_uncertainty(out, n, pb.ptr, n, c, _kind(kind)))
    return _doubles(out, n)


def uncertainty(model, x, kind="margin"):
    """How unsure a Net or an Ensemble is about each raw sample of x:
    kind "max_prob" (lowest max-probability first), "margin" (smallest
    margin between the two likeliest classes) or "entropy" (highest
    entropy); larger is more uncertain."""
    if isinstance(model, Net):
        xb, n = model._batch(x, raw=True)
        out = (ctypes.c_double * n)()
        _check(lib.nnkit_net_uncertainty(out, n, model.handle, xb.ptr, n, _kind(kind)))
        return _doubles(out, n)
    return uncertainty_of_probs(model.predict_proba(x), kind)


def top_k(scores, k):
    """Indices of the k largest scores, largest first (ties: lower index)."""
    n = len(scores)
    sb = (ctypes.c_double * n)(*[float(s) for s in scores])
    out = (ctypes.c_size_t * max(int(k), 1))()
    _check(lib.nnkit_mining_top_k(out, int(k), sb, n))
    idx = list(out)[:int(k)]
    return _np.asarray(idx, dtype=_np.int64) if _np is not None else idx


def hardest(ds, scores, k):
    """A new Dataset of the k samples of ds with the largest scores."""
    n = len(scores)
    sb = (ctypes.c_double * n)(*[float(s) for s in scores])
    h = ctypes.c_void_p()
    if n != len(ds):
        raise InvalidArgument(E_INVALID, "%d scores for a dataset of %d samples" %
                              (n, len(ds)))
    _check(lib.nnkit_mining_subset(ctypes.byref(h), ds.handle, sb, int(k)))
    return Dataset._wrap(h)


def per_sample_loss(net, x, y=None, *, targets=None):
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
