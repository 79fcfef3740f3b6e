"""The network: Net, a sequential stack of layers (include/nnkit/net.h),
with Keras-style fit / evaluate / predict on NumPy arrays or Datasets."""
from __future__ import annotations

import ctypes
import math
import os
import weakref
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ._arrays import Buffer, _np, as_int, label_buffer, samples, to_result
from ._handle import Handle
from ._lib import lib
from ._names import lookup, name_of, table
from .data import Dataset, Normalizer, _NetNormalizer
from .errors import E_INVALID, E_SHAPE, E_STATE, InvalidArgument, ShapeError, StateError
from .layers import InitSpec, Layer, _as_init

__all__ = ["Net", "LOSS", "LAYER_KEYS", "LAYER_STATS"]

LOSS = table("nnkit_loss", cross_entropy="softmax_cross_entropy")
# Layer options (nnkit_layer_param), by the names model files use ("p" is
# the dropout probability, NNKIT_LAYER_DROP_P).
LAYER_KEYS = table("nnkit_layer_param", p="drop_p")
LAYER_STATS = table("nnkit_layer_stat")


def _check_supervision(labels: Any, targets: Any, n: int,
                       nout: int) -> Tuple[Optional[Buffer], Optional[Buffer]]:
    """C buffers of a batch's labels/targets, checked against its n samples
    (and nout outputs) before C reads them: a short buffer would be read
    past its end."""
    lb = tb = None
    if labels is not None:
        lb = label_buffer(labels)
        if lb.count != n:
            raise ShapeError(E_SHAPE, "labels have shape %s for a batch of %d samples; "
                             "expected (%d,)" % (tuple(lb.shape), n, n))
    if targets is not None:
        tb = Buffer(targets, ctypes.c_float, "f", "targets")
        if tb.count != n * nout:
            raise ShapeError(E_SHAPE, "%d targets for a batch of %d samples of %d outputs "
                             "(%d expected)" % (tb.count, n, nout, n * nout))
    return lb, tb


def _layer_key(key: Union[str, int]) -> int:
    return lookup(LAYER_KEYS, key, "layer option")


class Net(Handle):
    """A sequential network: Net((784,), [Dense(128), ReLU(), Dense(10)]).

    loss is 'cross_entropy' (softmax + cross-entropy on integer class
    labels) or 'mse' (float targets). repr: Net(784 -> 128 -> 10, 101,770
    params)."""
    _free = lib.nnkit_net_free

    _fwd_batch = None  # samples of the last forward(), for backward()'s check
    _views = 0         # live .params/.grads views (they pin the net)

    _input_shape: Optional[Tuple[int, ...]] = None

    def __init__(self, input_shape: Union[int, Sequence[int]], layers: Iterable[Layer] = (),
                 seed: int = 0, loss: str = "cross_entropy") -> None:
        super().__init__()
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        if not isinstance(input_shape, (tuple, list)):
            raise TypeError("input_shape must be an int or a tuple of ints, not %s"
                            % type(input_shape).__name__)
        input_shape = tuple(as_int(d, "an input dimension", 1) for d in input_shape)
        self._input_shape = input_shape
        shape = (ctypes.c_size_t * len(input_shape))(*input_shape)
        lib.nnkit_net_create(ctypes.byref(self._h), shape, len(input_shape),
                             int(seed))
        for layer in layers:
            self.add(layer)
        self.loss = loss

    def __repr__(self) -> str:
        if self.closed:
            return "Net(closed)"
        sizes = [str(self.input_size)]
        for i in range(self.num_layers):
            d = self.describe(i).split()[0]
            if d in ("dense", "conv2d", "flatten", "global_avgpool", "maxpool2d",
                     "avgpool2d") or i == self.num_layers - 1:
                n = math.prod(self.layer_shape(i))
                if sizes[-1] != str(n):
                    sizes.append(str(n))
        return "Net(%s, %s params)" % (" -> ".join(sizes), format(self.num_params, ","))

    def _check_no_views(self, what: str) -> None:
        if self._views:
            raise StateError(E_STATE, "%s would move the parameter buffer while %d "
                             "view(s) from .params/.grads are alive; delete them first "
                             "(keep copies instead: numpy.array(net.params) or "
                             "list(net.params))" % (what, self._views))

    def add(self, layer: Layer) -> "Net":
        """Appends a layer (StateError while .params/.grads views are alive:
        adding a layer reallocates the buffer they look at)."""
        self._check_no_views("add()")
        if not isinstance(layer, Layer):
            raise TypeError("Net.add takes a layer (Dense(10), ReLU(), ...), not %s"
                            % type(layer).__name__)
        self._fwd_batch = None
        layer._add(self)
        return self

    @property
    def loss(self) -> str:
        """The loss: 'cross_entropy' (softmax + cross-entropy, C's
        NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY; 'softmax_cross_entropy' is accepted
        too) or 'mse'."""
        name = name_of(LOSS, lib.nnkit_net_get_loss(self.handle))
        return "cross_entropy" if name == "softmax_cross_entropy" else name

    @loss.setter
    def loss(self, kind: str) -> None:
        lib.nnkit_net_set_loss(self.handle, lookup(LOSS, kind, "loss"))

    @property
    def is_classifier(self) -> bool:
        """True when the loss takes integer class labels."""
        return lib.nnkit_net_get_loss(self.handle) != LOSS["mse"]

    @property
    def training(self) -> bool:
        """Training mode (dropout on, batch statistics) or evaluation mode."""
        return bool(lib.nnkit_net_is_training(self.handle))

    @training.setter
    def training(self, on: bool) -> None:
        lib.nnkit_net_set_training(self.handle, int(bool(on)))

    @property
    def num_layers(self) -> int:
        """Number of layers."""
        return lib.nnkit_net_num_layers(self.handle)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """The shape of one input sample (as created; (input_size,) for a
        loaded net)."""
        return self._input_shape or (self.input_size,)

    @property
    def input_size(self) -> int:
        """Floats per input sample."""
        return lib.nnkit_net_input_size(self.handle)

    @property
    def output_size(self) -> int:
        """Outputs per sample (classes of a classifier)."""
        return lib.nnkit_net_output_size(self.handle)

    @property
    def num_params(self) -> int:
        """Number of parameters (floats)."""
        return lib.nnkit_net_num_params(self.handle)

    def _layer_index(self, i: int) -> int:
        i = as_int(i, "the layer index")
        if not 0 <= i < self.num_layers:
            raise InvalidArgument(E_INVALID, "layer %d does not exist; the net has layers "
                                  "0 to %d" % (i, self.num_layers - 1))
        return i

    def layer_shape(self, i: int) -> Tuple[int, ...]:
        """The output shape of layer i (one sample)."""
        i = self._layer_index(i)
        dims = (ctypes.c_size_t * 3)()
        nd = ctypes.c_size_t()
        lib.nnkit_net_layer_shape(dims, 3, ctypes.byref(nd), self.handle, i)
        return tuple(dims[:nd.value])

    def describe(self, i: Optional[int] = None) -> Union[str, List[str]]:
        """A one-line description of layer i ("dense 784 -> 128, 100480
        params"), or the list of all of them."""
        if i is None:
            return [self.describe(k) for k in range(self.num_layers)]
        return lib.nnkit_net_layer_describe(self.handle, self._layer_index(i)).decode()

    def layer_get(self, i: int, key: Union[str, int]) -> float:
        """Option `key` of layer i, e.g. net.layer_get(3, "p") for a dropout
        layer's drop probability (names: LAYER_KEYS)."""
        out = ctypes.c_double()
        lib.nnkit_net_layer_get(ctypes.byref(out), self.handle, i,
                                _layer_key(key))
        return out.value

    def layer_set(self, i: int, key: Union[str, int], value: float) -> None:
        """Changes a settable option of layer i (dropout "p", batch norm
        "momentum" and "eps", leaky ReLU "slope"); shape options raise."""
        lib.nnkit_net_layer_set(self.handle, i, _layer_key(key),
                                float(value))

    def layer_bounds(self, i: int, key: Union[str, int]) -> Tuple[float, float, int]:
        """(lo, hi, flags) of option `key` of layer i, as Optimizer.bounds."""
        from .optim import _bounds
        return _bounds(lib.nnkit_net_layer_bounds, self.handle, i, _layer_key(key))

    def layer_params(self, i: int) -> Tuple[int, int]:
        """(offset, count) of layer i's slice of the parameter buffer."""
        off, cnt = ctypes.c_size_t(), ctypes.c_size_t()
        lib.nnkit_net_layer_params(ctypes.byref(off), ctypes.byref(cnt),
                                   self.handle, i)
        return off.value, cnt.value

    def init_params(self) -> None:
        """Draws new parameters from the initializers (the net's seed)."""
        lib.nnkit_net_init_params(self.handle)

    def save(self, path: Union[str, "os.PathLike[str]"],
             normalizer: Optional[Normalizer] = None) -> None:
        """Writes the net, its class names and the fitted normalizer its
        inputs go through (normalizer if given, else the net's own, if any)
        to a safetensors model file with a checksum, atomically; see
        doc/file-format.md for the layout. PyTorch reads the weights."""
        lib.nnkit_net_save(self.handle,
                           normalizer.handle if normalizer is not None else None,
                           os.fsencode(path))

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], with_normalizer: bool = False) -> Any:
        """Reads a model file written by save(): the net, in evaluation mode,
        with its class names and the saved normalizer attached (net.normalizer),
        so predict, predict_proba and evaluate take raw samples. With
        with_normalizer=True the pair (net, normalizer), the normalizer an
        independent copy (None when the file has none). Bad or corrupt files
        raise FormatError, missing or unreadable ones IOFailure, with the C
        library's sentence."""
        h, nz = ctypes.c_void_p(), ctypes.c_void_p()
        lib.nnkit_net_load(ctypes.byref(h),
                           ctypes.byref(nz) if with_normalizer else None,
                           os.fsencode(path))
        net = cls._wrap(h)
        if not with_normalizer:
            return net
        return net, (Normalizer._wrap(nz) if nz else None)

    @property
    def normalizer(self) -> Optional[Normalizer]:
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

    def set_normalizer(self, normalizer: Optional[Normalizer]) -> None:
        """Attaches a copy of a fitted normalizer (None removes it): from
        then on predict, predict_proba, evaluate and confusion take raw
        samples; forward, backward and fit still take normalized ones."""
        lib.nnkit_net_set_normalizer(
            self.handle, normalizer.handle if normalizer is not None else None)
        self._drop_view()

    def _drop_view(self) -> None:
        view = getattr(self, "_nz_view", None)
        if view is not None:
            view.close()
            self._nz_view = None

    def close(self) -> None:
        """Frees the net (see Handle.close)."""
        self._drop_view()
        super().close()

    @property
    def class_names(self) -> Optional[List[str]]:
        """The names of the outputs (a list of str), or None."""
        names = []
        for i in range(self.output_size):
            n = lib.nnkit_net_class_name(self.handle, i)
            if n is None:
                break
            names.append(n.decode())
        return names or None

    @class_names.setter
    def class_names(self, names: Optional[Sequence[str]]) -> None:
        if not names:
            lib.nnkit_net_set_class_names(self.handle, None, 0)
            return
        enc = [str(n).encode() for n in names]
        arr = (ctypes.c_char_p * len(enc))(*enc)
        lib.nnkit_net_set_class_names(self.handle, arr, len(enc))

    def set_init(self, layer: int, weights: InitSpec = None, bias: InitSpec = None) -> None:
        """Sets the initializers of a layer's weights and biases."""
        w, b = _as_init(weights), _as_init(bias)
        lib.nnkit_net_set_init(self.handle, layer, w.handle if w else None,
                               b.handle if b else None)

    def _buffer(self, fn: Any) -> Any:
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

    def _view_gone(self) -> None:
        self._views -= 1
        self._unpin()

    @property
    def params(self) -> Any:
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
    def grads(self) -> Any:
        """Live view of the gradient buffer, with the rules of .params."""
        return self._buffer(lib.nnkit_net_grads)

    def _batch(self, x: Any, raw: bool = False) -> Tuple[Buffer, int]:
        """x as a C buffer and its sample count; raw: samples for the
        raw-input calls (of the attached normalizer's input size)."""
        self._fwd_batch = None  # any call that runs the net replaces the batch
        shape, owner = self.input_shape, "the net"
        if raw:
            h = lib.nnkit_net_normalizer(self.handle)
            if h:
                shape = (lib.nnkit_normalizer_in_size(h),)
                owner = "the net's normalizer"
        return samples(x, shape, "x", owner)

    def forward(self, x: Any) -> Any:
        """Outputs for already-normalized samples, shape (n, output_size)
        (the attached normalizer, if any, is not applied; predict and
        predict_proba apply it)."""
        xb, n = self._batch(x)
        nout = lib.nnkit_net_output_size(self.handle)
        out = (ctypes.c_float * (n * nout))()
        lib.nnkit_net_forward(self.handle, xb.ptr, n, out, len(out))
        self._fwd_batch = n
        return to_result(out, len(out), (n, nout))

    def backward(self, labels: Any = None, targets: Any = None) -> float:
        """Loss of the last forward batch; fills the gradient buffer."""
        # The Buffer objects must outlive the call: they own the memory.
        h = self.handle
        n = self._fwd_batch
        if n is None:
            raise StateError(E_STATE, "backward() needs a preceding forward() of this "
                             "net (none since it was created, changed or used by "
                             "another call)")
        lb, tb = _check_supervision(labels, targets, n, lib.nnkit_net_output_size(h))
        loss = ctypes.c_double()
        lib.nnkit_net_backward(h, lb.ptr if lb else None, tb.ptr if tb else None,
                               ctypes.byref(loss))
        return loss.value

    def predict(self, x: Any) -> Any:
        """Class ids (int32, shape (n,)) of raw samples x, an array of shape
        (n,) + input_shape (through the attached normalizer)."""
        xb, n = self._batch(x, raw=True)
        out = (ctypes.c_int32 * n)()
        lib.nnkit_net_predict(out, self.handle, xb.ptr, n)
        return to_result(out, n, None, ctypes.c_int32)

    def predict_proba(self, x: Any) -> Any:
        """Class probabilities (shape (n, output_size)) of raw samples
        (through the attached normalizer)."""
        xb, n = self._batch(x, raw=True)
        out = (ctypes.c_float * (n * self.output_size))()
        lib.nnkit_net_predict_proba(out, len(out), self.handle, xb.ptr, n)
        return to_result(out, len(out), (n, self.output_size))

    def evaluate(self, x: Any, y: Any = None) -> Tuple[float, float]:
        """(mean loss, accuracy) on a Dataset, or on arrays x and y (labels
        or targets as the loss needs), of raw samples (through the attached
        normalizer), in evaluation mode. Accuracy is NaN for a regression
        net."""
        from .train import as_dataset
        ds, owned = as_dataset(self, x, y, "evaluate", raw=True)
        try:
            self._fwd_batch = None
            loss, acc = ctypes.c_double(), ctypes.c_double()
            lib.nnkit_net_evaluate(ctypes.byref(loss), ctypes.byref(acc), self.handle,
                                   ds.handle)
            return loss.value, acc.value
        finally:
            if owned:
                ds.close()

    def fit(self, x: Any, y: Any = None, *, validation_split: float = 0.0,
            validation_data: Any = None, epochs: int = 10, batch_size: int = 64,
            optimizer: Any = None, lr: float = 0.01, seed: int = 0, shuffle: bool = True,
            verbose: Union[bool, int] = False, log: Any = None, callbacks: Sequence[Any] = (),
            early_stopping: Optional[Dict[str, Any]] = None, **settings: float) -> Any:
        """Trains with a Trainer and returns its History (Keras's fit).

        x: a NumPy array (or nested lists) of samples, shape (n,) +
        input_shape, with y their integer class labels (or float targets
        for loss='mse'); or a Dataset or Pipeline (y then is not needed; a
        Dataset given as y is taken as the validation set, the older form
        fit(train, val)). Arrays become a Dataset of the same values, so a
        fit on arrays equals the fit on the equivalent Dataset bit for bit.

        validation_data: a Dataset or (x_val, y_val); validation_split:
        the fraction of the samples held out for validation, taken from
        the end as Keras does (before any shuffling).

        optimizer: an Optimizer (default SGD at lr). verbose: True/1 logs
        one line per epoch through Python (sys.stdout, or log: a
        logging.Logger or a function of one line), with a progress bar
        and ETA per epoch on a terminal or in a notebook; 2 adds a line
        every tenth of an epoch. callbacks: objects with optional
        on_batch(epoch, batch, loss) / on_epoch(epoch, trainer) methods (or
        plain functions, called per epoch) returning None/0 to go on, >0
        to stop; an exception stops training and is re-raised here.
        early_stopping: dict(monitor='val_loss', patience=5, min_delta=0).
        settings: further Trainer settings (TRAIN_KEYS)."""
        from .train import fit
        return fit(self, x, y, validation_split=validation_split,
                   validation_data=validation_data, epochs=epochs, batch_size=batch_size,
                   optimizer=optimizer, lr=lr, seed=seed, shuffle=shuffle, verbose=verbose,
                   log=log, callbacks=callbacks, early_stopping=early_stopping, **settings)

    def set_trainable(self, layer: int, trainable: bool = True) -> None:
        """Freezes (False) or unfreezes a layer's parameters."""
        lib.nnkit_net_set_trainable(self.handle, self._layer_index(layer),
                                    int(bool(trainable)))

    def is_trainable(self, layer: int) -> bool:
        """Whether a layer's parameters are updated by the optimizer."""
        return bool(lib.nnkit_net_is_trainable(self.handle, self._layer_index(layer)))

    def set_lr_multiplier(self, layer: int, mult: float) -> None:
        """Scales the learning rate of one layer's parameters."""
        lib.nnkit_net_set_lr_multiplier(self.handle, self._layer_index(layer), float(mult))

    def cut(self, keep: int) -> "Net":
        """Keeps the first `keep` layers and removes the others (transfer
        learning: cut before the head, then add() a new one). The kept
        layers' parameters, statistics, trainable flags and learning-rate
        multipliers stay bit for bit; views from .params/.grads taken
        before would be invalid, so cut() raises StateError while any
        is alive, and an Optimizer that has stepped
        this net needs reset(). Returns the net."""
        self._check_no_views("cut()")
        self._fwd_batch = None
        lib.nnkit_net_cut(self.handle, as_int(keep, "keep", 0))
        return self

    def features(self, x: Any, layer: int, dataset: bool = False) -> Any:
        """The outputs of layer `layer` in evaluation mode ("CNN codes"):
        for samples x (as predict takes them) or a Dataset, an array of
        shape (n,) + layer_shape(layer) (nested lists without NumPy). With
        a Dataset and dataset=True, a new Dataset of those outputs with the
        same labels/targets and class names instead, ready to fit a small
        classifier on."""
        layer = as_int(layer, "layer")
        if layer < 0:
            raise InvalidArgument(E_INVALID, "layer %d is negative; the net's layers are "
                                  "numbered from 0 (num_layers is %d)"
                                  % (layer, self.num_layers))
        if isinstance(x, Dataset):
            self._fwd_batch = None
            h = ctypes.c_void_p()
            lib.nnkit_net_features(ctypes.byref(h), self.handle, layer, x.handle)
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
            lib.nnkit_net_features_batch(dummy, 1, self.handle, layer, xb.ptr, n)
        shape = self.layer_shape(layer)
        out = (ctypes.c_float * (n * math.prod(shape)))()
        lib.nnkit_net_features_batch(out, len(out), self.handle, layer, xb.ptr, n)
        return to_result(out, len(out), (n,) + shape)

    def layer_stats(self, x: Any, labels: Any = None,
                    stats: Sequence[str] = ("act_mean", "act_std", "saturated", "dead",
                                            "grad_norm")) -> Dict[str, List[float]]:
        """Per-layer statistics of one batch: {stat: [value per layer]}
        (names: LAYER_STATS)."""
        xb, n = self._batch(x)
        lb, _ = _check_supervision(labels, None, n, 0)
        keys = (ctypes.c_int * len(stats))(*[lookup(LAYER_STATS, k, "layer statistic")
                                              for k in stats])
        out = (ctypes.c_double * (len(stats) * self.num_layers))()
        lib.nnkit_net_layer_stats(out, len(out), keys, len(stats), self.handle,
                                  xb.ptr, lb.ptr if lb else None, None, n)
        L, S = self.num_layers, len(stats)  # out[l * S + j]: stat j of layer l
        return {k: [out[l * S + j] for l in range(L)] for j, k in enumerate(stats)}

    def confusion(self, x: Any, y: Any = None) -> List[List[int]]:
        """Confusion matrix (rows = true class, columns = predicted) on a
        Dataset or on arrays x, y of raw samples, as a list of lists."""
        from .train import as_dataset
        ds, owned = as_dataset(self, x, y, "confusion", raw=True)
        try:
            self._fwd_batch = None
            k = max(ds.num_classes, self.output_size)
            out = (ctypes.c_size_t * (k * k))()
            lib.nnkit_net_confusion(out, len(out), self.handle, ds.handle)
            return [list(out[r * k:(r + 1) * k]) for r in range(k)]
        finally:
            if owned:
                ds.close()

    def activation_histogram(self, layer: int, bins: int = 50, lo: float = -1.0,
                             hi: float = 1.0) -> List[int]:
        """Counts of the last forward's activations of a layer in bins over [lo, hi]."""
        bins = as_int(bins, "bins", 1)
        out = (ctypes.c_uint64 * bins)()
        lib.nnkit_net_activation_histogram(out, bins, float(lo), float(hi), self.handle,
                                           self._layer_index(layer))
        return list(out)

    def save_histograms_csv(self, path: Union[str, "os.PathLike[str]"], bins: int = 40,
                            lo: float = -1.0, hi: float = 1.0) -> None:
        """Writes the histograms of every layer's outputs of the last
        forward batch as CSV "layer,kind,bin_lo,bin_hi,count" (layers
        1-based), atomically; nnkit.plot.histograms_csv draws the file."""
        lib.nnkit_net_save_histograms_csv(self.handle, os.fsencode(path),
                                          as_int(bins, "bins", 1), float(lo), float(hi))

    # Pictures (nnkit.plot); each writes a PNG when path is given and
    # returns the matplotlib Figure.
    def plot_confusion(self, x: Any, y: Any = None, path: Any = None) -> Any:
        """The confusion matrix on a Dataset (or arrays x, y) as an image."""
        from .plot import confusion_matrix
        return confusion_matrix(self, x, y, path=path)

    def plot_filters(self, path: Any = None, layer: Optional[int] = None) -> Any:
        """The first weighted layer's filters (or layer's) as an image grid."""
        from .plot import filters
        return filters(self, path=path, layer=layer)

    def plot_histograms(self, x: Any, y: Any = None, path: Any = None) -> Any:
        """Histograms of every layer's activations and of the gradients of
        every weighted layer, on a batch x (with labels/targets y for the
        gradients)."""
        from .plot import histograms
        return histograms(self, x, y, path=path)
