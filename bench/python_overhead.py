#!/usr/bin/python3
"""Per-epoch cost of driving nnkit from Python, against the C loop.

  NNKIT_LIBRARY=build/lib/libnnkit.so /usr/bin/python3 bench/python_overhead.py

Times one epoch of the digits MLP (784-256-128-10, batch 32, SGD) three
ways on the same library, data, seed and thread count: the C fit loop
called from C-speed ctypes (Net.fit), and a loop written in Python that
calls forward/backward/step per batch. Prints the median of 5 epochs each
and the ratios to the C loop.
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))
import nnkit  # noqa: E402

DIGITS = os.path.join(HERE, "..", "data", "digits")


def main():
    nnkit.set_num_threads(1)
    train = nnkit.Dataset.load_idx(os.path.join(DIGITS, "train-images-idx3-ubyte.gz"),
                                   os.path.join(DIGITS, "train-labels-idx1-ubyte.gz"))
    train.scale(1 / 255.0)

    def net():
        return nnkit.Net((1, 28, 28), [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(128),
                                       nnkit.ReLU(), nnkit.Dense(10)], seed=1)

    c_times = []
    n1 = net()
    opt = nnkit.Optimizer("sgd", lr=0.05)
    with nnkit.Trainer(n1, opt, epochs=1, batch_size=32, layer_stats=0) as tr:
        for _ in range(5):
            t0 = time.perf_counter()
            tr.fit(train)
            c_times.append(time.perf_counter() - t0)

    n2 = net()
    opt2 = nnkit.Optimizer("sgd", lr=0.05)
    x, y = train.x, train.labels
    try:
        import numpy as np
        x = np.ascontiguousarray(x.reshape(len(train), -1))
    except ImportError:
        pass
    py_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for s in range(0, len(train), 32):
            n2.forward(x[s:s + 32])
            n2.backward(labels=y[s:s + 32])
            opt2.step(n2)
        py_times.append(time.perf_counter() - t0)
    c, p = statistics.median(c_times), statistics.median(py_times)
    print("C fit loop (Net.fit from Python): %.3f s/epoch" % c)
    print("Python loop (forward/backward/step per batch): %.3f s/epoch  ratio %.2f" %
          (p, p / c))


if __name__ == "__main__":
    main()
