"""Issue 20: safe inputs, Keras-style fit/evaluate/predict on arrays,
logging through Python, docstrings and type hints, pictures."""
import contextlib
import inspect
import io
import logging
import math
import os
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import nnkit  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None

try:
    import matplotlib  # noqa: F401
except ImportError:
    matplotlib = None


def blobs(n=120, seed=0):
    """4 separable clusters in 2-D, as nested lists."""
    xs, ys = [], []
    for i in range(n):
        c = i % 4
        a = c * math.pi / 2
        jitter = (((i + seed) * 7919) % 101) / 101.0 - 0.5
        xs.append([2 * math.cos(a) + 0.3 * jitter, 2 * math.sin(a) - 0.3 * jitter])
        ys.append(c)
    return xs, ys


def mlp(seed=3, loss="cross_entropy", out=4):
    return nnkit.Net(2, [nnkit.Dense(8), nnkit.Tanh(), nnkit.Dense(out)], seed=seed, loss=loss)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


@unittest.skipIf(np is None, "NumPy is not installed in this Python")
class BadInputTest(unittest.TestCase):
    """Each bad input raises the right exception with a sentence naming the
    expected and the given shape or dtype, and nothing crashes."""

    def test_wrong_shape(self):
        net = mlp()
        with self.assertRaises(ValueError) as cm:  # 12 values are not 6 samples of 2
            net.predict(np.zeros((4, 3)))
        self.assertIsInstance(cm.exception, nnkit.ShapeError)
        msg = str(cm.exception)
        self.assertIn("shape (4, 3)", msg)
        self.assertIn("(n, 2)", msg)
        for call in (net.predict_proba, net.forward, lambda x: net.evaluate(x, [0] * 4),
                     lambda x: net.fit(x, [0] * 4, epochs=1)):
            with self.assertRaises(nnkit.ShapeError):
                call(np.zeros((4, 3)))
        with self.assertRaises(nnkit.ShapeError) as cm:  # 5 labels for 4 samples
            net.fit(np.zeros((4, 2)), np.zeros(5, np.int64), epochs=1)
        self.assertIn("y has shape (5,)", str(cm.exception))
        self.assertIn("(4,)", str(cm.exception))
        with self.assertRaises(nnkit.ShapeError) as cm:  # one-hot labels
            net.fit(np.zeros((4, 2)), np.eye(4), epochs=1)
        self.assertIn("argmax", str(cm.exception))
        reg = mlp(loss="mse", out=3)
        with self.assertRaises(nnkit.ShapeError) as cm:
            reg.fit(np.zeros((4, 2)), np.zeros((4, 2)), epochs=1)
        self.assertIn("(4, 3)", str(cm.exception))

    def test_wrong_dtype(self):
        net = mlp()
        for bad in (np.array([["a", "b"]] * 4), np.zeros((4, 2), complex),
                    np.array([[object(), object()]] * 4)):
            with self.assertRaises(TypeError) as cm:
                net.predict(bad)
            self.assertIn("dtype %s" % bad.dtype, str(cm.exception))
            self.assertIsInstance(cm.exception, nnkit.Error)
        with self.assertRaises(TypeError) as cm:
            net.predict([[1.0, "x"]])
        self.assertIn("str", str(cm.exception))
        with self.assertRaises(TypeError):
            net.fit(np.zeros((4, 2)), np.array(["0", "1", "2", "3"]), epochs=1)
        # safe conversions: any real dtype, lists
        x = np.array(blobs(8)[0])
        want = net.predict(x.astype(np.float32))
        for conv in (x, x.astype(np.float16), x.tolist(), (x * 4).astype(np.int64) / 4):
            self.assertEqual(list(net.predict(conv)), list(net.predict(conv)))
        self.assertEqual(list(net.predict(x)), list(want))

    def test_float_labels_for_a_classifier(self):
        net = mlp()
        x = np.zeros((10, 2), np.float32)
        with self.assertRaises(ValueError) as cm:
            net.fit(x, np.full(10, 0.5), epochs=1)
        self.assertIn("0.5 at index 0 is not an integer class id", str(cm.exception))
        self.assertIn("loss='mse'", str(cm.exception))
        with self.assertRaises(ValueError):
            nnkit.Dataset(x, [0.5] * 10)  # not silently truncated to zeros
        with self.assertRaises(ValueError):
            net.evaluate(x, np.full(10, 1.5))
        # integral floats are class ids
        net.fit(x, np.arange(10) % 4 * 1.0, epochs=1, batch_size=5)

    def test_non_contiguous_arrays_are_converted(self):
        xs, ys = blobs(40)
        x = np.asfortranarray(np.array(xs, np.float64))
        strided = np.repeat(np.array(xs, np.float32), 2, axis=0)[::2]
        self.assertFalse(x.flags.c_contiguous)
        self.assertFalse(strided.flags.c_contiguous)
        labels = np.repeat(np.array(ys, np.int64), 2)[::2]
        a, b = mlp(), mlp()
        a.fit(x, labels, epochs=2, batch_size=8, lr=0.1)
        b.fit(np.ascontiguousarray(x, np.float32), np.array(ys, np.int32), epochs=2,
              batch_size=8, lr=0.1)
        self.assertEqual(np.array(a.params).tobytes(), np.array(b.params).tobytes())
        self.assertEqual(list(a.predict(strided)), list(b.predict(np.array(xs))))
        self.assertEqual(a.predict_proba(x.T.T).shape, (40, 4))

    def test_unknown_names_list_the_valid_ones(self):
        cases = [(lambda: nnkit.Optimizer("adamm"), "adam, adamw"),
                 (lambda: nnkit.Optimizer("sgd", lrate=0.1), "lr, "),
                 (lambda: nnkit.Schedule("cosin"), "cosine"),
                 (lambda: nnkit.Regularizer("l3", 0.1), "elastic_net"),
                 (lambda: nnkit.Normalizer("zscore"), "standardize"),
                 (lambda: nnkit.Augmenter().add("spin"), "rotate"),
                 (lambda: nnkit.Activation("gelu"), "relu"),
                 (lambda: nnkit.Init("glorot"), "xavier_normal"),
                 (lambda: mlp(loss="hinge"), "mse"),
                 (lambda: mlp().layer_get(0, "width"), "units"),
                 (lambda: nnkit.verdict_name("fine"), "healthy")]
        for make, listed in cases:
            with self.assertRaises(nnkit.InvalidArgument) as cm:
                make()
            self.assertIn("the valid ones are", str(cm.exception))
            self.assertIn(listed, str(cm.exception))
            self.assertIsInstance(cm.exception, ValueError)

    def test_fit_type_errors(self):
        net = mlp()
        with self.assertRaises(ValueError) as cm:
            net.fit(np.zeros((4, 2)))
        self.assertIn("y is missing", str(cm.exception))
        with self.assertRaises(TypeError):
            net.add("dense")
        with self.assertRaises(TypeError):
            nnkit.Trainer(net, "sgd")
        with self.assertRaises(nnkit.InvalidArgument):
            net.fit(np.zeros((4, 2)), [0, 1, 2, 3], validation_split=1.5)
        with self.assertRaises(nnkit.InvalidArgument):
            net.fit(np.zeros((4, 2)), [0, 1, 2, 3], validation_split=0.8)  # 0 left to train
        with self.assertRaises(TypeError):
            net.fit(np.zeros((4, 2)), [0, 1, 2, 3], validation_data=[1, 2, 3])


class BadListInputTest(unittest.TestCase):
    """The same checks on plain lists (with or without NumPy)."""

    def test_lists(self):
        net = mlp()
        with self.assertRaises(nnkit.ShapeError) as cm:
            net.predict([[0.0, 0.0, 0.0]] * 4)
        self.assertIn("shape (4, 3)", str(cm.exception))
        with self.assertRaises(TypeError) as cm:
            net.predict([[1.0, "x"]])
        self.assertIn("str 'x'", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            net.predict([[1.0, 2.0], [3.0]])
        self.assertIn("ragged", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            net.predict([[1.0, [2.0]]])
        self.assertIn("ragged", str(cm.exception))
        with self.assertRaises(TypeError):
            net.predict("1.0, 2.0")
        with self.assertRaises(ValueError) as cm:
            net.fit([[0.0, 1.0]] * 4, [0.5, 1, 2, 3], epochs=1)
        self.assertIn("0.5 at index 0 is not an integer class id", str(cm.exception))
        self.assertEqual(len(net.predict([[0.0, 1.0]] * 3)), 3)


class ErrorHierarchyTest(unittest.TestCase):
    def test_every_status_has_a_subclass_carrying_the_sentence(self):
        from nnkit._prototypes import ENUMS
        from nnkit.errors import _ERRORS
        for name, value in ENUMS["nnkit_status"].items():
            if value != 0:
                self.assertTrue(issubclass(_ERRORS[value], nnkit.Error), name)
        with self.assertRaises(nnkit.IOFailure) as cm:
            nnkit.Dataset.load_idx("/nonexistent/images.gz")
        self.assertIn("/nonexistent/images.gz", cm.exception.message)
        self.assertEqual(cm.exception.status, nnkit.E_IO)

    def test_status_functions_raise_through_errcheck(self):
        from nnkit._lib import lib
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            lib.nnkit_set_num_threads(-1)
        self.assertTrue(cm.exception.message)


class KerasFitTest(unittest.TestCase):
    def test_fit_on_arrays_equals_fit_on_datasets_bit_for_bit(self):
        xs, ys = blobs(120)
        vx, vy = blobs(40, seed=5)
        a, b = mlp(), mlp()
        ha = a.fit(xs, ys, validation_data=(vx, vy), epochs=3, batch_size=16, lr=0.1)
        with nnkit.Dataset(xs, ys, num_classes=4) as tr, \
                nnkit.Dataset(vx, vy, num_classes=4) as va:
            hb = b.fit(tr, validation_data=va, epochs=3, batch_size=16, lr=0.1)
        self.assertEqual(list(a.params), list(b.params))
        self.assertEqual(ha["val_loss"], hb["val_loss"])
        self.assertEqual(len(ha), 3)
        self.assertEqual(list(ha.history), list(hb.history))
        # validation_split holds out the last samples, as Keras does
        c, d = mlp(), mlp()
        hc = c.fit(xs, ys, validation_split=0.25, epochs=2, batch_size=16, lr=0.1)
        hd = d.fit(xs[:90], ys[:90], validation_data=(xs[90:], ys[90:]), epochs=2,
                   batch_size=16, lr=0.1)
        self.assertEqual(list(c.params), list(d.params))
        self.assertEqual(hc["val_acc"], hd["val_acc"])
        # evaluate / predict / predict_proba on arrays
        loss, acc = a.evaluate(vx, vy)
        with nnkit.Dataset(vx, vy, num_classes=4) as va:
            self.assertEqual((loss, acc), a.evaluate(va))
        pred = list(a.predict(vx))
        self.assertEqual(sum(p == y for p, y in zip(pred, vy)) / len(vy), acc)
        self.assertEqual(len(a.predict_proba(vx)), 40)
        self.assertEqual(sum(map(sum, a.confusion(vx, vy))), 40)

    def test_flat_arrays_take_the_input_shape_of_a_conv_net(self):
        xs = [[((i * 7 + j * 3) % 11) / 11.0 for j in range(16)] for i in range(24)]
        ys = [i % 2 for i in range(24)]
        nets = [nnkit.Net((1, 4, 4), [nnkit.Conv2D(2, 3), nnkit.ReLU(), nnkit.Flatten(),
                                      nnkit.Dense(2)], seed=1) for _ in range(2)]
        nets[0].fit(xs, ys, epochs=2, batch_size=6, lr=0.1)
        square = [[[row[4 * r:4 * r + 4] for r in range(4)]] for row in xs]
        with nnkit.Dataset(square, ys) as ds:
            self.assertEqual(ds.shape, (1, 4, 4))
            nets[1].fit(ds, epochs=2, batch_size=6, lr=0.1)
        self.assertEqual(list(nets[0].params), list(nets[1].params))

    def test_regression_fit_on_arrays(self):
        xs = [[i / 50.0, 1 - i / 50.0] for i in range(50)]
        ys = [2 * x[0] - x[1] for x in xs]
        net = nnkit.Net(2, [nnkit.Dense(1)], seed=1, loss="mse")
        self.assertFalse(net.is_classifier)
        hist = net.fit(xs, ys, epochs=40, batch_size=10, lr=0.2)
        self.assertLess(hist["train_loss"][-1], hist["train_loss"][0])
        loss, _ = net.evaluate(xs, ys)
        self.assertLess(loss, 0.05)

    def test_callbacks_and_history_repr(self):
        xs, ys = blobs(40)
        seen = []
        net = mlp()
        hist = net.fit(xs, ys, epochs=2, batch_size=8, callbacks=[lambda e, tr: seen.append(e)])
        self.assertEqual(seen, [0, 1])
        self.assertRegex(repr(hist), r"History\(2 epochs, last: train_loss [0-9.]+")

    def test_pipeline_batches_keep_targets_and_shape(self):
        xs = [[[float(i + j) for j in range(3)] for _ in range(2)] for i in range(10)]
        ts = [[float(i), -float(i)] for i in range(10)]
        ds = nnkit.Dataset(xs, targets=ts)
        with nnkit.Pipeline(ds, batch_size=4, shuffle=0) as pipe:
            self.assertEqual(pipe.shape, (2, 3))
            batches = list(pipe.batches())
        self.assertEqual(len(batches), 3)
        x, y = batches[0]
        if np is not None:
            self.assertEqual(x.shape, (4, 2, 3))
            self.assertEqual(y.shape, (4, 2))
            self.assertEqual(y.tolist(), ts[:4])
        else:
            self.assertEqual(len(x[0]), 2)
            self.assertEqual(y, ts[:4])
        ds.close()


class LoggingTest(unittest.TestCase):
    def test_redirected_stdout_captures_the_training_log(self):
        xs, ys = blobs(40)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            mlp().fit(xs, ys, epochs=2, batch_size=8, verbose=True)
        lines = buf.getvalue().splitlines()
        self.assertEqual(len([l for l in lines if l.startswith("Finished epoch")]), 2, lines)

    def test_logging_logger_receives_the_lines(self):
        xs, ys = blobs(40)
        logger = logging.getLogger("nnkit-test")
        with self.assertLogs(logger, level="INFO") as cm:
            mlp().fit(xs, ys, epochs=3, batch_size=8, verbose=True, log=logger)
        self.assertEqual(len([r for r in cm.output if "Finished epoch" in r]), 3)

    def test_progress_bar_on_a_terminal(self):
        class Terminal(io.StringIO):
            def isatty(self):
                return True

        xs, ys = blobs(80)
        buf = Terminal()
        with contextlib.redirect_stdout(buf):
            mlp().fit(xs, ys, epochs=2, batch_size=8, verbose=True)
        out = buf.getvalue()
        self.assertIn("epoch 1/2", out)   # the bar, with tqdm or the plain one
        self.assertIn("/10", out)         # 80 samples / 8: 10 batches
        self.assertEqual(out.count("Finished epoch"), 2)
        saved = sys.modules.get("tqdm")
        sys.modules["tqdm"] = None  # as without python3-tqdm: the plain bar
        try:
            buf = Terminal()
            with contextlib.redirect_stdout(buf):
                mlp().fit(xs, ys, epochs=2, batch_size=8, verbose=True)
        finally:
            if saved is None:
                del sys.modules["tqdm"]
            else:
                sys.modules["tqdm"] = saved
        out = buf.getvalue()
        self.assertIn("epoch 2/2 [", out)
        self.assertIn("10/10 ETA 0s", out)
        self.assertEqual(out.count("Finished epoch"), 2)
        plain = io.StringIO()  # not a terminal: no bar, one line per epoch
        with contextlib.redirect_stdout(plain):
            mlp().fit(xs, ys, epochs=2, batch_size=8, verbose=True)
        self.assertNotIn("epoch 1/2", plain.getvalue())


class ApiSurfaceTest(unittest.TestCase):
    # Every public module of the package (not only those that existed when
    # this test was written): a module added later is held to the same rule.
    MODULES = ["nnkit"] + sorted(
        "nnkit." + m.name for m in __import__("pkgutil").iter_modules(nnkit.__path__)
        if not m.name.startswith("_"))

    def public(self):
        """(qualified name, object) of every public function, class, method
        and property of the package's modules."""
        import importlib
        seen = set()
        for modname in self.MODULES:
            mod = importlib.import_module(modname)
            for name in getattr(mod, "__all__", []):
                obj = getattr(mod, name)
                if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                    continue
                seen.add(id(obj))
                yield "%s.%s" % (modname, name), obj
                if inspect.isclass(obj):
                    for attr, member in vars(obj).items():
                        if attr.startswith("_") and attr != "__init__":
                            continue
                        if isinstance(member, (staticmethod, classmethod)):
                            member = member.__func__
                        if isinstance(member, property):
                            member = member.fget
                        if inspect.isfunction(member):
                            yield "%s.%s.%s" % (modname, name, attr), member

    def test_every_public_callable_has_a_docstring(self):
        missing = [q for q, obj in self.public()
                   if not (obj.__doc__ or "").strip() and not q.endswith("__init__")
                   and not (inspect.isclass(obj) and issubclass(obj, tuple))]
        self.assertEqual(missing, [])

    def test_every_public_function_has_type_hints(self):
        missing = []
        for q, obj in self.public():
            if inspect.isclass(obj):
                continue
            sig = inspect.signature(obj)
            params = [p for n, p in sig.parameters.items() if n not in ("self", "cls")]
            if any(p.annotation is inspect.Parameter.empty for p in params) or \
                    sig.return_annotation is inspect.Signature.empty:
                missing.append(q)
        self.assertEqual(missing, [])

    def test_reprs(self):
        net = nnkit.Net((784,), [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(10)])
        self.assertEqual(repr(net), "Net(784 -> 256 -> 10, 203,530 params)")
        self.assertEqual(repr(nnkit.Optimizer("sgd", lr=0.1, momentum=0.9)),
                         "Optimizer('sgd', lr=0.1, momentum=0.9)")
        self.assertEqual(repr(nnkit.Dataset([[1.0, 2.0]] * 3, [0, 1, 0])),
                         "Dataset(3 samples of (2,), 2 classes)")
        self.assertEqual(repr(nnkit.Dense(10)), "Dense(10)")
        self.assertEqual(repr(nnkit.Schedule("cosine", t_max=3)), "Schedule('cosine')")
        net.close()
        self.assertEqual(repr(net), "Net(closed)")

    def test_generated_tables_match_the_headers(self):
        from nnkit._prototypes import ENUMS, NNKIT_PAD_SAME
        self.assertEqual(nnkit.OPTIMIZERS, ENUMS["nnkit_optim_kind"])
        self.assertEqual(nnkit.OPTIMIZERS["adam"], 4)
        self.assertEqual(nnkit.LAYER_KEYS["p"], nnkit.LAYER_KEYS["drop_p"])
        self.assertEqual(nnkit.SAME, NNKIT_PAD_SAME)

    def test_library_and_version(self):
        from nnkit import _lib
        self.assertTrue(os.path.exists(nnkit.__library__), nnkit.__library__)
        self.assertEqual(nnkit.__version__, _lib.PACKAGE_VERSION)
        major, minor, patch = (int(v) for v in nnkit.__version__.split("."))
        number = major * 10000 + minor * 100
        self.assertTrue(_lib._compatible(number + patch + 7))  # any patch
        self.assertTrue(_lib._compatible(number + 100))        # a newer minor
        self.assertFalse(_lib._compatible(number + 10000))     # another major
        if minor:
            self.assertFalse(_lib._compatible(number - 100))   # an older minor

    def test_no_matplotlib_backend_is_forced(self):
        code = ("import sys; sys.path.insert(0, %r); import nnkit; "
                "print('matplotlib' in sys.modules)" % os.path.join(HERE, ".."))
        import subprocess
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), "False", out.stderr)


@unittest.skipIf(matplotlib is None or np is None, "matplotlib or NumPy is not installed")
class PictureTest(unittest.TestCase):
    """Each picture is one call and writes a non-empty PNG of the expected
    size in pixels."""

    @classmethod
    def setUpClass(cls):
        xs, ys = blobs(80)
        cls.xs, cls.ys = xs, ys
        cls.net = mlp()
        cls.hist = cls.net.fit(xs, ys, validation_split=0.25, epochs=3, batch_size=16, lr=0.1)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, name, draw, size):
        path = os.path.join(self.tmp.name, name)
        fig = draw(path)
        self.assertGreater(os.path.getsize(path), 1000)
        self.assertEqual(png_size(path), size)
        self.assertTrue(hasattr(fig, "savefig"))

    def test_training_curves(self):
        self.check("curves.png", lambda p: self.hist.plot(p), (1000, 400))

    def test_confusion_matrix(self):
        self.check("confusion.png", lambda p: self.net.plot_confusion(self.xs, self.ys, path=p),
                   (600, 500))

    def test_first_layer_filters(self):
        net = nnkit.Net((1, 4, 4), [nnkit.Conv2D(6, 3), nnkit.ReLU(), nnkit.Flatten(),
                                    nnkit.Dense(2)], seed=1)
        self.check("conv_filters.png", lambda p: net.plot_filters(p), (800, 800))
        dense = nnkit.Net((1, 5, 5), [nnkit.Flatten(), nnkit.Dense(9), nnkit.ReLU(),
                                      nnkit.Dense(2)], seed=1)
        self.check("dense_filters.png", lambda p: dense.plot_filters(p), (800, 800))

    def test_histograms(self):
        self.check("hist.png", lambda p: self.net.plot_histograms(self.xs[:32], self.ys[:32],
                                                                  path=p), (1000, 600))

    def test_lr_finder_curve(self):
        with nnkit.Dataset(self.xs, self.ys) as ds, nnkit.Optimizer("sgd") as opt, \
                nnkit.Trainer(mlp(), opt, batch_size=8) as tr:
            found = tr.find_lr(ds, 1e-4, 10.0, 30)
        suggested, lrs, losses = found
        self.assertEqual(len(lrs), len(losses))
        self.check("lr.png", lambda p: found.plot(p), (700, 450))

    def test_history_from_the_c_csv(self):
        with nnkit.Dataset(self.xs, self.ys) as ds, nnkit.Optimizer("sgd", lr=0.1) as opt, \
                nnkit.Trainer(mlp(), opt, epochs=2, batch_size=8) as tr:
            tr.fit(ds, ds)
            csv = os.path.join(self.tmp.name, "history.csv")
            tr.save_history(csv)
            hist = tr.history()
        back = nnkit.History.from_csv(csv)
        self.assertEqual(len(back), 2)
        for k in ("train_loss", "val_acc"):
            self.assertEqual(["%.6g" % v for v in back[k]], ["%.6g" % v for v in hist[k]])
        self.check("from_csv.png", lambda p: back.plot(p), (1000, 400))

    def test_histograms_from_the_c_csv(self):
        csv = os.path.join(self.tmp.name, "hist.csv")
        self.net.forward(self.xs[:16])
        self.net.save_histograms_csv(csv, 20, -2, 2)
        self.check("hist_csv.png", lambda p: nnkit.plot.histograms_csv(csv, p), (1200, 200))


if __name__ == "__main__":
    unittest.main()
