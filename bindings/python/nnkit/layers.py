"""Initializers and layer descriptions (include/nnkit/init.h, net.h): a
layer object describes one ``nnkit_net_add_*`` call that Net.add makes."""
from __future__ import annotations

import ctypes
from typing import Any, Optional, Sequence, Tuple, Union

from ._arrays import as_int, to_result
from ._handle import Handle
from ._lib import lib
from ._names import lookup, name_of, table
from ._prototypes import NNKIT_PAD_SAME

__all__ = ["Init", "Layer", "Dense", "Activation", "ReLU", "Tanh", "Sigmoid", "Softmax",
           "LeakyReLU", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool", "Flatten",
           "BatchNorm", "LayerNorm", "Dropout", "SpatialDropout", "INIT_KINDS", "ACT",
           "SAME"]

INIT_KINDS = table("nnkit_init_kind")
ACT = table("nnkit_activation")
SAME = NNKIT_PAD_SAME

Pair = Union[int, Tuple[int, int]]
InitSpec = Union[None, str, "Init", Sequence[Any]]


class Init(Handle):
    """A parameter initializer: Init('he_normal'), Init('normal', 0, 0.01).
    Kinds: INIT_KINDS."""
    _free = lib.nnkit_init_free

    def __init__(self, kind: Union[str, int], a: float = 0.0, b: float = 0.0) -> None:
        super().__init__()
        lib.nnkit_init_create(ctypes.byref(self._h), lookup(INIT_KINDS, kind, "initializer"),
                              float(a), float(b))

    def __repr__(self) -> str:
        return "Init(closed)" if self.closed else "Init(%r)" % self.kind

    @property
    def kind(self) -> str:
        """The initializer's name, e.g. 'he_normal'."""
        return name_of(INIT_KINDS, lib.nnkit_init_get_kind(self.handle))

    def sample(self, n: int, fan_in: int = 1, fan_out: int = 1, seed: int = 0,
               stream: int = 0) -> Any:
        """n values drawn as for a layer of the given fans."""
        n = as_int(n, "n", 0)
        buf = (ctypes.c_float * n)()
        lib.nnkit_init_fill(self.handle, buf, n, as_int(fan_in, "fan_in", 0),
                            as_int(fan_out, "fan_out", 0), int(seed), int(stream))
        return to_result(buf, n)


def _as_init(spec: InitSpec) -> Optional[Init]:
    if spec is None or isinstance(spec, Init):
        return spec
    if isinstance(spec, str):
        return Init(spec)
    return Init(*spec)


class Layer:
    """A layer description; Net.add(layer) appends the layer it describes."""

    def _add(self, net: Any) -> None:
        raise TypeError("%s is not a concrete layer" % type(self).__name__)

    def __repr__(self) -> str:
        return "%s()" % type(self).__name__


class Dense(Layer):
    """Fully connected layer of `units` outputs; optional initializers
    (an Init, a kind name, or (kind, a, b))."""

    def __init__(self, units: int, weight_init: InitSpec = None,
                 bias_init: InitSpec = None) -> None:
        self.units = as_int(units, "Dense units", 1)
        self.weight_init, self.bias_init = weight_init, bias_init

    def __repr__(self) -> str:
        return "Dense(%d)" % self.units

    def _add(self, net: Any) -> None:
        lib.nnkit_net_add_dense(net.handle, self.units)
        if self.weight_init or self.bias_init:
            w = _as_init(self.weight_init)
            b = _as_init(self.bias_init)
            lib.nnkit_net_set_init(net.handle, net.num_layers - 1,
                                   w.handle if w else None, b.handle if b else None)


class Activation(Layer):
    """An activation layer by name (ACT: relu, leaky_relu, tanh, sigmoid,
    softmax)."""

    def __init__(self, kind: str) -> None:
        self.code = lookup(ACT, kind, "activation")
        self.kind = kind

    def __repr__(self) -> str:
        return "Activation(%r)" % self.kind

    def _add(self, net: Any) -> None:
        lib.nnkit_net_add_activation(net.handle, self.code)


def ReLU() -> Activation:
    """max(0, x)."""
    return Activation("relu")


def Tanh() -> Activation:
    """tanh(x)."""
    return Activation("tanh")


def Sigmoid() -> Activation:
    """1 / (1 + exp(-x))."""
    return Activation("sigmoid")


def Softmax() -> Activation:
    """Softmax over each sample's outputs."""
    return Activation("softmax")


class LeakyReLU(Layer):
    """max(slope x, x)."""

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = float(slope)

    def __repr__(self) -> str:
        return "LeakyReLU(%g)" % self.slope

    def _add(self, net: Any) -> None:
        lib.nnkit_net_add_leaky_relu(net.handle, self.slope)


class _Simple(Layer):
    """A layer added by one C call with fixed arguments."""

    def __init__(self, label: str, fn: str, *args: Any) -> None:
        self.label, self.fn, self.args = label, fn, args

    def __repr__(self) -> str:
        return self.label

    def _add(self, net: Any) -> None:
        getattr(lib, self.fn)(net.handle, *self.args)


def _pair(v: Pair, what: str) -> Tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError("%s must be an int or a pair (h, w), not %r" % (what, v))
        return as_int(v[0], what, 0), as_int(v[1], what, 0)
    return as_int(v, what, 0), as_int(v, what, 0)


def Conv2D(out_channels: int, kernel: Pair = 3, stride: Pair = 1,
           padding: Union[str, Pair] = "same", bias: bool = True) -> Layer:
    """Convolution; kernel/stride/padding are ints or (h, w); padding 'same'
    keeps the spatial size (at stride 1)."""
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    if padding == "same":
        ph = pw = SAME
    else:
        ph, pw = _pair(padding, "padding")
    return _Simple("Conv2D(%d, %s)" % (out_channels, (kh, kw) if kh != kw else kh),
                   "nnkit_net_add_conv2d", as_int(out_channels, "out_channels", 1),
                   kh, kw, sh, sw, ph, pw, int(bool(bias)))


def _pool(name: str, fn: str, kernel: Pair, stride: Optional[Pair], padding: Pair) -> Layer:
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(kernel if stride is None else stride, "stride")
    ph, pw = _pair(padding, "padding")
    return _Simple("%s(%s)" % (name, (kh, kw) if kh != kw else kh), fn, kh, kw, sh, sw, ph, pw)


def MaxPool2D(kernel: Pair = 2, stride: Optional[Pair] = None, padding: Pair = 0) -> Layer:
    """Max pooling; stride defaults to the kernel."""
    return _pool("MaxPool2D", "nnkit_net_add_maxpool2d", kernel, stride, padding)


def AvgPool2D(kernel: Pair = 2, stride: Optional[Pair] = None, padding: Pair = 0) -> Layer:
    """Average pooling; stride defaults to the kernel."""
    return _pool("AvgPool2D", "nnkit_net_add_avgpool2d", kernel, stride, padding)


def GlobalAvgPool() -> Layer:
    """Averages each channel over its whole map."""
    return _Simple("GlobalAvgPool()", "nnkit_net_add_global_avgpool")


def Flatten() -> Layer:
    """Reshapes each sample to one dimension."""
    return _Simple("Flatten()", "nnkit_net_add_flatten")


def BatchNorm(momentum: float = 0.1, eps: float = 1e-5) -> Layer:
    """Batch normalization (per feature, or per channel after a convolution)."""
    return _Simple("BatchNorm()", "nnkit_net_add_batchnorm", float(momentum), float(eps))


def LayerNorm(eps: float = 1e-5) -> Layer:
    """Layer normalization over each whole sample (PyTorch's nn.LayerNorm
    with normalized_shape = the sample shape)."""
    return _Simple("LayerNorm()", "nnkit_net_add_layernorm", float(eps))


def Dropout(p: float = 0.5) -> Layer:
    """Inverted dropout with drop probability p (training mode only)."""
    return _Simple("Dropout(%g)" % float(p), "nnkit_net_add_dropout", float(p))


def SpatialDropout(p: float = 0.5) -> Layer:
    """Drops whole channels with probability p (training mode only)."""
    return _Simple("SpatialDropout(%g)" % float(p), "nnkit_net_add_spatial_dropout", float(p))
