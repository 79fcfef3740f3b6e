#!/usr/bin/python3
"""Per-epoch cost of driving nnkit from Python, against the C loop.

  NNKIT_LIBRARY=build/lib/libnnkit.so /usr/bin/python3 bench/python_overhead.py

Times one epoch of the digits MLP (784-256-128-10, batch 32, SGD) three
ways on the same library, data, seed and thread count: the C fit loop
called from C-speed ctypes (Net.fit), and a loop written in Python that
calls forward/backward/step per batch, and one that calls
Optimizer.train_batch (the three in one C call) per batch; all three in
data order (no shuffling). Epochs of the three kinds alternate (7 rounds);
prints the median of each and the ratios to the C loop.
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

    x, y = train.x, train.labels
    try:
        import numpy as np
        x = np.ascontiguousarray(x.reshape(len(train), -1))
    except ImportError:
        pass
    n1, n2, n3 = net(), net(), net()
    opt1, opt2, opt3 = (nnkit.Optimizer("sgd", lr=0.05) for _ in range(3))
    tr = nnkit.Trainer(n1, opt1, epochs=1, batch_size=32, layer_stats=0, shuffle=0)

    def c_loop():
        tr.fit(train)

    def py_loop():
        for s in range(0, len(train), 32):
            n2.forward(x[s:s + 32])
            n2.backward(labels=y[s:s + 32])
            opt2.step(n2)

    def one_call():
        for s in range(0, len(train), 32):
            opt3.train_batch(n3, x[s:s + 32], labels=y[s:s + 32])

    # The machine's load drifts: the three kinds of epoch alternate, one of
    # each per round, and the medians are compared.
    c_times, py_times, one_times = [], [], []
    for _ in range(7):
        for fn, out in ((c_loop, c_times), (py_loop, py_times), (one_call, one_times)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    tr.close()
    c, p = statistics.median(c_times), statistics.median(py_times)
    o = statistics.median(one_times)
    print("C fit loop (Net.fit from Python): %.3f s/epoch" % c)
    print("Python loop (forward/backward/step per batch): %.3f s/epoch  ratio %.2f" %
          (p, p / c))
    print("Python loop (Optimizer.train_batch per batch): %.3f s/epoch  ratio %.2f" %
          (o, o / c))


if __name__ == "__main__":
    main()
