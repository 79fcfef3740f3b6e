"""The Python examples against their C twins: same seed, same results."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DIGITS = os.path.join(ROOT, "data", "digits")
C_DIGITS = os.environ.get("NNKIT_EXAMPLE_DIGITS", "")
C_OPTIMIZERS = os.environ.get("NNKIT_EXAMPLE_OPTIMIZERS", "")
C_INIT_STUDY = os.environ.get("NNKIT_EXAMPLE_INIT_STUDY", "")
C_LR_FINDER = os.environ.get("NNKIT_EXAMPLE_LR_FINDER", "")
C_QUICKSTART = os.environ.get("NNKIT_EXAMPLE_QUICKSTART", "")
C_AUGMENTATION = os.environ.get("NNKIT_EXAMPLE_AUGMENTATION", "")


@unittest.skipUnless(os.path.exists(os.path.join(DIGITS, "train-images-idx3-ubyte.gz")),
                     "data/digits is missing (scripts/fetch_digits.py makes it)")
@unittest.skipUnless(os.path.isfile(C_DIGITS),
                     "the C digits example is not built (meson -Dexamples=true sets "
                     "NNKIT_EXAMPLE_DIGITS for this test)")
class DigitsTwinTest(unittest.TestCase):
    def test_python_digits_predicts_like_the_c_example_bit_for_bit(self):
        """examples/digits.c and bindings/python/examples/digits.py, same
        seed, epochs and threads: identical test-set predictions; both
        save their model with --save and reload it unchanged."""
        with tempfile.TemporaryDirectory() as tmp:
            c_pred, py_pred = os.path.join(tmp, "c.txt"), os.path.join(tmp, "py.txt")
            common = ["--data", DIGITS, "--epochs", "3", "--seed", "2", "--threads", "1"]
            c_model, py_model = os.path.join(tmp, "c.safetensors"), os.path.join(tmp, "py.safetensors")
            c = subprocess.run([C_DIGITS] + common + ["--predictions", c_pred, "--save", c_model],
                               cwd=tmp,
                               capture_output=True, text=True)
            self.assertEqual(c.returncode, 0, c.stderr)
            flags = ["-S"] if sys.flags.no_site else []  # with or without NumPy
            py = subprocess.run([sys.executable] + flags + [os.path.join(ROOT, "bindings", "python", "examples",
                                                "digits.py")]
                                + common + ["--out", tmp, "--predictions", py_pred,
                                            "--save", py_model],
                                cwd=tmp, capture_output=True, text=True)
            self.assertEqual(py.returncode, 0, py.stderr)
            with open(c_pred) as f:
                c_lines = f.read().split()
            with open(py_pred) as f:
                py_lines = f.read().split()
            self.assertEqual(len(c_lines), 2000)
            self.assertEqual(c_lines, py_lines)
            acc = [l for l in py.stdout.splitlines() if l.startswith("test accuracy:")]
            self.assertEqual(len(acc), 1, py.stdout)
            self.assertGreater(float(acc[0].split()[-1]), 0.9)
            self.assertIn(acc[0], c.stdout)
            for out in (c.stdout, py.stdout):
                self.assertRegex(out, r"reloaded model: test accuracy [0-9.]+ \(identical\)")
            # Same net, same normalizer, same seed: the same file, byte for byte.
            with open(c_model, "rb") as f, open(py_model, "rb") as g:
                self.assertEqual(f.read(), g.read())


@unittest.skipUnless(os.path.isfile(C_OPTIMIZERS),
                     "the C optimizers example is not built (meson -Dexamples=true sets "
                     "NNKIT_EXAMPLE_OPTIMIZERS for this test)")
class OptimizersTwinTest(unittest.TestCase):
    def test_python_optimizers_prints_the_c_table_and_trajectories(self):
        """examples/optimizers.c and bindings/python/examples/optimizers.py
        on a short run: the same table (steps to loss < 1e-3, final loss
        and point of every optimizer on both landscapes) and the same
        trajectory CSV files, byte for byte."""
        with tempfile.TemporaryDirectory() as tmp:
            c_dir, py_dir = os.path.join(tmp, "c"), os.path.join(tmp, "py")
            os.makedirs(c_dir)
            c = subprocess.run([C_OPTIMIZERS, "--out", c_dir, "--epochs", "60"],
                               capture_output=True, text=True)
            self.assertEqual(c.returncode, 0, c.stderr)
            flags = ["-S"] if sys.flags.no_site else []
            py = subprocess.run([sys.executable] + flags +
                                [os.path.join(ROOT, "bindings", "python", "examples",
                                              "optimizers.py"),
                                 "--out", py_dir, "--epochs", "60", "--threads", "1"],
                                capture_output=True, text=True)
            self.assertEqual(py.returncode, 0, py.stderr)
            c_lines = c.stdout.replace(c_dir, "DIR").splitlines()
            py_lines = [l for l in py.stdout.replace(py_dir, "DIR").splitlines()
                        if not l.startswith(("wrote ", "(matplotlib"))]
            self.assertEqual(c_lines, py_lines)
            self.assertEqual(len(c_lines), 16)
            names = sorted(f for f in os.listdir(c_dir) if f.endswith(".csv"))
            self.assertEqual(len(names), 10)
            for name in names:
                with open(os.path.join(c_dir, name), "rb") as f, \
                        open(os.path.join(py_dir, name), "rb") as g:
                    self.assertEqual(f.read(), g.read(), name)


@unittest.skipUnless(os.path.isfile(C_INIT_STUDY),
                     "the C init_study example is not built (meson -Dexamples=true sets "
                     "NNKIT_EXAMPLE_INIT_STUDY for this test)")
class InitStudyTwinTest(unittest.TestCase):
    def test_python_init_study_prints_the_c_statistics_and_conclusions(self):
        """examples/init_study.c and bindings/python/examples/init_study.py:
        the same per-layer statistics, the same three conclusions and the
        same histogram files, byte for byte (the twin runs without site
        packages: its pictures are not what is compared, and they are slow)."""
        with tempfile.TemporaryDirectory() as tmp:
            c_dir, py_dir = os.path.join(tmp, "c"), os.path.join(tmp, "py")
            os.makedirs(c_dir)
            os.makedirs(py_dir)
            c = subprocess.run([C_INIT_STUDY, "--threads", "1"], cwd=c_dir,
                               capture_output=True, text=True)
            self.assertEqual(c.returncode, 0, c.stderr)
            py = subprocess.run([sys.executable, "-S",
                                 os.path.join(ROOT, "bindings", "python", "examples",
                                              "init_study.py"), "--threads", "1"],
                                cwd=py_dir, capture_output=True, text=True)
            self.assertEqual(py.returncode, 0, py.stderr)
            py_lines = [l for l in py.stdout.splitlines()
                        if not l.startswith(("wrote ", "(matplotlib"))]
            self.assertEqual(c.stdout.splitlines(), py_lines)
            self.assertIn("(shown)", py.stdout)
            for name in sorted(os.listdir(c_dir)):
                with open(os.path.join(c_dir, name), "rb") as f, \
                        open(os.path.join(py_dir, name), "rb") as g:
                    self.assertEqual(f.read(), g.read(), name)


@unittest.skipUnless(os.path.exists(os.path.join(DIGITS, "train-images-idx3-ubyte.gz")),
                     "data/digits is missing (scripts/fetch_digits.py makes it)")
@unittest.skipUnless(os.path.isfile(C_LR_FINDER),
                     "the C lr_finder example is not built (meson -Dexamples=true sets "
                     "NNKIT_EXAMPLE_LR_FINDER for this test)")
class LrFinderTwinTest(unittest.TestCase):
    def test_python_lr_finder_prints_what_the_c_example_prints(self):
        """examples/lr_finder.c and bindings/python/examples/lr_finder.py,
        same seed, two epochs, one thread: the same curve, suggestion,
        epoch lines (logged through Python) and test accuracy."""
        common = ["--data", DIGITS, "--epochs", "2", "--seed", "2", "--threads", "1"]
        with tempfile.TemporaryDirectory() as tmp:
            c = subprocess.run([C_LR_FINDER] + common, cwd=tmp, capture_output=True,
                               text=True)
            self.assertEqual(c.returncode, 0, c.stderr)
            flags = ["-S"] if sys.flags.no_site else []
            py = subprocess.run([sys.executable] + flags +
                                [os.path.join(ROOT, "bindings", "python", "examples",
                                              "lr_finder.py")] + common + ["--out", tmp],
                                cwd=tmp, capture_output=True, text=True)
            self.assertEqual(py.returncode, 0, py.stderr)
        py_lines = [l for l in py.stdout.splitlines()
                    if not l.startswith(("wrote ", "(matplotlib"))]
        self.assertEqual(c.stdout.splitlines(), py_lines)
        self.assertIn("suggested learning rate:", py.stdout)
        self.assertEqual(py.stdout.count("Finished epoch"), 2)


@unittest.skipUnless(os.path.isfile(C_QUICKSTART),
                     "the C quickstart example is not built (meson -Dexamples=true sets "
                     "NNKIT_EXAMPLE_QUICKSTART for this test)")
class QuickstartTwinTest(unittest.TestCase):
    def test_python_quickstart_prints_what_the_c_example_prints(self):
        """examples/quickstart.c and bindings/python/examples/quickstart.py:
        the same spiral, the same losses and accuracies (the Python one
        fits on plain lists)."""
        c = subprocess.run([C_QUICKSTART], capture_output=True, text=True)
        self.assertEqual(c.returncode, 0, c.stderr)
        flags = ["-S"] if sys.flags.no_site else []
        py = subprocess.run([sys.executable] + flags +
                            [os.path.join(ROOT, "bindings", "python", "examples",
                                          "quickstart.py")], capture_output=True, text=True)
        self.assertEqual(py.returncode, 0, py.stderr)
        self.assertEqual(c.stdout, py.stdout)


@unittest.skipUnless(os.path.exists(os.path.join(DIGITS, "train-images-idx3-ubyte.gz")),
                     "data/digits is missing (scripts/fetch_digits.py makes it)")
@unittest.skipUnless(os.path.isfile(C_AUGMENTATION),
                     "the C augmentation example is not built (meson -Dexamples=true sets "
                     "NNKIT_EXAMPLE_AUGMENTATION for this test)")
class AugmentationTwinTest(unittest.TestCase):
    def test_python_augmentation_prints_what_the_c_example_prints(self):
        """examples/augmentation.c and bindings/python/examples/augmentation.py,
        one epoch, one thread: the same losses and test accuracies (all but
        the timing line) and the same grid of augmented digits, byte for
        byte."""
        common = ["--data", DIGITS, "--epochs", "1", "--threads", "1"]
        with tempfile.TemporaryDirectory() as tmp:
            c_dir, py_dir = os.path.join(tmp, "c"), os.path.join(tmp, "py")
            os.makedirs(c_dir)
            c = subprocess.run([C_AUGMENTATION] + common, cwd=c_dir, capture_output=True,
                               text=True)
            self.assertEqual(c.returncode, 0, c.stderr)
            flags = ["-S"] if sys.flags.no_site else []
            py = subprocess.run([sys.executable] + flags +
                                [os.path.join(ROOT, "bindings", "python", "examples",
                                              "augmentation.py")] + common + ["--out", py_dir],
                                cwd=tmp, capture_output=True, text=True)
            self.assertEqual(py.returncode, 0, py.stderr)
            with open(os.path.join(c_dir, "augmentation_grid.pgm"), "rb") as f, \
                    open(os.path.join(py_dir, "augmentation_grid.pgm"), "rb") as g:
                self.assertEqual(f.read(), g.read())

        def lines(out):
            return [l for l in out.splitlines() if not l.startswith("training time:")]
        self.assertEqual(lines(c.stdout), lines(py.stdout))
        self.assertIn("test accuracy with augmentation:", py.stdout)


if __name__ == "__main__":
    unittest.main()
