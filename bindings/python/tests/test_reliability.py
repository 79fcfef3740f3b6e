"""Issue 21, items 1, 2 and 14: the Python layer never lets C touch freed
memory and never changes a value silently.

Cases that would crash without the fix run in a child interpreter (the
same python, with -S when this run has no site packages) under glibc's
MALLOC_PERTURB_, which fills freed memory with a pattern: a use after free
then reads wrong values or crashes instead of passing by luck.
"""
import os
import subprocess
import sys
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import nnkit  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None

PRELUDE = """
import gc, sys
sys.path.insert(0, %r)
import nnkit
try:
    import numpy as np
except ImportError:
    np = None

def expect(exc, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%%s did not raise %%s" %% (fn, exc.__name__))

XS = [[float(i %% 5) - 2.0, float(i %% 3) - 1.0] for i in range(40)]
YS = [i %% 2 for i in range(40)]
""" % os.path.join(HERE, "..")


def run_child(code):
    """Runs code in a child python; returns (returncode, stdout + stderr)."""
    cmd = [sys.executable] + (["-S"] if sys.flags.no_site else []) + \
        ["-c", PRELUDE + textwrap.dedent(code)]
    env = dict(os.environ, MALLOC_PERTURB_="165", MALLOC_CHECK_="3")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    return r.returncode, r.stdout + r.stderr


class ChildTest(unittest.TestCase):
    def assertChildOk(self, code):
        rc, out = run_child(code)
        self.assertEqual(rc, 0, "child failed (%d; negative = killed by a signal):\n%s"
                         % (rc, out))
        self.assertIn("CHILD-OK", out, out)


class ViewTest(ChildTest):
    """Item 1: .params/.grads views keep the net alive and never alias a
    freed or moved buffer."""

    def test_view_after_close_reads_valid_memory(self):
        self.assertChildOk("""
            net = nnkit.Net(2, [nnkit.Dense(64), nnkit.ReLU(), nnkit.Dense(3)], seed=1)
            p, g = net.params, net.grads
            before = list(p)
            net.close()
            expect(nnkit.StateError, lambda: net.num_params)
            expect(nnkit.StateError, lambda: net.params)
            others = [nnkit.Net(2, [nnkit.Dense(64), nnkit.ReLU(), nnkit.Dense(3)], seed=2)
                      for _ in range(4)]
            others_before = [list(o.params) for o in others]
            assert list(p) == before, "the view reads freed memory"
            for i in range(len(p)):
                p[i] = 42.0
                g[i] = 7.0
            assert [list(o.params) for o in others] == others_before, "aliasing"
            del p, g, others
            gc.collect()
            assert not net._h, "the net is freed with its last view"
            print("CHILD-OK")
        """)

    def test_view_keeps_a_dropped_net_alive(self):
        self.assertChildOk("""
            def make():
                net = nnkit.Net(2, [nnkit.Dense(256), nnkit.Dense(3)], seed=3)
                return net.params, list(net.params)
            p, before = make()
            gc.collect()
            junk = [nnkit.Net(2, [nnkit.Dense(256), nnkit.Dense(3)]) for _ in range(3)]
            junk_params = [list(j.params) for j in junk]
            assert list(p) == before, "the view outlived its net"
            if np is not None:
                tail = p[10:]
                del p
                gc.collect()
                assert list(tail) == before[10:]
            print("CHILD-OK")
        """)

    def test_add_and_cut_refuse_to_move_a_viewed_buffer(self):
        self.assertChildOk("""
            net = nnkit.Net(2, [nnkit.Dense(128), nnkit.ReLU(), nnkit.Dense(3)], seed=4)
            p = net.params
            before = list(p)
            e = expect(nnkit.StateError, net.add, nnkit.Dense(500))
            assert "view" in str(e), e
            expect(nnkit.StateError, net.cut, 1)
            g = net.grads
            del p
            expect(nnkit.StateError, net.add, nnkit.Dense(500))  # g is alive
            assert net.num_layers == 3
            q = net.params
            assert list(q) == before
            del g, q
            gc.collect()
            net.add(nnkit.Dense(500))  # no view: the buffer may move
            assert net.num_layers == 4
            assert list(net.params)[:len(before)] == before
            net.cut(3)
            assert list(net.params) == before
            print("CHILD-OK")
        """)


class BorrowTest(ChildTest):
    """Item 2: a Trainer/Pipeline keeps what it borrows; closing a borrowed
    object (also from a callback) raises StateError, never a crash."""

    def test_close_net_then_fit_raises(self):
        self.assertChildOk("""
            ds = nnkit.Dataset(XS, YS, num_classes=2)
            for victim in ("net", "opt"):
                net = nnkit.Net(2, [nnkit.Dense(16), nnkit.ReLU(), nnkit.Dense(2)])
                opt = nnkit.Optimizer("sgd", lr=0.1)
                tr = nnkit.Trainer(net, opt, epochs=2, batch_size=8)
                (net if victim == "net" else opt).close()
                junk = [nnkit.Net(2, [nnkit.Dense(16), nnkit.ReLU(), nnkit.Dense(2)])
                        for _ in range(3)]
                e = expect(nnkit.StateError, tr.fit, ds)
                assert "closed" in str(e), e
                expect(nnkit.StateError, lambda: tr.epochs_done)
                assert net._h and opt._h, "freed while the trainer borrows them"
                tr.close()
                assert not (net._h if victim == "net" else opt._h)
            print("CHILD-OK")
        """)

    def test_close_from_a_callback_raises(self):
        self.assertChildOk("""
            ds = nnkit.Dataset(XS, YS, num_classes=2)
            for what in ("net", "opt", "ds", "trainer"):
                net = nnkit.Net(2, [nnkit.Dense(16), nnkit.ReLU(), nnkit.Dense(2)])
                opt = nnkit.Optimizer("sgd", lr=0.1)
                data = nnkit.Dataset(XS, YS, num_classes=2)
                tr = nnkit.Trainer(net, opt, epochs=5, batch_size=8)
                calls = []

                class Closer:
                    def on_batch(self, epoch, batch, loss):
                        calls.append(batch)
                        {"net": net, "opt": opt, "ds": data, "trainer": tr}[what].close()
                        junk = [nnkit.Net(2, [nnkit.Dense(16), nnkit.Dense(2)])
                                for _ in range(3)]

                tr.add_callback(Closer())
                e = expect(nnkit.StateError, tr.fit, data)
                assert "closed during fit" in str(e), (what, e)
                assert len(calls) == 1, (what, calls)
                tr.close()
                gc.collect()
                assert not {"net": net, "opt": opt, "ds": data, "trainer": tr}[what]._h
            # Net.fit with a closing callback
            net = nnkit.Net(2, [nnkit.Dense(4), nnkit.Dense(2)])
            expect(nnkit.StateError, net.fit, ds, epochs=3, callbacks=[lambda e, t: net.close()])
            gc.collect()
            assert not net._h
            print("CHILD-OK")
        """)

    def test_close_from_a_logger_raises_after_fit(self):
        self.assertChildOk("""
            ds = nnkit.Dataset(XS, YS, num_classes=2)
            net = nnkit.Net(2, [nnkit.Dense(8), nnkit.ReLU(), nnkit.Dense(2)])
            opt = nnkit.Optimizer("sgd", lr=0.1)
            lines = []

            def log(line):
                lines.append(line)
                net.close()
                junk = [nnkit.Net(2, [nnkit.Dense(8), nnkit.Dense(2)]) for _ in range(3)]

            tr = nnkit.Trainer(net, opt, epochs=3, batch_size=8, verbose=1, log=log)
            e = expect(nnkit.StateError, tr.fit, ds)
            assert "Net was closed during fit" in str(e), e
            assert lines, "the logger was not called"
            assert net._h
            del tr, e  # e's traceback holds the trainer too
            gc.collect()
            assert not net._h
            print("CHILD-OK")
        """)

    def test_close_dataset_of_a_pipeline_raises(self):
        self.assertChildOk("""
            ds = nnkit.Dataset(XS, YS, num_classes=2)
            pipe = nnkit.Pipeline(ds, batch_size=8)
            ds.close()
            junk = [nnkit.Dataset(XS, YS, num_classes=2) for _ in range(3)]
            expect(nnkit.StateError, lambda: list(pipe.batches()))
            expect(nnkit.StateError, len, pipe)
            net = nnkit.Net(2, [nnkit.Dense(2)])
            with nnkit.Trainer(net, nnkit.Optimizer("sgd"), epochs=1) as tr:
                expect(nnkit.StateError, tr.fit, pipe)
            assert ds._h
            pipe.close()
            assert not ds._h
            print("CHILD-OK")
        """)


class SilentChangeTest(unittest.TestCase):
    """Item 14: values Python would have changed silently raise instead."""

    def net(self, n_in=2, n_out=3):
        return nnkit.Net(n_in, [nnkit.Dense(n_out)], seed=1)

    def test_label_out_of_int32_range(self):
        xs = [[0.0, 1.0]] * 3
        for labels in ([0, 2 ** 32 + 1, 1], [0, -2 ** 31 - 1, 1]):
            with self.assertRaises(nnkit.InvalidArgument) as cm:
                nnkit.Dataset(xs, labels, num_classes=2)
            self.assertIn("does not fit a 32-bit class id", str(cm.exception))
            if np is not None:
                with self.assertRaises(nnkit.InvalidArgument):
                    nnkit.Dataset(np.array(xs, np.float32), np.array(labels, np.int64),
                                  num_classes=2)
        net = self.net()
        net.forward(xs)
        with self.assertRaises(nnkit.InvalidArgument):
            net.backward(labels=[0, 2 ** 32 + 1, 1])
        if np is not None:
            net.forward(xs)
            with self.assertRaises(nnkit.InvalidArgument):
                net.backward(labels=np.array([0, 2 ** 32 + 1, 1], np.int64))
            with self.assertRaises(nnkit.InvalidArgument):
                nnkit.Optimizer("sgd").train_batch(net, xs,
                                                   labels=np.array([0, 2 ** 32 + 1, 1]))
        self.assertEqual(nnkit.Dataset(xs, [0, 2, 1], num_classes=3).labels is not None,
                         True)

    def test_float_labels_must_be_integral(self):
        xs = [[0.0, 1.0]] * 3
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            nnkit.Dataset(xs, [0, 1.9, 1], num_classes=2)
        self.assertIn("1.9 at index 1 is not an integer", str(cm.exception))
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.Dataset(xs, [0, float("nan"), 1], num_classes=2)
        ds = nnkit.Dataset(xs, [0, 2.0, 1], num_classes=3)  # integral floats are fine
        self.assertEqual(list(ds.labels), [0, 2, 1])
        ds = nnkit.Dataset(xs, [False, True, True], num_classes=2)  # so are bools
        self.assertEqual(list(ds.labels), [0, 1, 1])
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.Dataset(xs, ["0", "1", "1"], num_classes=2)
        if np is not None:
            with self.assertRaises(nnkit.InvalidArgument):
                nnkit.Dataset(np.array(xs, np.float32), np.array([0, 1.9, 1]),
                              num_classes=2)
            ds = nnkit.Dataset(np.array(xs, np.float32), np.array([0, 2.0, 1]),
                               num_classes=3)
            self.assertEqual(list(ds.labels), [0, 2, 1])
            ds = nnkit.Dataset(np.array(xs, np.float32), np.array([False, True, True]),
                               num_classes=2)
            self.assertEqual(list(ds.labels), [0, 1, 1])
            with self.assertRaises(nnkit.InvalidArgument):
                nnkit.Dataset(np.array(xs, np.float32), np.array(["0", "1", "1"]),
                              num_classes=2)
        net = self.net()
        net.forward(xs)
        with self.assertRaises(nnkit.InvalidArgument):
            net.backward(labels=[0, 1.9, 1])

    def test_targets_must_divide_by_samples(self):
        xs = [[0.0, 1.0]] * 3
        with self.assertRaises(nnkit.ShapeError) as cm:
            nnkit.Dataset(xs, targets=[0.5] * 7)
        self.assertIn("targets have shape (7,) for 3 samples", str(cm.exception))
        if np is not None:
            with self.assertRaises(nnkit.ShapeError):
                nnkit.Dataset(np.array(xs, np.float32), targets=np.zeros(7, np.float32))
        self.assertEqual(nnkit.Dataset(xs, targets=[0.5] * 6).target_dim, 2)

    def test_normalizer_transform_refuses_trailing_values(self):
        xs = [[float(i), float(i * i % 7)] for i in range(10)]
        ds = nnkit.Dataset(xs, [i % 2 for i in range(10)], num_classes=2)
        nz = nnkit.Normalizer("standardize").fit(ds)
        with self.assertRaises(nnkit.ShapeError) as cm:
            nz.transform([1.0, 2.0, 3.0])
        self.assertIn("x has shape (3,)", str(cm.exception))
        self.assertIn("expected an array of shape (n, 2)", str(cm.exception))
        with self.assertRaises(nnkit.ShapeError):
            nz.transform([[1.0, 2.0, 3.0]] * 2)  # 6 values, but samples of 3
        self.assertEqual(len(nz.transform([1.0, 2.0, 3.0, 4.0])), 2)
        if np is not None:
            with self.assertRaises(nnkit.ShapeError):
                nz.transform(np.zeros(5, np.float32))
            with self.assertRaises(nnkit.ShapeError):
                nz.transform(np.zeros((2, 3), np.float32))
        with self.assertRaises(nnkit.StateError):
            nnkit.Normalizer("standardize").transform([1.0, 2.0])

    def test_set_num_threads_out_of_int_range(self):
        before = nnkit.get_num_threads()
        for n in (2 ** 32, 2 ** 32 + 2, -2 ** 32, 1.5):
            with self.assertRaises(nnkit.InvalidArgument):
                nnkit.set_num_threads(n)
            self.assertEqual(nnkit.get_num_threads(), before)
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.set_num_threads(2000)  # the library's own bound

    def test_short_labels_buffer_is_refused(self):
        xs = [[0.0, 1.0]] * 8
        net = self.net()
        net.forward(xs)
        with self.assertRaises(nnkit.ShapeError) as cm:
            net.backward(labels=[0])
        self.assertIn("labels have shape (1,) for a batch of 8 samples", str(cm.exception))
        net.forward(xs)
        with self.assertRaises(nnkit.ShapeError):
            net.backward(targets=[0.5] * 5)
        with self.assertRaises(nnkit.ShapeError):
            net.layer_stats(xs, [0, 1])
        with self.assertRaises(nnkit.ShapeError):
            nnkit.Optimizer("sgd").train_batch(net, xs, labels=[0])
        if np is not None:
            net.forward(np.zeros((8, 2), np.float32))
            with self.assertRaises(nnkit.ShapeError):
                net.backward(labels=np.zeros(1, np.int32))
            with self.assertRaises(nnkit.ShapeError):
                net.layer_stats(np.zeros((8, 2), np.float32), np.zeros(2, np.int32))
        # a forward of another size in between (predict) is not the batch
        net.forward(xs)
        net.predict([[0.0, 1.0]] * 2)
        with self.assertRaises(nnkit.StateError):
            net.backward(labels=[0] * 8)
        net.forward(xs)
        self.assertGreater(net.backward(labels=[0, 1, 2, 0, 1, 2, 0, 1]), 0.0)

    def test_typed_buffers_keep_their_values(self):
        import array
        ds = nnkit.Dataset(array.array("q", [1, 2, 3, 4]), [0, 1], shape=(2,),
                           num_classes=2)
        self.assertEqual([list(r) for r in ds.x], [[1.0, 2.0], [3.0, 4.0]])
        ds = nnkit.Dataset(array.array("b", [-1, 2, -3, 4]), array.array("q", [1, 0]),
                           shape=(2,), num_classes=2)
        self.assertEqual([list(r) for r in ds.x], [[-1.0, 2.0], [-3.0, 4.0]])
        self.assertEqual(list(ds.labels), [1, 0])
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.Dataset([[0.0], [1.0]], array.array("q", [0, 2 ** 40]), num_classes=2)

    def test_augmenter_refuses_trailing_values(self):
        aug = nnkit.Augmenter([("hflip", 1.0)])
        with self.assertRaises(nnkit.ShapeError):
            aug.apply([0.0] * 10, (1, 2, 2))
        self.assertEqual(len(aug.apply([0.0] * 8, (1, 2, 2))), 2)

    def test_predict_refuses_another_sample_shape(self):
        net = self.net(2, 3)
        for bad in ([[0.0] * 3] * 4, [[[0.0, 0.0]] * 2] * 3):
            for fn in (net.predict, net.predict_proba, net.forward):
                with self.assertRaises(nnkit.ShapeError) as cm:
                    fn(bad)
                self.assertIn("samples of shape", str(cm.exception))
        if np is not None:
            with self.assertRaises(nnkit.ShapeError):
                net.predict(np.zeros((4, 3)))
            self.assertEqual(len(net.predict(np.zeros((4, 2)))), 4)
        self.assertEqual(len(net.predict([[0.0, 0.0]] * 4)), 4)
        self.assertEqual(len(net.predict([0.0] * 4)), 2)  # flat: consecutive samples


if __name__ == "__main__":
    unittest.main()
