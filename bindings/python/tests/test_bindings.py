"""Tests of the ctypes package (stdlib unittest; NumPy optional).

Run: python3 -m unittest discover -s bindings/python/tests
(scripts/test.sh runs it with and without NumPy).
"""
import gc
import math
import os
import re
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))

import nnkit  # noqa: E402
from nnkit import _lib  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None


def header_functions():
    names = set()
    inc = os.path.join(ROOT, "include")
    for dirpath, _, files in os.walk(inc):
        for f in files:
            if f.endswith(".h") or f.endswith(".h.in"):
                with open(os.path.join(dirpath, f)) as fh:
                    text = fh.read()
                names.update(re.findall(r"NNKIT_API[^;{]*?\b(nnkit_[a-z0-9_]+)\s*\(", text,
                                        re.S))
    return names


def blobs(n=200):
    """4 separable clusters in 2-D, as nested lists (no NumPy needed)."""
    xs, ys = [], []
    for i in range(n):
        c = i % 4
        a = c * math.pi / 2
        jitter = ((i * 7919) % 101) / 101.0 - 0.5
        xs.append([2 * math.cos(a) + 0.3 * jitter, 2 * math.sin(a) - 0.3 * jitter])
        ys.append(c)
    return xs, ys


class TableTest(unittest.TestCase):
    def test_every_header_function_is_bound(self):
        declared = header_functions()
        self.assertGreater(len(declared), 50)
        missing = sorted(declared - set(_lib.PROTOTYPES))
        self.assertEqual(missing, [], "functions without a binding: %s" % missing)
        extra = sorted(set(_lib.PROTOTYPES) - declared)
        self.assertEqual(extra, [], "bindings of undeclared functions: %s" % extra)

    def test_version(self):
        self.assertEqual(nnkit.version(), nnkit.__version__)


class ErrorTest(unittest.TestCase):
    def test_errors_carry_status_and_sentence(self):
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            nnkit.set_num_threads(-3)
        self.assertEqual(cm.exception.status, nnkit.E_INVALID)
        self.assertIn("[0, 1024]", cm.exception.message)
        with self.assertRaises(nnkit.IOFailure) as cm:
            nnkit.Dataset.load_idx("/nonexistent/images.gz")
        self.assertIn("/nonexistent/images.gz", str(cm.exception))
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.Init("normal", 0, -1)
        net = nnkit.Net(2)
        with self.assertRaises(nnkit.StateError):
            net.forward([[1.0, 2.0]])
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            nnkit.Optimizer("sgd", lr=-1)
        self.assertIn("outside its range", cm.exception.message)
        net.close()
        with self.assertRaises(nnkit.StateError):
            net.num_layers

    def test_shape_error(self):
        xs, ys = blobs(8)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        net = nnkit.Net(3, [nnkit.Dense(4)])
        with self.assertRaises(nnkit.ShapeError):
            net.evaluate(ds)


class TrainTest(unittest.TestCase):
    def test_fit_predict_evaluate_without_numpy_types(self):
        xs, ys = blobs(200)
        train = nnkit.Dataset(xs, ys, num_classes=4)
        self.assertEqual(len(train), 200)
        self.assertEqual(train.shape, (2,))
        self.assertEqual(train.class_counts(), [50, 50, 50, 50])
        net = nnkit.Net((2,), [nnkit.Dense(16), nnkit.Tanh(), nnkit.Dense(4)], seed=3)
        self.assertEqual(net.describe(0), "dense 2 -> 16 (48 params)")
        lines = []
        hist = net.fit(train, train, epochs=20, batch_size=16, lr=0.1, verbose=True,
                       log=lines.append)
        self.assertEqual(len(hist), 20)
        self.assertEqual(len(lines), 20)
        self.assertTrue(lines[0].startswith("Finished epoch 1 / 20: cost "))
        loss, acc = net.evaluate(train)
        self.assertGreaterEqual(acc, 0.97)
        self.assertAlmostEqual(hist["val_acc"][-1], acc, places=12)
        pred = list(net.predict(xs))
        self.assertEqual(sum(int(p == y) for p, y in zip(pred, ys)) / 200.0, acc)
        proba = net.predict_proba(xs[:3])
        row = list(proba[0])
        self.assertAlmostEqual(sum(row), 1.0, places=5)

    def test_manual_step_matches_sgd_formula(self):
        net = nnkit.Net(3, [nnkit.Dense(2)], seed=1, loss="mse")
        opt = nnkit.Optimizer("sgd", lr=0.5)
        self.assertEqual(nnkit.Optimizer.bounds("sgd", "lr")[:2], (0.0, 1e6))
        before = list(net.params)
        net.forward([[1.0, 2.0, 3.0]])
        net.backward(targets=[[0.5, -0.5]])
        grads = list(net.grads)
        opt.step(net)
        after = list(net.params)
        for b, g, a in zip(before, grads, after):
            self.assertAlmostEqual(a, b - 0.5 * g, places=6)
        self.assertEqual(opt.steps, 1)

    def test_idx_round_trip_and_subset(self):
        xs, ys = blobs(12)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        with tempfile.TemporaryDirectory() as d:
            ds.save_idx(os.path.join(d, "x.gz"), os.path.join(d, "y.gz"))
            back = nnkit.Dataset.load_idx(os.path.join(d, "x.gz"), os.path.join(d, "y.gz"))
            self.assertEqual(len(back), 12)
            self.assertEqual(list(back.labels), ys)
        sub = ds.subset([3, 0])
        self.assertEqual(list(sub.labels), [3, 0])

    def test_init_sample_statistics(self):
        vals = list(nnkit.Init("he_normal").sample(250000, fan_in=500, fan_out=500))
        m = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals))
        self.assertAlmostEqual(sd, math.sqrt(2 / 500), delta=0.015 * math.sqrt(2 / 500))


@unittest.skipIf(np is None, "NumPy is not installed in this Python")
class NumpyTest(unittest.TestCase):
    def test_arrays_in_and_out(self):
        xs, ys = blobs(64)
        x = np.asarray(xs, dtype=np.float32)
        y = np.asarray(ys, dtype=np.int32)
        ds = nnkit.Dataset(x, y, num_classes=4)
        self.assertIsInstance(ds.x, np.ndarray)
        np.testing.assert_array_equal(ds.x, x)
        net = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)], seed=2)
        out = net.forward(x)
        self.assertEqual(out.shape, (64, 4))
        # params is a live view: writing through it changes the net
        p = net.params
        p[:] = 0
        np.testing.assert_array_equal(net.forward(x), np.zeros((64, 4), np.float32))


class LifetimeTest(unittest.TestCase):
    def test_create_free_cycles_keep_rss_flat(self):
        def rss_kb():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            return 0

        xs, ys = blobs(16)

        def cycle():
            with nnkit.Dataset(xs, ys, num_classes=4) as ds, \
                    nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)]) as net, \
                    nnkit.Optimizer("sgd") as opt, nnkit.Init("normal", 0, 1) as ini, \
                    nnkit.Trainer(net, opt, epochs=1) as tr:
                net.set_init(0, ini)
                tr.fit(ds)

        for _ in range(100):
            cycle()
        gc.collect()
        start = rss_kb()
        for _ in range(1000):
            cycle()
        gc.collect()
        grown = rss_kb() - start
        self.assertLess(grown, 2048, "RSS grew by %d kB over 1000 cycles" % grown)


if __name__ == "__main__":
    unittest.main()
