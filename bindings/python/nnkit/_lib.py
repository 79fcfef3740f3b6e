"""Finding, loading and declaring libnnkit.

PROTOTYPES (generated into _prototypes.py from the headers) is the one table
of argtypes/restype; every function returning nnkit_status gets an errcheck
that raises the matching nnkit.Error subclass with nnkit_last_error()'s
sentence, so no call site checks a status by hand.

The library is looked for, in order: NNKIT_LIBRARY (a path); the library a
``meson install`` recorded in _install.py (relative to where the package
was installed, then the absolute path); the build tree this package sits in;
the dynamic loader's ``libnnkit.so.<soname major>``; pkg-config's libdir.
Any library with the same soname major, the package's major version and at
least its minor version is accepted (a newer patch or minor release keeps
every function the package declares).
"""
from __future__ import annotations

import ctypes
import os
import subprocess
from typing import Iterator, List, Tuple

from ._prototypes import (PROTOTYPES, STATUS_FUNCTIONS, VERSION, SOVERSION,
                          NNKIT_LOG_FN, NNKIT_EPOCH_FN, NNKIT_BATCH_FN)

__all__ = ["lib", "PROTOTYPES", "PACKAGE_VERSION", "load_library", "library_path"]

PACKAGE_VERSION = VERSION
SONAME = "libnnkit.so.%d" % SOVERSION

LOG_FN = NNKIT_LOG_FN
EPOCH_FN = NNKIT_EPOCH_FN
BATCH_FN = NNKIT_BATCH_FN


def _installed() -> Iterator[str]:
    """The library recorded by meson install (see _install.py.in)."""
    try:
        from . import _install
    except ImportError:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    pkgdir = _install.PACKAGE_DIR.strip("/")
    if pkgdir and here.endswith(os.sep + pkgdir):
        root = here[:-len(pkgdir)]  # the prefix (inside a DESTDIR too)
        yield os.path.join(root, _install.LIBDIR.strip("/"), SONAME)
    yield os.path.join(_install.PREFIX, _install.LIBDIR, SONAME)


def _candidates() -> Iterator[str]:
    env = os.environ.get("NNKIT_LIBRARY")
    if env:
        yield env
        return
    yield from _installed()
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", "..", ".."))
    for build in ("build", "builddir"):
        path = os.path.join(root, build, "lib", "libnnkit.so")
        if os.path.exists(path):
            yield path
    yield SONAME  # the dynamic loader's search (ld.so.cache, LD_LIBRARY_PATH)
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "nnkit"],
                                capture_output=True, text=True, check=True).stdout.strip()
        if libdir:
            yield os.path.join(libdir, SONAME)
    except (OSError, subprocess.CalledProcessError):
        pass


def _compatible(number: int) -> bool:
    """A library version (MAJOR*10000 + MINOR*100 + PATCH) this package can use."""
    major, minor = (int(v) for v in PACKAGE_VERSION.split(".")[:2])
    return number // 10000 == major and (number // 100) % 100 >= minor


def _errcheck(result: int, func, args) -> int:
    if result != 0:
        from .errors import raise_status
        raise_status(result)
    return result


def _path_of(handle: ctypes.CDLL, fallback: str) -> str:
    """The file the loader actually mapped (dladdr of a symbol)."""
    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]
    try:
        libc = ctypes.CDLL(None)
        info = DlInfo()
        addr = ctypes.cast(handle.nnkit_version, ctypes.c_void_p)
        if libc.dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError):
        pass
    return fallback


def load_library() -> ctypes.CDLL:
    """Finds, loads and declares libnnkit; raises ImportError with the reason."""
    tried: List[Tuple[str, str]] = []
    for path in _candidates():
        try:
            handle = ctypes.CDLL(path)
        except OSError as e:
            tried.append((path, str(e)))
            continue
        handle.nnkit_version_number.restype = ctypes.c_uint32
        handle.nnkit_version.restype = ctypes.c_char_p
        number = handle.nnkit_version_number()
        if not _compatible(number):
            tried.append((path, "version %s; this package needs %s.x with x >= %s"
                          % (handle.nnkit_version().decode(),
                             PACKAGE_VERSION.split(".")[0], PACKAGE_VERSION.split(".")[1])))
            if os.environ.get("NNKIT_LIBRARY"):
                break
            continue
        missing = []
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(handle, name, None)
            if fn is None:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            if name in STATUS_FUNCTIONS:
                fn.errcheck = _errcheck
        if missing:
            raise ImportError("nnkit: %s lacks %s; it is not a matching build" %
                              (path, ", ".join(missing)))
        handle._nnkit_path = _path_of(handle, path)
        return handle
    raise ImportError(
        "nnkit: cannot find a usable %s (version %s.x, x >= %s); build it (meson setup "
        "build && meson compile -C build), install it (meson install), or set "
        "NNKIT_LIBRARY to its path. Tried: %s" %
        (SONAME, PACKAGE_VERSION.split(".")[0], PACKAGE_VERSION.split(".")[1],
         "; ".join("%s (%s)" % t for t in tried) if tried else "nothing found"))


lib = load_library()


def library_path() -> str:
    """The path of the libnnkit the package loaded."""
    return lib._nnkit_path
