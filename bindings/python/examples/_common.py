"""Shared helpers of the Python examples: import path, digits loading, args."""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))

import nnkit  # noqa: E402


def args(doc, epochs=10, extra=None):
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--data", default=os.path.join(ROOT, "data", "digits"))
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
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
