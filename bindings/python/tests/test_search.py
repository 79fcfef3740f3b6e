"""nnkit.search: Python objectives on 1 and 2 workers, results as dicts,
failures, median stopping, keys and their bounds, resume, the plot, and the
Python twin of examples/hparam_search.c."""
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import nnkit  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DIGITS = os.path.join(ROOT, "data", "digits")
C_HPARAM = os.environ.get("NNKIT_EXAMPLE_HPARAM_SEARCH", "")


def peak(p):
    a, b = math.log10(p["lr"]) + 3, math.log10(p["reg"]) + 2
    return math.exp(-0.5 * (a * a + 0.25 * b * b))


SPACE = {"lr": nnkit.log_uniform(1e-6, 1e-2), "reg": nnkit.log_uniform(1e-5, 10)}


def blobs(n, seed):
    """Four Gaussian blobs in 2-D, labels 0..3 (pure Python)."""
    import random
    rnd = random.Random(seed)
    xs, ys = [], []
    for i in range(n):
        c = i % 4
        a = c * math.pi / 2
        xs.append([2 * math.cos(a) + rnd.gauss(0, 0.7), 2 * math.sin(a) + rnd.gauss(0, 0.7)])
        ys.append(c)
    return nnkit.Dataset(xs, ys, num_classes=4)


class SearchTest(unittest.TestCase):
    def test_python_objective_on_two_workers_gives_the_one_worker_table(self):
        threads = set()

        def objective(params, trial):
            threads.add(threading.get_ident())
            time.sleep(0.002)  # lets the other worker take trials too
            for e in range(trial.epochs):
                if trial.report(e, peak(params) * (1 - 0.5 / (e + 1))):
                    break
            return peak(params)

        one = nnkit.search(SPACE, objective, strategy="coarse_fine", workers=1, seed=4,
                           prune=1)
        seen_one = set(threads)
        two = nnkit.search(SPACE, objective, strategy="coarse_fine", workers=2, seed=4,
                           prune=1)
        self.assertEqual(len(one), 40)
        strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
        self.assertEqual(repr(strip(one)), repr(strip(two)))  # NaN-safe comparison
        self.assertGreater(len(threads - seen_one), 0)  # worker threads called Python
        self.assertEqual(one.best["trial"], two.best["trial"])
        self.assertGreaterEqual(one.best["phase"], 1)
        self.assertEqual(one.columns[:6], ["trial", "phase", "config", "epochs", "status",
                                           "score"])
        self.assertIn("pruned", {r["status"] for r in one})
        self.assertIn("lr\treg", one.table().splitlines()[0])

    def test_failures_are_recorded_with_their_reason(self):
        def objective(params):
            if params["lr"] > 1e-3:
                raise RuntimeError("too fast")
            return float("nan") if params["lr"] < 1e-5 else peak(params)

        r = nnkit.search(SPACE, objective, trials=30, seed=1, workers=2)
        self.assertEqual(len(r), 30)
        fast = [x for x in r if x["lr"] > 1e-3]
        slow = [x for x in r if x["lr"] < 1e-5]
        self.assertTrue(fast and slow)
        for x in fast:
            self.assertEqual(x["status"], "failed")
            self.assertEqual(x["reason"], "RuntimeError: too fast")
            self.assertTrue(math.isnan(x["score"]))
        for x in slow:
            self.assertEqual(x["status"], "failed")
            self.assertIn("diverged", x["reason"])
        self.assertEqual(r.best["status"], "ok")

    def test_grid_and_halving_counts(self):
        grid = nnkit.search({"a": nnkit.uniform(0, 1), "b": nnkit.choice([1, 2, 3]),
                             "c": nnkit.integer(1, 64, log=True)},
                            lambda p: p["a"] * p["b"], strategy="grid", grid_points=2)
        self.assertEqual(len(grid), 2 * 3 * 2)
        self.assertEqual(sorted({r["c"] for r in grid}), [1.0, 64.0])
        sh = nnkit.search({"a": nnkit.uniform(0, 1)}, lambda p, t: p["a"] + t.epochs,
                          strategy="halving", trials=9, epochs=1, max_epochs=9, eta=3)
        self.assertEqual([r["epochs"] for r in sh], [1] * 9 + [3] * 3 + [9])
        self.assertEqual(sh.best["trial"], 12)

    def test_keys_are_checked_and_applied(self):
        with self.assertRaises(nnkit.InvalidArgument) as cm:
            nnkit.search({"m": nnkit.uniform(0.5, 1.5, key=("optimizer", "sgd", "momentum"))},
                         lambda p: 0)
        self.assertIn("outside its range", str(cm.exception))
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.search({"m": nnkit.uniform(1, 0)}, lambda p: 0)
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.search(SPACE, lambda p: 0, strategy="bayes")
        with self.assertRaises(nnkit.InvalidArgument):
            nnkit.search(SPACE, lambda p: 0, trails=3)
        got = []

        def objective(params, trial):
            opt = nnkit.Optimizer("sgd")
            trial.apply(optimizer=opt)
            got.append((opt["lr"], params["lr"], opt["momentum"], params["m"]))
            return 0.0

        space = {"lr": nnkit.log_uniform(1e-3, 1e-1, key=("optimizer", "sgd", "lr")),
                 "m": nnkit.choice([0.5, 0.9], key=("optimizer", "sgd", "momentum"))}
        nnkit.search(space, objective, trials=4, workers=2)
        self.assertEqual(len(got), 4)
        for a, b, c, d in got:
            self.assertEqual(a, b)
            self.assertEqual(c, d)

    def test_training_objective_from_python_on_two_workers(self):
        train, val = blobs(200, 1), blobs(100, 2)

        def objective(params, trial):
            net = nnkit.Net((2,), [nnkit.Dense(16), nnkit.ReLU(), nnkit.Dense(4)],
                            seed=trial.seed)
            opt = nnkit.Optimizer("sgd", momentum=0.9)
            with nnkit.Trainer(net, opt, epochs=trial.epochs, seed=trial.seed) as tr:
                trial.apply(optimizer=opt, trainer=tr)
                tr.fit(train, val)
                return tr.metric(tr.epochs_done - 1, "val_acc")

        space = {"lr": nnkit.log_uniform(1e-3, 0.3, key=("optimizer", "sgd", "lr")),
                 "batch": nnkit.integer(8, 64, key=("trainer", "batch_size"))}
        a = nnkit.search(space, objective, trials=6, epochs=2, workers=1, seed=9)
        b = nnkit.search(space, objective, trials=6, epochs=2, workers=2, seed=9)
        self.assertEqual([r["score"] for r in a], [r["score"] for r in b])
        self.assertGreater(a.best["score"], 0.5)

    def test_resume_runs_nothing_twice_and_lines_are_logged(self):
        calls, lines = [], []
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "r.jsonl")

            def objective(params):
                calls.append(params["lr"])
                return peak(params)

            first = nnkit.search(SPACE, objective, trials=5, results_file=path,
                                 log=lines.append, score_name="val_acc")
            self.assertEqual(len(calls), 5)
            self.assertTrue(any(l.startswith("val_acc: ") and l.endswith("(1 / 5)")
                                for l in lines), lines)
            with open(path, "a") as f:
                f.write('{"trial": 5, "pha')  # a torn line
            again = nnkit.search(SPACE, objective, trials=5, results_file=path,
                                 score_name="val_acc")
            self.assertEqual(len(calls), 5)
            self.assertEqual([r["val_acc"] for r in first], [r["val_acc"] for r in again])
            with open(path) as f:
                self.assertEqual(len(f.read().splitlines()), 5)

    def test_plot_has_a_log_axis_for_log_dimensions(self):
        r = nnkit.search(SPACE, peak, trials=12)
        with tempfile.TemporaryDirectory() as tmp:
            out = r.plot(os.path.join(tmp, "s.png"))
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                self.assertIsNone(out)
                return
            self.assertTrue(os.path.getsize(out) > 1000)
            with open(out, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


@unittest.skipUnless(os.path.exists(os.path.join(DIGITS, "train-images-idx3-ubyte.gz")),
                     "data/digits is missing (scripts/fetch_digits.py makes it)")
@unittest.skipUnless(os.path.isfile(C_HPARAM),
                     "the C hparam_search example is not built")
class HparamTwinTest(unittest.TestCase):
    def test_python_twin_scores_what_the_c_example_scores(self):
        with tempfile.TemporaryDirectory() as tmp:
            common = ["--data", DIGITS, "--quick", "--seed", "1"]
            c = subprocess.run([C_HPARAM] + common, cwd=tmp, capture_output=True, text=True)
            self.assertEqual(c.returncode, 0, c.stderr)
            flags = ["-S"] if sys.flags.no_site else []
            py = subprocess.run([sys.executable] + flags +
                                [os.path.join(ROOT, "bindings", "python", "examples",
                                              "hparam_search.py")] + common + ["--out", tmp],
                                cwd=tmp, capture_output=True, text=True)
            self.assertEqual(py.returncode, 0, py.stderr)

            def trials(out):
                return sorted(l for l in out.splitlines() if l.startswith("val_acc: "))

            self.assertEqual(len(trials(c.stdout)), len(trials(py.stdout)))
            self.assertGreater(len(trials(c.stdout)), 6)
            self.assertEqual(trials(c.stdout), trials(py.stdout))
            acc = [l for l in py.stdout.splitlines() if l.startswith("test accuracy:")]
            self.assertEqual(len(acc), 1)
            self.assertIn(acc[0], c.stdout)


if __name__ == "__main__":
    unittest.main()
