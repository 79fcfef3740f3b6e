"""Issue 20: the package installs and imports with no variables set, after
`meson install` (the library's place recorded in the package) and after
`pip install --no-build-isolation` offline."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, PKG)
BUILD = os.environ.get("NNKIT_BUILD_DIR", "")
CLEAN_ENV = {"PATH": "/usr/bin:/bin"}  # no NNKIT_LIBRARY, PYTHONPATH, LD_LIBRARY_PATH, ...
IMPORT = ("import sys; sys.path.insert(0, %r); import nnkit; "
          "print(nnkit.__file__); print(nnkit.__library__); print(nnkit.__version__); "
          "net = nnkit.Net(2, [nnkit.Dense(3)]); print(repr(net))")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@unittest.skipIf(sys.flags.no_site, "run once, by the test with site packages")
class InstallTest(unittest.TestCase):
    @unittest.skipUnless(os.path.isfile(os.path.join(BUILD, "build.ninja")),
                         "NNKIT_BUILD_DIR is not a meson build (meson test sets it)")
    @unittest.skipUnless(shutil.which("meson"), "meson is not on PATH")
    def test_meson_install_then_import_in_a_clean_environment(self):
        with tempfile.TemporaryDirectory() as dest:
            r = run(["meson", "install", "-C", BUILD, "--destdir", dest, "--no-rebuild",
                     "--quiet"])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            found = [root for root, _, files in os.walk(dest)
                     if "_install.py" in files and root.endswith(os.sep + "nnkit")]
            self.assertEqual(len(found), 1, "the installed package is missing")
            site = os.path.dirname(found[0])
            r = run([sys.executable, "-c", IMPORT % site], env=CLEAN_ENV, cwd=dest)
            self.assertEqual(r.returncode, 0, r.stderr)
            pkg_file, library, version, net = r.stdout.split("\n")[:4]
            self.assertTrue(pkg_file.startswith(dest), pkg_file)
            self.assertTrue(library.startswith(dest), library)  # the installed library
            self.assertIn("libnnkit.so", library)
            self.assertEqual(net, "Net(2 -> 3, 9 params)")

    def test_pip_install_offline(self):
        if run([sys.executable, "-m", "pip", "--version"]).returncode != 0:
            self.skipTest("pip is not installed (Debian: python3-pip)")
        if run([sys.executable, "-c", "import setuptools"]).returncode != 0:
            self.skipTest("setuptools is not installed (Debian: python3-setuptools)")
        from nnkit import __library__
        with tempfile.TemporaryDirectory() as tmp:
            src, target = os.path.join(tmp, "src"), os.path.join(tmp, "site")
            shutil.copytree(PKG, src, ignore=shutil.ignore_patterns(
                "__pycache__", "build", "*.egg-info", "_install.py"))
            env = dict(CLEAN_ENV, HOME=tmp, PIP_NO_INDEX="1",
                       PIP_DISABLE_PIP_VERSION_CHECK="1")
            r = run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                     "--no-deps", "--target", target, src], env=env, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = run([sys.executable, "-c", IMPORT % target],
                    env=dict(CLEAN_ENV, NNKIT_LIBRARY=__library__), cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith(os.path.join(target, "nnkit")), r.stdout)


if __name__ == "__main__":
    unittest.main()
