"""Loading libnnkit and declaring every exported function.

PROTOTYPES (generated into _prototypes.py) is the one table of
argtypes/restype; tests/test_bindings.py checks that every function declared
in the C headers appears in it with the same signature.
"""
import ctypes
import ctypes.util
import os
import subprocess

__all__ = ["lib", "PROTOTYPES", "PACKAGE_VERSION", "load_library"]

PACKAGE_VERSION = "0.2.0"

# The table itself is generated from the headers by scripts/gen_prototypes.py.
from ._prototypes import PROTOTYPES, NNKIT_LOG_FN, NNKIT_EPOCH_FN, NNKIT_BATCH_FN  # noqa: E402

LOG_FN = NNKIT_LOG_FN
EPOCH_FN = NNKIT_EPOCH_FN
BATCH_FN = NNKIT_BATCH_FN


def _candidates():
    env = os.environ.get("NNKIT_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", "..", ".."))
    for build in ("build", "builddir", "build-asan"):
        path = os.path.join(root, build, "lib", "libnnkit.so")
        if os.path.exists(path):
            yield path
    found = ctypes.util.find_library("nnkit")
    if found:
        yield found
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "nnkit"],
                                capture_output=True, text=True, check=True).stdout.strip()
        if libdir:
            yield os.path.join(libdir, "libnnkit.so")
    except (OSError, subprocess.CalledProcessError):
        pass


def load_library():
    """Finds, loads and declares libnnkit; raises ImportError with the reason."""
    tried = []
    for path in _candidates():
        try:
            handle = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        handle.nnkit_version.restype = ctypes.c_char_p
        version = handle.nnkit_version().decode()
        if version != PACKAGE_VERSION:
            raise ImportError(
                "nnkit: %s is version %s but this package is %s; point NNKIT_LIBRARY "
                "at a matching libnnkit.so or reinstall the package" %
                (path, version, PACKAGE_VERSION))
        missing = []
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(handle, name, None)
            if fn is None:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
        if missing:
            raise ImportError("nnkit: %s lacks %s; it is not a matching build" %
                              (path, ", ".join(missing)))
        handle._nnkit_path = path
        return handle
    raise ImportError(
        "nnkit: cannot find libnnkit.so; build it (meson setup build && ninja -C build), "
        "install it, or set NNKIT_LIBRARY to its path. Tried: %s" %
        ("; ".join(tried) if tried else "nothing found"))


lib = load_library()
