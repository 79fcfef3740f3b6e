"""Tests of the ctypes package (stdlib unittest; NumPy optional).

Run: python3 -m unittest discover -s bindings/python/tests
(scripts/test.sh runs it with and without NumPy).
"""
import gc
import math
import os
import re
import subprocess
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

try:
    import matplotlib  # noqa: F401
except ImportError:
    matplotlib = None

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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

    def test_generated_table_matches_headers(self):
        import subprocess
        gen = os.path.join(ROOT, "scripts", "gen_prototypes.py")
        r = subprocess.run([sys.executable, gen, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_version(self):
        self.assertEqual(nnkit.version(), nnkit.__version__)

    def test_kernel_modes(self):
        start = nnkit.get_kernels()
        self.assertEqual(start, os.environ.get("NNKIT_KERNELS", "measure"))
        try:
            for mode in ("own", "blas", "measure"):
                nnkit.set_kernels(mode)
                self.assertEqual(nnkit.get_kernels(), mode)
            nnkit.set_kernels(nnkit.KERNELS["own"])  # the value works too
            self.assertEqual(nnkit.get_kernels(), "own")
            with self.assertRaises(nnkit.InvalidArgument) as cm:
                nnkit.set_kernels("fastest")
            self.assertIn("measure", str(cm.exception))
            self.assertEqual(nnkit.get_kernels(), "own")
            # a net trains and predicts the same way under each mode
            x = [[0.1 * i, 1.0 - 0.1 * i] for i in range(8)]
            outs = []
            for mode in ("own", "blas", "measure"):
                nnkit.set_kernels(mode)
                net = nnkit.Net(2, [nnkit.Dense(3)], seed=3)
                outs.append(net.forward(x))
            for o in outs[1:]:
                for a, b in zip(_rows(outs[0]), _rows(o)):
                    for u, v in zip(a, b):
                        self.assertAlmostEqual(u, v, places=5)
        finally:
            nnkit.set_kernels(start)


def _rows(a):
    """Rows of a NumPy array or of a list of lists."""
    return a.tolist() if hasattr(a, "tolist") else a


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
    def test_byte_data_stays_bytes_and_trains_as_floats(self):
        # 8-bit "images" whose bright column is the class; as bytes (a
        # bytes object here, a uint8 array with NumPy) and as floats.
        raw, ys = bytearray(), []
        for i in range(96):
            k = i % 4
            raw += bytes(200 if j % 4 == k else (i * 7 + j) % 50 for j in range(16))
            ys.append(k)
        data = np.frombuffer(bytes(raw), dtype=np.uint8).reshape(96, 1, 4, 4) \
            if np is not None else bytes(raw)
        floats = [float(v) for v in raw]
        a = nnkit.Dataset(data, ys, shape=(1, 4, 4), num_classes=4)
        b = nnkit.Dataset(floats, ys, shape=(1, 4, 4), num_classes=4)
        self.assertEqual(len(a), 96)
        for ds in (a, b):
            ds.scale(1 / 255)
        nets = []
        for ds in (a, b):
            net = nnkit.Net((1, 4, 4), [nnkit.Flatten(), nnkit.Dense(8), nnkit.ReLU(),
                                        nnkit.Dense(4)], seed=5)
            net.fit(ds, epochs=20, batch_size=16, lr=0.1)
            nets.append(net)
        self.assertEqual(list(nets[0].params), list(nets[1].params))
        self.assertEqual(nets[0].evaluate(a), nets[1].evaluate(b))
        self.assertGreater(nets[0].evaluate(a)[1], 0.9)
        self.assertEqual(list(a.x.reshape(-1) if np is not None else a.x),
                         list(b.x.reshape(-1) if np is not None else b.x))

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


class CapabilityTest(unittest.TestCase):
    def test_callbacks_stop_and_reraise(self):
        xs, ys = blobs(64)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        net = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)], seed=1)
        seen = []

        class Stopper:
            def on_epoch(self, epoch, trainer):
                seen.append(epoch)
                return 1 if epoch == 2 else 0

        hist = net.fit(ds, epochs=10, batch_size=16, callbacks=[Stopper()])
        self.assertEqual(seen, [0, 1, 2])
        self.assertEqual(len(hist), 3)

        class Boom(Exception):
            pass

        def on_batch(epoch, batch, loss):
            if batch == 1:
                raise Boom("from a callback")

        cb = type("CB", (), {"on_batch": staticmethod(on_batch)})()
        with self.assertRaises(Boom):
            net.fit(ds, epochs=3, batch_size=16, callbacks=[cb])

    def test_optimizers_schedule_regularizer_early_stopping(self):
        xs, ys = blobs(200)
        train = nnkit.Dataset(xs, ys, num_classes=4)
        val = nnkit.Dataset(blobs(80)[0], blobs(80)[1], num_classes=4)
        net = nnkit.Net(2, [nnkit.Dense(16), nnkit.Tanh(), nnkit.Dense(4)], seed=4)
        opt = nnkit.Optimizer("adam", lr=0.01, beta1=0.9)
        self.assertAlmostEqual(opt["beta1"], 0.9)
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            opt["beta1"] = 1.0
        self.assertIn("[0, 1)", cm.exception.message)
        sched = nnkit.Schedule("cosine", t_max=10)
        opt.set_schedule(sched)
        # owned by the optimizer now, and still readable (issue 20)
        self.assertEqual(sched["t_max"], 10)
        self.assertEqual(opt.schedule.kind, "cosine")
        self.assertEqual(opt.schedule["t_max"], 10)
        self.assertTrue(sched.attached)
        sched2 = nnkit.Schedule("step", step_size=3)
        opt2 = nnkit.Optimizer("sgd").set_schedule(sched2)
        opt2.set_schedule(nnkit.Schedule("constant"))  # frees sched2's C object
        with self.assertRaises(nnkit.StateError):
            sched2["step_size"]
        self.assertEqual(opt2.schedule.kind, "constant")
        reg = nnkit.Regularizer("l2", 1e-3)
        self.assertGreater(reg.penalty(net), 0)
        opt.add_regularizer(reg)
        hist = net.fit(train, val, epochs=10, batch_size=20, optimizer=opt,
                       early_stopping=dict(monitor="val_loss", patience=3))
        self.assertLessEqual(len(hist), 10)
        self.assertGreater(hist["reg_loss"][0], 0)
        self.assertLess(hist["lr"][-1], 0.01)  # cosine decayed it
        self.assertGreaterEqual(net.evaluate(val)[1], 0.95)
        floats, scalars = opt.get_state()
        self.assertEqual(len(floats), 2 * net.num_params)  # Adam: m and v

    def test_checkpoint_resume_is_bit_exact(self):
        xs, ys = blobs(96)
        train = nnkit.Dataset(xs, ys, num_classes=4)

        def run(stop=None, resume=None, seed=1):
            net = nnkit.Net(2, [nnkit.Dense(16), nnkit.ReLU(), nnkit.Dropout(0.3),
                                nnkit.Dense(4)], seed=seed)
            opt = nnkit.Optimizer("adam", lr=0.01)
            opt.set_schedule(nnkit.Schedule("step", step_size=1, gamma=0.7))
            tr = nnkit.Trainer(net, opt, epochs=4, batch_size=16, seed=3)
            if stop is not None:
                def on_batch(epoch, batch, loss):
                    return 1 if (epoch, batch) == stop else 0
                tr.add_callback(type("S", (), {"on_batch": staticmethod(on_batch)})())
            if resume is not None:
                tr["epochs"] = 1  # the checkpoint's fit decides
                tr.resume(resume)
            tr.fit(train)
            return net, opt, tr

        net, opt, tr = run()
        ref = list(net.params)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "run.safetensors")
            net1, opt1, tr1 = run(stop=(1, 2))
            tr1.save_checkpoint(path)
            net2, opt2, tr2 = run(resume=path, seed=99)
            self.assertEqual(list(net2.params), ref)  # bit for bit
            self.assertEqual(tr2.epochs_done, 4)
            with open(path, "r+b") as f:  # a damaged byte is refused
                f.seek(200)
                b = f.read(1)
                f.seek(200)
                f.write(bytes([b[0] ^ 1]))
            with self.assertRaises(nnkit.Error) as cm:
                tr2.resume(path)
            self.assertEqual(cm.exception.status, nnkit.E_FORMAT)
            self.assertEqual(list(net2.params), ref)  # unchanged
            tr2["checkpoint_every"] = 2
            tr2["checkpoint_keep"] = 1
            tr2.set_checkpoint_dir(d)
            tr2["epochs"] = 2
            tr2.fit(train)
            self.assertIn("checkpoint-epoch-000006.safetensors", os.listdir(d))
            self.assertNotIn("checkpoint-epoch-000004.safetensors", os.listdir(d))

    def test_verdict_names(self):
        names = [nnkit.verdict_name(k) for k in nnkit.VERDICTS]
        self.assertEqual(len(set(names)), len(nnkit.VERDICTS))
        self.assertEqual(nnkit.verdict_name("healthy"), "healthy")
        self.assertEqual(nnkit.verdict_name("lr_too_low"), "learning rate too low")

    def test_freeze_keeps_layer_bitwise(self):
        xs, ys = blobs(64)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        net = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)], seed=1)
        net.set_trainable(0, False)
        self.assertFalse(net.is_trainable(0))
        off, cnt = net.layer_params(0)
        before = list(net.params)[off:off + cnt]
        net.fit(ds, epochs=2, batch_size=16, lr=0.1)
        self.assertEqual(list(net.params)[off:off + cnt], before)

    def test_conv_net_trains(self):
        # 8x8 images: a bright vertical or horizontal bar, two classes
        xs, ys = [], []
        for i in range(64):
            img = [0.0] * 64
            k = i % 8
            for j in range(8):
                img[(j * 8 + k) if i % 2 == 0 else (k * 8 + j)] = 1.0
            xs.append(img)
            ys.append(i % 2)
        ds = nnkit.Dataset(xs, ys, shape=(1, 8, 8), num_classes=2)
        net = nnkit.Net((1, 8, 8), [nnkit.Conv2D(4, 3), nnkit.ReLU(), nnkit.MaxPool2D(2),
                                    nnkit.BatchNorm(), nnkit.Flatten(), nnkit.Dropout(0.1),
                                    nnkit.Dense(2)], seed=3)
        self.assertEqual(net.layer_shape(0), (4, 8, 8))
        with self.assertRaises(nnkit.ShapeError) as cm:
            nnkit.Net((1, 2, 2), [nnkit.Conv2D(4, 5, padding=0)])
        self.assertIn("5x5", cm.exception.message)
        net.fit(ds, epochs=15, batch_size=16, lr=0.1)
        self.assertGreaterEqual(net.evaluate(ds)[1], 0.95)
        stats = net.layer_stats(xs[:16])
        self.assertEqual(len(stats["act_std"]), net.num_layers)

    def test_layer_options_and_layernorm(self):
        net = nnkit.Net((6,), [nnkit.Dense(5), nnkit.LayerNorm(1e-4), nnkit.ReLU(),
                               nnkit.Dropout(0.25), nnkit.Dense(2)], seed=4)
        self.assertEqual(net.layer_get(0, "units"), 5)
        self.assertEqual(net.layer_get(1, "eps"), 1e-4)
        self.assertEqual(net.layer_bounds(3, "p"), (0.0, 1.0, 2))
        net.layer_set(3, "p", 0.5)
        self.assertEqual(net.layer_get(3, "p"), 0.5)
        self.assertIn("p=0.5", net.describe(3))
        self.assertIn("layernorm", net.describe(1))
        with self.assertRaises(nnkit.StateError) as cm:
            net.layer_set(0, "units", 7)
        self.assertIn("units is fixed", cm.exception.message)
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            net.layer_set(3, "p", 1.0)
        self.assertIn("outside its range [0, 1)", cm.exception.message)
        with self.assertRaises(ValueError) as cm:
            net.layer_get(0, "unitz")
        self.assertIn("units", str(cm.exception))
        lo, hi, flags = nnkit.Trainer.bounds("batch_size")
        self.assertEqual((lo, flags), (1.0, 4))
        self.assertGreaterEqual(hi, 65536)

    def test_pipeline_normalizer_augmenter(self):
        xs, ys = blobs(100)
        ds = nnkit.Dataset(xs, ys, shape=(1, 1, 2), num_classes=4)  # 1x2 "images"
        nz = nnkit.Normalizer("standardize").fit(ds)
        z = nz.transform(xs)
        col0 = [row[0] for row in z]
        self.assertAlmostEqual(sum(col0) / len(col0), 0.0, places=4)
        aug = nnkit.Augmenter([("noise", 1.0, 0.0, 0.01)])
        self.assertEqual(len(aug), 1)
        pipe = nnkit.Pipeline(ds, normalizer=nz, augmenter=aug, batch_size=25, seed=1)
        self.assertEqual(len(pipe), 4)
        batches = list(pipe.batches(0))
        self.assertEqual([len(y) for _, y in batches], [25, 25, 25, 25])
        net = nnkit.Net((1, 1, 2), [nnkit.Dense(16), nnkit.Tanh(), nnkit.Dense(4)], seed=2)
        hist = net.fit(pipe, epochs=10, lr=0.1)
        self.assertEqual(len(hist), 10)
        tr, ho = ds.split(0.2, seed=1)
        self.assertEqual((len(tr), len(ho)), (80, 20))
        self.assertEqual(ho.class_counts(), [5, 5, 5, 5])

    def test_lr_finder_and_diagnosis(self):
        xs, ys = blobs(256)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        net = nnkit.Net(2, [nnkit.Dense(16), nnkit.Tanh(), nnkit.Dense(4)], seed=5)
        with nnkit.Optimizer("sgd", lr=0.1) as opt, \
                nnkit.Trainer(net, opt, epochs=6, batch_size=16) as tr:
            before = list(net.params)
            lr, lrs, losses = tr.find_lr(ds, steps=60)
            self.assertEqual(list(net.params), before)  # ran on a copy
            self.assertTrue(1e-4 < lr < 10, lr)
            self.assertEqual(len(lrs), len(losses))
            tr.fit(ds, ds)
            d = tr.diagnose()
            self.assertGreaterEqual(len(d.verdicts), 1)
            self.assertIn(d.verdicts[0][0], d.report)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "h.csv")
                tr.save_history(path)
                with open(path) as f:
                    self.assertEqual(len(f.read().strip().splitlines()), 7)


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


DIGITS = os.path.join(ROOT, "data", "digits")


@unittest.skipUnless(os.path.exists(os.path.join(DIGITS, "train-images-idx3-ubyte.gz")),
                     "data/digits is missing (scripts/fetch_digits.py makes it)")
class DigitsTest(unittest.TestCase):
    def test_python_loop_equals_c_loop_bit_for_bit(self):
        """The digits MLP trained by a loop written in Python (forward,
        backward, step per batch) and by the C fit loop, same seed and data
        order, predicts identically and ends with identical weights."""
        full = nnkit.Dataset.load_idx(os.path.join(DIGITS, "train-images-idx3-ubyte.gz"),
                                      os.path.join(DIGITS, "train-labels-idx1-ubyte.gz"))
        train = full.subset(range(2000)).scale(1 / 255.0)
        test = nnkit.Dataset.load_idx(os.path.join(DIGITS, "t10k-images-idx3-ubyte.gz"),
                                      os.path.join(DIGITS, "t10k-labels-idx1-ubyte.gz"))
        test.scale(1 / 255.0)

        def make():
            return nnkit.Net((1, 28, 28), [nnkit.Dense(128), nnkit.ReLU(), nnkit.Dense(10)],
                             seed=7)

        c_net = make()
        c_net.fit(train, epochs=2, batch_size=50, lr=0.1, shuffle=False)
        py_net = make()
        opt = nnkit.Optimizer("sgd", lr=0.1)
        x = train.x
        y = train.labels
        per = train.sample_size
        for _ in range(2):
            for s in range(0, len(train), 50):
                if np is not None:
                    xb, yb = x[s:s + 50], y[s:s + 50]
                else:
                    xb = x[s:s + 50]
                    yb = y[s:s + 50]
                py_net.forward(xb)
                py_net.backward(labels=yb)
                opt.step(py_net)
        self.assertEqual(bytes(memoryview(c_net.params).cast("B")) if np is None
                         else c_net.params.tobytes(),
                         bytes(memoryview(py_net.params).cast("B")) if np is None
                         else py_net.params.tobytes())
        self.assertEqual(list(c_net.predict(test.x)), list(py_net.predict(test.x)))
        self.assertGreater(c_net.evaluate(test)[1], 0.85)
        self.assertEqual(per, 784)


def _aslist(a):
    """A result as nested lists, with or without NumPy."""
    return a.tolist() if hasattr(a, "tolist") else a


class TransferTest(unittest.TestCase):
    def test_cut_keeps_weights_and_a_new_head_trains(self):
        xs, ys = blobs(120)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        net = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(6), nnkit.ReLU(),
                            nnkit.Dense(4)], seed=1)
        net.fit(ds, epochs=3, batch_size=16, lr=0.1)
        codes = _aslist(net.features(xs, 3))  # the kept prefix's outputs
        self.assertEqual(len(codes), 120)
        self.assertEqual(len(codes[0]), 6)
        off, _ = net.layer_params(4)
        kept = list(net.params)[:off]
        self.assertIs(net.cut(4), net)
        self.assertEqual(net.num_layers, 4)
        self.assertEqual(net.num_params, off)
        self.assertEqual(list(net.params), kept)  # bit for bit
        net.training = False
        self.assertEqual(_aslist(net.forward(xs)), codes)
        # a new head for two classes (the blobs' parity) trains
        parity = nnkit.Dataset(xs, [y % 2 for y in ys], num_classes=2)
        net.add(nnkit.Dense(2))
        for i in range(4):
            net.set_trainable(i, False)
        before = net.evaluate(parity)[0]
        net.fit(parity, epochs=20, batch_size=16, lr=0.1)
        self.assertLess(net.evaluate(parity)[0], 0.5 * before)
        self.assertEqual(list(net.params)[:off], kept)  # frozen
        for bad in (0, 6):
            with self.assertRaises(nnkit.InvalidArgument) as cm:
                net.cut(bad)
            self.assertIn("keep %d is outside [1, 5]" % bad, cm.exception.message)
        self.assertEqual(net.num_layers, 5)

    def test_features_of_samples_and_datasets(self):
        xs = [[((i * 37 + j * 11) % 17) / 17.0 for j in range(64)] for i in range(40)]
        ys = [i % 3 for i in range(40)]
        ds = nnkit.Dataset(xs, ys, shape=(1, 8, 8), num_classes=3)
        net = nnkit.Net((1, 8, 8), [nnkit.Conv2D(2, 3), nnkit.BatchNorm(), nnkit.ReLU(),
                                    nnkit.Dropout(0.5), nnkit.Flatten(), nnkit.Dense(3)],
                        seed=2)
        self.assertTrue(net.training)
        f = _aslist(net.features(xs, 2))
        self.assertTrue(net.training)  # the mode is restored
        self.assertEqual((len(f), len(f[0]), len(f[0][0]), len(f[0][0][0])), (40, 2, 8, 8))
        self.assertEqual(_aslist(net.features(ds, 2)), f)
        # evaluation mode: dropout is the identity, so layer 3 equals layer 2
        self.assertEqual(_aslist(net.features(ds, 3)), f)
        codes = net.features(ds, 4, dataset=True)
        self.assertEqual(codes.shape, (128,))
        self.assertEqual(len(codes), 40)
        self.assertEqual(codes.num_classes, 3)
        self.assertEqual(list(codes.labels), ys)
        flat = [sum((row for ch in s for row in ch), []) for s in f]
        self.assertEqual(_aslist(codes.x), flat)
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            net.features(xs, 6)
        self.assertIn("layer 6 does not exist (the net has 6 layers", cm.exception.message)
        with self.assertRaises(nnkit.InvalidArgument):
            net.features(ds, 9, dataset=True)
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            net.features(xs, -1)
        self.assertIn("layer -1 is negative", cm.exception.message)
        with self.assertRaises(nnkit.InvalidArgument):
            net.features(xs, 1, dataset=True)
        other = nnkit.Dataset([[0.5] * 63] * 2, [0, 1], num_classes=2)
        with self.assertRaises(nnkit.ShapeError) as cm:
            net.features(other, 1)
        self.assertIn("dataset samples have 63 values, the net takes 64",
                      cm.exception.message)


class NAdamTest(unittest.TestCase):
    def test_nadam_trains_and_checks_its_keys(self):
        xs, ys = blobs(64)
        net = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)], seed=3)
        opt = nnkit.Optimizer("nadam", lr=0.01, momentum_decay=0.01)
        self.assertEqual(opt["beta1"], 0.9)
        self.assertEqual(opt["momentum_decay"], 0.01)
        self.assertEqual(nnkit.Optimizer.bounds("nadam", "momentum_decay")[:2], (0.0, 1e6))
        with self.assertRaises(nnkit.InvalidArgument):
            opt["momentum_decay"] = -1
        self.assertEqual(opt["momentum_decay"], 0.01)
        with self.assertRaises(nnkit.InvalidArgument):
            opt["momentum"] = 0.5  # Adam-style: no momentum key
        losses = [opt.train_batch(net, xs, labels=ys) for _ in range(30)]
        self.assertLess(losses[-1], losses[0])
        self.assertEqual(opt.steps, 30)
        floats, scalars = opt.get_state()
        self.assertEqual(len(floats), 2 * len(net.params))  # exp_avg, exp_avg_sq


class TrainBatchTest(unittest.TestCase):
    def test_train_batch_equals_forward_backward_step(self):
        xs, ys = blobs(48)
        a = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)], seed=3)
        b = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)], seed=3)
        oa, ob = nnkit.Optimizer("sgd", lr=0.1, momentum=0.9), nnkit.Optimizer(
            "sgd", lr=0.1, momentum=0.9)
        for s in range(0, 48, 16):
            la = oa.train_batch(a, xs[s:s + 16], labels=ys[s:s + 16])
            b.forward(xs[s:s + 16])
            lb = b.backward(labels=ys[s:s + 16])
            ob.step(b)
            self.assertEqual(la, lb)
        self.assertEqual(list(a.params), list(b.params))
        self.assertEqual(oa.steps, 3)
        with self.assertRaises(nnkit.ShapeError):
            oa.train_batch(a, [1.0, 2.0, 3.0], labels=[0])


class PlotTest(unittest.TestCase):
    def test_history_plot_writes_png(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("matplotlib is not installed in this Python")
        xs, ys = blobs(64)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        net = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)], seed=1)
        hist = net.fit(ds, ds, epochs=3, batch_size=16, lr=0.1)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "curves.png")
            hist.plot(path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def small_fit(self):
        xs, ys = blobs(64)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        net = nnkit.Net(2, [nnkit.Dense(8), nnkit.Tanh(), nnkit.Dense(8), nnkit.ReLU(),
                            nnkit.Dense(4)], seed=1)
        return net, ds, net.fit(ds, ds, epochs=3, batch_size=16, lr=0.1)

    def assert_png(self, path):
        with open(path, "rb") as f:
            head = f.read(8)
        self.assertEqual(head, PNG_MAGIC)
        self.assertGreater(os.path.getsize(path), 1000)

    @unittest.skipIf(matplotlib is None, "matplotlib is not installed in this Python")
    def test_history_plot_layer_stats_writes_png(self):
        _, _, hist = self.small_fit()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "layers.png")
            fig = hist.plot_layer_stats(path)
            self.assert_png(path)
            # saturation (the tanh), dead ReLUs and four more: six subplots
            self.assertEqual(sum(1 for ax in fig.axes if ax.has_data()), 6)

    @unittest.skipIf(matplotlib is None, "matplotlib is not installed in this Python")
    def test_monitor_plot_writes_png(self):
        net, ds, _ = self.small_fit()
        mon = nnkit.Monitor(net, ds, size=32)
        with tempfile.TemporaryDirectory() as tmp:
            mon.measure()  # one measurement: bars per layer
            mon.plot(os.path.join(tmp, "bars.png"), title="probe")
            self.assert_png(os.path.join(tmp, "bars.png"))
            mon.measure()  # two: lines over the measurements
            mon.plot(os.path.join(tmp, "lines.png"), stats=("act_std", "grad_norm"))
            self.assert_png(os.path.join(tmp, "lines.png"))


class LayerStatsTest(unittest.TestCase):
    def make(self):
        return nnkit.Net(2, [nnkit.Dense(8), nnkit.Tanh(), nnkit.Dropout(0.2),
                             nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(4)], seed=2)

    def test_history_layer_stats_and_names(self):
        xs, ys = blobs(64)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        net = self.make()
        hist = net.fit(ds, epochs=3, batch_size=16, lr=0.1)
        self.assertEqual(hist.layer_names[:2], ["0 dense", "1 tanh"])
        self.assertEqual(len(hist.layer_names), net.num_layers)
        self.assertEqual(len(hist.layer_stats["act_std"]), 3)
        self.assertEqual(len(hist.layer_stats["act_std"][0]), net.num_layers)
        self.assertTrue(math.isnan(hist.layer_stats["dead"][-1][0]))  # a dense layer
        self.assertFalse(math.isnan(hist.layer_stats["dead"][-1][4]))  # the ReLU
        with self.assertRaises(nnkit.InvalidArgument):
            hist.plot_layer_stats(stats=("act_std", "no_such_stat"))
        off = net.fit(ds, epochs=1, batch_size=16, layer_stats=0)
        self.assertEqual(off.layer_stats, {})
        with self.assertRaises(nnkit.StateError):  # before matplotlib is needed
            off.plot_layer_stats()

    def test_monitor_measures_without_changing_training(self):
        xs, ys = blobs(64)
        ds = nnkit.Dataset(xs, ys, num_classes=4)
        plain = self.make()
        plain.fit(ds, epochs=4, batch_size=16, lr=0.1, seed=3)
        watched = self.make()
        mon = nnkit.Monitor(watched, xs[:16], ys[:16])
        watched.fit(ds, epochs=4, batch_size=16, lr=0.1, seed=3, callbacks=[mon])
        self.assertEqual(list(plain.params), list(watched.params))
        self.assertEqual(len(mon), 4)
        self.assertEqual(len(mon.records["grad_norm"][0]), watched.num_layers)
        self.assertGreater(mon.records["grad_norm"][-1][0], 0)  # labels: backward ran
        self.assertEqual(watched.training, plain.training)  # the mode is restored
        got = nnkit.Monitor(watched, ds, size=8, stats=("act_mean",)).measure()
        self.assertEqual(list(got), ["act_mean"])


EXAMPLES = os.path.join(ROOT, "bindings", "python", "examples")


@unittest.skipUnless(os.path.exists(os.path.join(DIGITS, "train-images-idx3-ubyte.gz")),
                     "data/digits is missing (scripts/fetch_digits.py makes it)")
class ExamplesTest(unittest.TestCase):
    """The Python twins of the C examples run end to end, in this Python
    (with -S too), for one epoch on the first 3,000 training and 300 test
    digits, print their final figures and write their PNGs when matplotlib
    is installed."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.tmp.name, "digits")
        os.mkdir(cls.data)
        for prefix, n in (("train", 3000), ("t10k", 300)):
            names = [prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz"]
            with nnkit.Dataset.load_idx(*[os.path.join(DIGITS, f) for f in names]) as ds, \
                    ds.subset(range(n)) as sub:
                sub.save_idx(*[os.path.join(cls.data, f) for f in names])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_example(self, name, final, png, *extra, status=0):
        out = tempfile.mkdtemp(dir=self.tmp.name)
        cmd = [sys.executable] + (["-S"] if sys.flags.no_site else []) + [
            os.path.join(EXAMPLES, name), "--data", self.data, "--out", out] + list(extra)
        r = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=300)
        self.assertRegex(r.stdout, final, r.stderr)
        self.assertEqual(r.returncode, status(r.stdout) if callable(status) else status,
                         r.stdout + r.stderr)
        path = os.path.join(out, png)
        if matplotlib is None:
            self.assertIn("(matplotlib is not installed: no PNG written)", r.stdout)
        else:
            self.assertIn("wrote " + path, r.stdout)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), PNG_MAGIC)
        return r.stdout

    def test_batchnorm(self):
        self.run_example("batchnorm.py",
                         r"\ntest accuracy with batch norm: +[01]\.\d{4}\n$",
                         "batchnorm_curves.png", "--epochs", "1")

    def test_dropout(self):
        self.run_example("dropout.py", r"\ntest accuracy with dropout: +[01]\.\d{4}\n$",
                         "dropout_curves.png", "--epochs", "1")

    def test_regularization(self):
        self.run_example("regularization.py", r"\nL1 makes \d+\.\d% of the weights ~0 "
                         r"\(\|w\| < 1e-3\), against \d+\.\d% without\n$",
                         "regularization_curves.png", "--epochs", "1")

    def test_normalization(self):
        self.run_example("normalization.py", r"\ntest( +([01]\.\d{4}|nan)){5}\n$",
                         "normalization_curves.png", "--epochs", "1")

    def test_digits_cnn(self):
        self.run_example("digits_cnn.py", r"\ntest accuracy: [01]\.\d{4}\n$",
                         "digits_cnn_curves.png", "--epochs", "1")

    def test_monitor(self):
        # exit status 1 when a diagnosis misses its cause (3 epochs of 2,700
        # digits are usually enough for all three)
        self.run_example("monitor.py", r"\nthe diagnosis named the right cause in [0-3] of "
                         r"3 runs\n$", "monitor_layers.png", "--epochs", "3",
                         status=lambda out: 0 if " 3 of 3 runs" in out else 1)

    def test_transfer(self):
        out = self.run_example("transfer.py", r"\nfine-tuning [-+]\d+\.\d points\.\n",
                               "transfer_accuracies.png", "--epochs", "1")
        self.assertRegex(out, r"\n  mean( +[01]\.\d{4}){3}\n")

    def test_init_study(self):
        self.run_example("init_study.py", r"He with ReLU: [0-9.]+: stable \(shown\)",
                         "init_study_he.png")


if __name__ == "__main__":
    unittest.main()
