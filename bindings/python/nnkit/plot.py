"""Pictures, one call each, drawn with matplotlib and returned as a
matplotlib Figure (written as PNG when path is given). matplotlib's
backend is never chosen here: the figures are made without pyplot, so a
notebook, a GUI or a script keeps whatever backend it has.

  training_curves(history)      loss and accuracy, train and validation
  confusion_matrix(net, x, y)   the confusion matrix as an image
  filters(net)                  the first weighted layer's filters as a grid
  histograms(net, x, y)         activations and gradients per layer
  lr_finder(result)             loss against learning rate
  histograms_csv(path)          the per-layer histograms a C program wrote
  layer_stats(records, ...)     per-layer statistics over the epochs

History.plot, Net.plot_confusion, Net.plot_filters, Net.plot_histograms,
LRFinder.plot, History.plot_layer_stats and Monitor.plot call these.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._names import lookup
from .errors import E_INVALID, E_STATE, InvalidArgument, StateError
from .model import LAYER_STATS

__all__ = ["training_curves", "confusion_matrix", "filters", "histograms", "lr_finder",
           "layer_stats", "histograms_csv", "DPI"]

PathLike = Union[str, "os.PathLike[str]"]
DPI = 100  # pixels per inch of the PNG files: a (10, 4) inch figure is 1000 x 400


def _figure(size: Tuple[float, float]) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("nnkit's pictures need matplotlib (Debian: python3-matplotlib; "
                          "pip: matplotlib)") from None
    return Figure(figsize=size, dpi=DPI)


def _save(fig: Any, path: Optional[PathLike]) -> Any:
    if path is not None:
        fig.savefig(os.fspath(path), format="png", dpi=DPI)
    return fig


def training_curves(history: Any, path: Optional[PathLike] = None) -> Any:
    """Loss (left) and accuracy (right) per epoch, train and validation;
    1000 x 400 pixels."""
    n = len(history)
    if n == 0:
        raise StateError(E_STATE, "the history has no epochs to draw")
    fig = _figure((10, 4))
    a1, a2 = fig.subplots(1, 2)
    epochs = range(1, n + 1)
    for ax, metric, label in ((a1, "loss", "loss"), (a2, "acc", "accuracy")):
        for split in ("train", "val"):
            values = history.columns.get("%s_%s" % (split, metric), [])
            if values and not all(math.isnan(v) for v in values):
                ax.plot(epochs, values, ".-", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def confusion_matrix(net: Any, x: Any, y: Any = None, path: Optional[PathLike] = None) -> Any:
    """net's confusion matrix on a Dataset (or arrays x, y) as an image,
    rows the true class, columns the predicted one, counts written in the
    cells; 600 x 500 pixels."""
    m = net.confusion(x, y)
    k = len(m)
    fig = _figure((6, 5))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues")
    fig.colorbar(im, ax=ax)
    names = net.class_names or [str(i) for i in range(k)]
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names[:k], rotation=90 if k > 10 else 0)
    ax.set_yticklabels(names[:k])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(r) for r in m) if k else 0
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(m[i][j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i][j] > top / 2 else "black")
    total = sum(sum(r) for r in m)
    ax.set_title("accuracy %.4f on %d samples" %
                 (sum(m[i][i] for i in range(k)) / total if total else float("nan"), total))
    fig.tight_layout()
    return _save(fig, path)


def _first_weighted(net: Any) -> int:
    for i in range(net.num_layers):
        kind = net.describe(i).split()[0]
        if kind in ("dense", "conv2d"):
            return i
    raise InvalidArgument(E_INVALID, "the net has no dense or conv2d layer whose filters "
                          "could be drawn")


def filters(net: Any, path: Optional[PathLike] = None, layer: Optional[int] = None,
            max_filters: int = 64) -> Any:
    """The filters of the first dense or conv2d layer (or of `layer`) as a
    grid of images: a dense unit's weights in the shape of the net's input
    (a square for a flat input of a square size), a convolution's kernels
    (RGB for 3 input channels, else the first channel); 800 x 800 pixels."""
    import numpy as np
    i = _first_weighted(net) if layer is None else int(layer)
    kind = net.describe(i).split()[0]
    off, count = net.layer_params(i)
    params = np.array(net.params[off:off + count])
    if kind == "conv2d":
        cout = int(net.layer_get(i, "out_channels"))
        kh, kw = int(net.layer_get(i, "kernel_h")), int(net.layer_get(i, "kernel_w"))
        cin = (count - (cout if net.layer_get(i, "bias") else 0)) // (cout * kh * kw)
        w = params[:cout * cin * kh * kw].reshape(cout, cin, kh, kw)
        imgs = [w[o].transpose(1, 2, 0) if cin == 3 else w[o, 0] for o in range(cout)]
    elif kind == "dense":
        units = int(net.layer_get(i, "units"))
        fan_in = (count - units) // units
        w = params[:units * fan_in].reshape(units, fan_in)
        shape = net.input_shape if i == 0 or net.describe(i - 1).split()[0] == "flatten"             else (fan_in,)
        if math.prod(shape) != fan_in:
            shape = (fan_in,)
        if len(shape) == 1:
            side = math.isqrt(fan_in)
            shape = (side, side) if side * side == fan_in else (1, fan_in)
        elif len(shape) == 3:
            shape = shape[1:] if shape[0] != 3 else shape
        imgs = []
        for u in range(units):
            img = w[u].reshape(shape if len(shape) == 2 else (3,) + tuple(shape[1:]))
            imgs.append(img.transpose(1, 2, 0) if img.ndim == 3 else img)
    else:
        raise InvalidArgument(E_INVALID, "layer %d is a %s layer; filters() draws dense or "
                              "conv2d layers" % (i, kind))
    imgs = imgs[:max_filters]
    cols = math.ceil(math.sqrt(len(imgs)))
    rows = math.ceil(len(imgs) / cols)
    fig = _figure((8, 8))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, imgs):
        lo, hi = float(img.min()), float(img.max())
        norm = (img - lo) / (hi - lo) if hi > lo else img * 0
        ax.imshow(norm, cmap=None if norm.ndim == 3 else "gray", interpolation="nearest")
    fig.suptitle("layer %d (%s): %d filters" % (i, kind, len(imgs)))
    return _save(fig, path)


def histograms(net: Any, x: Any, y: Any = None, path: Optional[PathLike] = None,
               bins: int = 50) -> Any:
    """Per layer, the histogram of its activations on the batch x
    (evaluation mode) and, with labels/targets y, of its parameters'
    gradient (one forward and backward in the net's current mode; the
    gradient buffer is overwritten). One row per layer, 1000 pixels wide
    and 200 per layer high."""
    import numpy as np
    L = net.num_layers
    acts = [np.asarray(net.features(x, i)).ravel() for i in range(L)]
    grads: List[Optional[Any]] = [None] * L
    if y is not None:
        net.forward(x)
        if net.is_classifier:
            net.backward(labels=y)
        else:
            net.backward(targets=y)
        g = np.array(net.grads)
        for i in range(L):
            off, count = net.layer_params(i)
            if count:
                grads[i] = g[off:off + count]
    cols = 2 if y is not None else 1
    fig = _figure((10, 2 * L))
    axes = fig.subplots(L, cols, squeeze=False)
    for i in range(L):
        name = net.describe(i).split()[0]
        ax = axes[i][0]
        ax.hist(acts[i], bins=bins, color="tab:blue", histtype="stepfilled")
        ax.set_title("layer %d %s: activations (mean %.3g, std %.3g)"
                     % (i, name, float(acts[i].mean()), float(acts[i].std())), fontsize=8)
        if cols == 2:
            ax = axes[i][1]
            if grads[i] is None:
                ax.axis("off")
            else:
                ax.hist(grads[i], bins=bins, color="tab:orange", histtype="stepfilled")
                ax.set_title("layer %d %s: gradients (|g| mean %.3g)"
                             % (i, name, float(np.abs(grads[i]).mean())), fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def histograms_csv(csv_path: PathLike, path: Optional[PathLike] = None) -> Any:
    """Draws a histogram file of Net.save_histograms_csv or
    nnkit_net_save_histograms_csv ("layer,kind,bin_lo,bin_hi,count", the
    C init_study example's init_study_<name>.csv): one panel per layer,
    five panels a row, 1200 pixels wide and 200 per row high."""
    import csv
    layers: Dict[int, Tuple[str, List[float], List[float], List[float]]] = {}
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:5] != ["layer", "kind", "bin_lo", "bin_hi", "count"]:
        raise InvalidArgument(E_INVALID, "%s is not a histogram file: its header is not "
                              "layer,kind,bin_lo,bin_hi,count" % os.fspath(csv_path))
    for r in rows[1:]:
        if len(r) < 5:
            continue
        entry = layers.setdefault(int(r[0]), (r[1], [], [], []))
        entry[1].append(float(r[2]))
        entry[2].append(float(r[3]))
        entry[3].append(float(r[4]))
    if not layers:
        raise StateError(E_STATE, "%s holds no histogram" % os.fspath(csv_path))
    cols = min(5, len(layers))
    rows_n = math.ceil(len(layers) / cols)
    fig = _figure((12, 2 * rows_n))
    axes = fig.subplots(rows_n, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (layer, (kind, lo, hi, count)) in zip(axes.flat, sorted(layers.items())):
        ax.axis("on")
        ax.stairs(count, lo + hi[-1:], fill=True)
        ax.set_title("layer %d %s" % (layer, kind), fontsize=8)
        ax.tick_params(labelsize=6)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.08 / rows_n, top=1 - 0.12 / rows_n,
                        wspace=0.35, hspace=0.6)
    return _save(fig, path)


def lr_finder(result: Any, path: Optional[PathLike] = None) -> Any:
    """The learning-rate range test (Trainer.find_lr): loss against the
    learning rate on a log axis, the suggestion marked; 700 x 450 pixels."""
    suggested, lrs, losses = result
    if not lrs:
        raise StateError(E_STATE, "the learning-rate finder recorded no step")
    fig = _figure((7, 4.5))
    ax = fig.subplots()
    ax.plot(lrs, losses, ".-")
    ax.set_xscale("log")
    finite = [v for v in losses if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.95, min(max(finite), finite[0] * 4) * 1.05)
    if suggested > 0:
        ax.axvline(suggested, color="tab:red", linestyle="--",
                   label="suggested lr %.3g" % suggested)
        ax.legend()
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title("learning-rate range test")
    fig.tight_layout()
    return _save(fig, path)


_STAT_TITLES = {"act_mean": "activation mean", "act_std": "activation std",
                "saturated": "saturated fraction", "dead": "dead ReLU fraction",
                "grad_norm": "gradient norm", "update_ratio": "update / weight ratio",
                "param_norm": "parameter norm"}
_LOG_STATS = ("grad_norm", "update_ratio", "param_norm")


def layer_stats(records: Dict[str, List[List[float]]], stats: Union[str, Sequence[str]],
                names: Optional[Sequence[str]], path: Optional[PathLike] = None,
                title: Optional[str] = None) -> Any:
    """One subplot per statistic of records {stat: [[value per layer] per
    epoch]}: a line per layer over the epochs, or bars over the layers when
    there is one epoch. Layers where a statistic is NaN throughout (a ReLU's
    gradient norm, a dense layer's dead fraction) are left out of it, and so
    are statistics no layer has (saturation without tanh or sigmoid)."""
    stats = (stats,) if isinstance(stats, str) else tuple(stats)
    for k in stats:
        lookup(LAYER_STATS, k, "layer statistic")
    if not any(records.get(k) for k in stats):
        raise StateError(E_STATE, "no per-layer statistics to plot (the trainer's "
                         "layer_stats setting was off, or nothing was measured)")
    stats = [k for k in stats if records.get(k) and
             not all(math.isnan(v) for row in records[k] for v in row)]
    if not stats:
        raise StateError(E_STATE, "every requested statistic is NaN for every layer")
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator
    epochs = len(records[stats[0]])
    L = len(records[stats[0]][0])
    names = list(names) if names else ["layer %d" % l for l in range(L)]
    cmap = colormaps["tab10" if L <= 10 else "viridis"]
    colour = [cmap(l % 10) if L <= 10 else cmap(l / max(L - 1, 1)) for l in range(L)]
    cols = min(3, len(stats))
    rows = (len(stats) + cols - 1) // cols
    fig = _figure((4.5 * cols, 3.4 * rows + 0.8))
    axes = fig.subplots(rows, cols, squeeze=False)
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
    return _save(fig, path)
