"""Ensembles, snapshot ensembles, weight averaging and hard-sample mining
from Python (nnkit.Ensemble, fit(snapshots=, ema_decay=, ohem_k=),
Net.per_sample_loss, nnkit.mining), with and without NumPy."""
import math
import os
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


def blobs(n=160, classes=4, spread=0.6):
    xs, ys = [], []
    for i in range(n):
        c = i % classes
        a = c * 2 * math.pi / classes
        j1 = ((i * 7919) % 101) / 101.0 - 0.5
        j2 = ((i * 104729) % 97) / 97.0 - 0.5
        xs.append([2 * math.cos(a) + 2 * spread * j1, 2 * math.sin(a) + 2 * spread * j2])
        ys.append(c)
    return xs, ys


def flat(a):
    """Nested lists or arrays as one flat list of floats."""
    if np is not None and isinstance(a, np.ndarray):
        return [float(v) for v in a.reshape(-1)]
    out = []
    for v in a:
        out.extend(flat(v) if isinstance(v, (list, tuple)) else [float(v)])
    return out


def mlp(seed, inputs=2, outputs=4):
    return nnkit.Net((inputs,), [nnkit.Dense(10), nnkit.Tanh(), nnkit.Dense(outputs)],
                     seed=seed)


def trained(seed, ds):
    net = mlp(seed)
    net.fit(ds, epochs=2, batch_size=16, lr=0.2, seed=seed)
    return net


class EnsembleTest(unittest.TestCase):
    def setUp(self):
        self.x, self.y = blobs()
        self.ds = nnkit.Dataset(self.x, self.y, num_classes=4)

    def test_an_ensemble_of_one_net_is_the_net(self):
        net = trained(1, self.ds)
        ens = nnkit.Ensemble([net])
        self.assertEqual(len(ens), 1)
        self.assertEqual(repr(ens), "Ensemble(1 net, mean)")
        self.assertEqual(ens.kind, "mean")
        self.assertEqual(flat(ens.predict_proba(self.x)), flat(net.predict_proba(self.x)))
        self.assertEqual(flat(ens.predict(self.x)), flat(net.predict(self.x)))
        (l1, a1), (l2, a2) = net.evaluate(self.ds), ens.evaluate(self.ds)
        self.assertEqual(a1, a2)
        self.assertAlmostEqual(l1, l2, places=5)

    def test_weights_give_the_weighted_mean(self):
        nets = [trained(s, self.ds) for s in (2, 3, 4)]
        probs = [flat(n.predict_proba(self.x)) for n in nets]
        for w in ([1, 1, 1], [1, 2, 5]):
            ens = nnkit.Ensemble(nets, weights=w)
            self.assertEqual(ens.weights, [float(v) for v in w])
            got = flat(ens.predict_proba(self.x))
            for i, g in enumerate(got):
                want = sum(wk * p[i] for wk, p in zip(w, probs)) / sum(w)
                self.assertAlmostEqual(g, want, places=6)
        vote = nnkit.Ensemble(nets, kind="vote")
        self.assertEqual(vote.kind, "vote")
        self.assertEqual(len(flat(vote.predict(self.x))), len(self.x))

    def test_mismatched_nets_are_refused_with_a_sentence(self):
        ens = nnkit.Ensemble([mlp(1)])
        with self.assertRaises(nnkit.ShapeError) as cm:
            ens.add(mlp(2, inputs=3))
        self.assertIn("input shape 3 differs from member 0's 2", str(cm.exception))
        with self.assertRaises(nnkit.ShapeError) as cm:
            nnkit.Ensemble([mlp(1), mlp(2, outputs=5)])
        self.assertIn("5 outputs, member 0 has 4", str(cm.exception))
        with self.assertRaises(nnkit.InvalidArgument):
            ens.add(mlp(3), weight=0)
        self.assertEqual(len(ens), 1)

    def test_save_and_load(self):
        ens = nnkit.Ensemble([trained(5, self.ds), trained(6, self.ds)], weights=[1, 3],
                             kind="vote")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ens.safetensors")
            ens.save(path)
            back = nnkit.Ensemble.load(path)
            self.assertEqual(back.kind, "vote")
            self.assertEqual(back.weights, [1.0, 3.0])
            self.assertEqual(flat(back.predict_proba(self.x)), flat(ens.predict_proba(self.x)))
            with self.assertRaises(nnkit.FormatError) as cm:
                nnkit.Net.load(path)
            self.assertIn("nnkit_ensemble_load", str(cm.exception))

    def test_fit_keeps_snapshots_and_the_average(self):
        net = mlp(7)
        opt = nnkit.Optimizer("sgd", lr=0.1)
        opt.set_schedule(nnkit.Schedule("cosine_restarts", t_0=10, per_batch=1))
        net.fit(self.ds, epochs=3, batch_size=16, optimizer=opt, snapshots=2,
                ema_decay=0.9)  # 30 steps: cycles end at 10, 20, 30
        self.assertEqual(len(net.snapshot_ensemble), 2)
        last = net.snapshot_ensemble.predict_proba(self.x)
        self.assertEqual(len(flat(last)), 4 * len(self.x))
        self.assertIsInstance(net.averaged, nnkit.Net)
        self.assertNotEqual(flat(net.averaged.predict_proba(self.x)),
                            flat(net.predict_proba(self.x)))
        # Through a Trainer: the same calls, and their errors.
        with nnkit.Trainer(mlp(8), nnkit.Optimizer("sgd"), epochs=1) as tr:
            tr.fit(self.ds)
            self.assertEqual(tr.num_snapshots, 0)
            with self.assertRaises(nnkit.StateError) as cm:
                tr.averaged()
            self.assertIn("NNKIT_TRAIN_EMA_DECAY", str(cm.exception))
            with self.assertRaises(nnkit.StateError):
                tr.snapshot_ensemble(1)

    def test_ohem_with_k_the_batch_size_is_plain_training(self):
        def run(**kw):
            net = mlp(9)
            net.fit(self.ds, epochs=2, batch_size=16, lr=0.1, seed=3, **kw)
            return flat(net.predict_proba(self.x))
        plain = run()
        self.assertEqual(run(ohem_k=16), plain)
        self.assertNotEqual(run(ohem_k=4), plain)


class MiningTest(unittest.TestCase):
    def test_per_sample_losses_average_to_the_loss(self):
        x, y = blobs(100)
        net = trained(11, nnkit.Dataset(x, y, num_classes=4))
        losses = net.per_sample_loss(x, y)
        self.assertEqual(len(losses), 100)
        if np is not None:
            self.assertEqual(losses.dtype, np.float64)
        loss, _ = net.evaluate(nnkit.Dataset(x, y, num_classes=4))
        self.assertAlmostEqual(sum(flat(losses)) / 100, loss, places=9)

    def test_uncertainty_matches_its_formulas(self):
        p = [[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]]
        got = {k: flat(nnkit.mining.uncertainty_of_probs(p, k))
               for k in ("max_prob", "margin", "entropy")}
        self.assertAlmostEqual(got["max_prob"][0], 0.3, places=6)
        self.assertAlmostEqual(got["margin"][0], 0.5, places=6)
        h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
        self.assertAlmostEqual(got["entropy"][0], h, places=6)
        self.assertEqual([got[k][1] for k in got], [0.0, 0.0, 0.0])
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.mining.uncertainty_of_probs(p, "confidence")
        x, y = blobs(60)
        net = trained(12, nnkit.Dataset(x, y, num_classes=4))
        for kind in ("max_prob", "margin", "entropy"):
            a = flat(nnkit.mining.uncertainty(net, x, kind=kind))
            b = flat(nnkit.mining.uncertainty_of_probs(net.predict_proba(x), kind))
            self.assertEqual(a, b)
        ens = nnkit.Ensemble([net])
        self.assertEqual(flat(nnkit.mining.uncertainty(ens, x, kind="entropy")),
                         flat(nnkit.mining.uncertainty(net, x, kind="entropy")))

    def test_top_k_and_hardest(self):
        scores = [0.5, 2.0, 2.0, -1.0, 0.7]
        self.assertEqual(list(nnkit.mining.top_k(scores, 3)), [1, 2, 4])
        x, y = blobs(5)
        ds = nnkit.Dataset(x, y, num_classes=4)
        hard = nnkit.mining.hardest(ds, scores, 2)
        self.assertEqual(len(hard), 2)
        self.assertEqual(flat(hard.labels), [float(y[1]), float(y[2])])
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.mining.top_k(scores, 6)


ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DIGITS = os.path.join(ROOT, "data", "digits")
C_HARD_MINING = os.environ.get("NNKIT_EXAMPLE_HARD_MINING", "")


@unittest.skipUnless(np is not None, "the twin run reads the pool through NumPy")
@unittest.skipUnless(os.path.exists(os.path.join(DIGITS, "train-images-idx3-ubyte.gz")),
                     "data/digits is missing (scripts/fetch_digits.py makes it)")
@unittest.skipUnless(os.path.isfile(C_HARD_MINING),
                     "the C hard_mining example is not built")
class HardMiningTwinTest(unittest.TestCase):
    def test_python_hard_mining_prints_the_c_example_figures(self):
        import subprocess
        common = ["--data", DIGITS, "--quick", "--threads", "1"]
        c = subprocess.run([C_HARD_MINING] + common, capture_output=True, text=True)
        self.assertEqual(c.returncode, 0, c.stderr)
        py = subprocess.run([sys.executable, os.path.join(ROOT, "bindings", "python",
                                                          "examples", "hard_mining.py")]
                            + common, capture_output=True, text=True)
        self.assertEqual(py.returncode, 0, py.stderr)
        tail = [l for l in c.stdout.splitlines() if l.startswith(("test accuracy:",
                                                                 "random test accuracy:"))]
        self.assertEqual(len(tail), 2, c.stdout)
        for line in tail:
            self.assertIn(line, py.stdout)


if __name__ == "__main__":
    unittest.main()
