"""Shared helpers of the Python examples: import path, digits loading, args."""
import argparse
import itertools
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))

import nnkit  # noqa: E402


def args(doc, epochs=10, extra=None, threads=0):
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--data", default=os.path.join(ROOT, "data", "digits"))
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=threads)
    p.add_argument("--out", default=".", help="directory for PNG/CSV output")
    if extra:
        extra(p)
    a = p.parse_args()
    nnkit.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    return a


def digits(data, standardize=True):
    """(train, test) from the four MNIST-named files, scaled with the
    training set's statistics only."""
    def load(prefix):
        return nnkit.Dataset.load_idx(os.path.join(data, prefix + "-images-idx3-ubyte.gz"),
                                      os.path.join(data, prefix + "-labels-idx1-ubyte.gz"))
    train, test = load("train"), load("t10k")
    if standardize:
        nz = nnkit.Normalizer("standardize", with_std=0).fit(train)  # mean image
        nz.apply(train)
        nz.apply(test)
        train.scale(1 / 255.0)
        test.scale(1 / 255.0)
    else:
        train.scale(1 / 255.0)
        test.scale(1 / 255.0)
    return train, test


def load_digits(data):
    """(train, test) as stored: pixels 0..255, labels 0..9."""
    def load(prefix):
        return nnkit.Dataset.load_idx(os.path.join(data, prefix + "-images-idx3-ubyte.gz"),
                                      os.path.join(data, prefix + "-labels-idx1-ubyte.gz"),
                                      10)
    return load("train"), load("t10k")


def _last(values):
    """The last running sum: left-to-right double additions, like the C loop."""
    total = 0.0
    for total in itertools.accumulate(values):
        pass
    return total


def standardize(train, *others):
    """Scales train and others by (x - mean) / std with the training set's
    pixel mean and std, computed as the C examples do; returns (mean, std)."""
    x = train.x
    if hasattr(x, "ravel"):  # NumPy: cumsum adds in order, as the C loop does
        flat = x.ravel().astype("float64")
        total, sq = float(flat.cumsum()[-1]), float((flat * flat).cumsum()[-1])
        n = flat.size
    else:
        flat = x
        for _ in range(len(train.shape)):
            flat = itertools.chain.from_iterable(flat)
        flat = list(flat)
        total, sq, n = _last(flat), _last(v * v for v in flat), len(flat)
    mean = total / n
    std = (sq / n - mean * mean) ** 0.5
    for ds in (train,) + others:
        ds.scale(1.0 / std, -mean / std)
    return mean, std


def every_tenth(ds):
    """(train, val): every tenth sample held out for validation."""
    n = len(ds)
    val = [i for i in range(n) if i % 10 == 9][:n // 10]
    held = set(val)
    return ds.subset([i for i in range(n) if i not in held]), ds.subset(val)


def plot_curves(path, curves, ylabel="loss", logy=False, title=None, ylim=None):
    """Draws curves [(label, values per epoch, style)] on one figure and
    saves it as PNG; returns the path, or None without matplotlib."""
    plt = pyplot()
    if not plt:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, values, style in curves:
        ax.plot(range(1, len(values) + 1), values, style, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print("wrote", path)
    return path


def pyplot():
    """matplotlib.pyplot with a file backend, or None when not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        print("(matplotlib is not installed: no PNG written)")
        return None
