#!/usr/bin/env python3
"""Writes bindings/python/nnkit/_prototypes.py from the public headers.

Every NNKIT_API function becomes one entry (name -> (restype, argtypes)) of
the ctypes table, every callback typedef a CFUNCTYPE, every enum a table
ENUMS[type] = {short name: value} (the member's name without the prefix its
members share, lower case: NNKIT_OPTIM_ADAM -> "adam"), every integer
#define a constant, and the functions returning nnkit_status the set
STATUS_FUNCTIONS (their errors are raised through ctypes' errcheck). The
package and soname versions come from meson.build, the one place they are
written. Run it after
changing a header; the Python tests fail when the table and the headers
disagree.   python3 scripts/gen_prototypes.py
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INC = os.path.join(ROOT, "include")
OUT = os.path.join(ROOT, "bindings", "python", "nnkit", "_prototypes.py")

SCALARS = {
    "void": "None", "nnkit_status": "st", "int": "cint", "unsigned": "ctypes.c_uint",
    "double": "dbl", "float": "flt", "size_t": "sz", "int32_t": "i32",
    "uint32_t": "u32", "uint64_t": "u64", "int64_t": "ctypes.c_int64",
    "uint8_t": "ctypes.c_uint8", "char": "ctypes.c_char",
}
POINTERS = {
    "float": "c_float_p", "double": "c_double_p", "int32_t": "c_int32_p",
    "size_t": "c_size_p", "int": "c_int_p", "uint64_t": "c_uint64_p",
    "uint32_t": "ctypes.POINTER(u32)", "uint8_t": "ctypes.POINTER(ctypes.c_uint8)",
    "void": "vp", "char": "cstr",
}


def read_headers(strip=True):
    text = ""
    for dirpath, _, files in sorted(os.walk(INC)):
        for f in sorted(files):
            if f.endswith(".h") or f.endswith(".h.in"):
                with open(os.path.join(dirpath, f)) as fh:
                    text += fh.read() + "\n"
    if not strip:
        return text
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def ctype(decl, handles, enums, callbacks):
    """Maps one C parameter/return declaration (name stripped) to ctypes."""
    d = re.sub(r"\bconst\b", "", decl).strip()
    d = re.sub(r"\s+", " ", d)
    stars = d.count("*")
    base = d.replace("*", "").strip()
    if base in callbacks and stars == 0:
        return callbacks[base]
    if base in enums:
        base = "int"
    if base in handles:
        return "vp" if stars == 1 else "c_void_pp"
    if stars == 0:
        return SCALARS[base]
    if stars == 1:
        return POINTERS[base]
    if stars == 2:
        if base == "char":
            return "ctypes.POINTER(cstr)"
        return "ctypes.POINTER(%s)" % POINTERS[base]
    raise ValueError("cannot map %r" % decl)


def split_params(params):
    params = params.strip()
    if params in ("", "void"):
        return []
    out = []
    for p in params.split(","):
        p = p.strip()
        m = re.match(r"(.*?)(\b[A-Za-z_][A-Za-z0-9_]*)\s*(\[[^\]]*\])?$", p)
        decl, arr = m.group(1), m.group(3)
        if arr:
            decl += "*"
        out.append(decl)
    return out


def enum_tables(text):
    """{enum type: {short name: value}} in declaration order."""
    tables = {}
    for body, name in re.findall(r"typedef\s+enum\s+\w+\s*\{(.*?)\}\s*(\w+)\s*;", text,
                                 flags=re.S):
        members = re.findall(r"(NNKIT_[A-Z0-9_]+)\s*=\s*(-?\d+)", body)
        names = [m[0] for m in members]
        prefix = os.path.commonprefix(names)
        prefix = prefix[:prefix.rfind("_") + 1]
        tables[name] = {n[len(prefix):].lower(): int(v) for n, v in members}
    return tables


def defines(text):
    """Integer #defines: {name: value} (size_t -1 as SIZE_MAX)."""
    out = {}
    for name, value in re.findall(r"#\s*define\s+(NNKIT_[A-Z0-9_]+)\s+(\S[^\n]*)", text):
        value = value.strip()
        m = re.fullmatch(r"(\d+)u?", value)
        if m:
            out[name] = m.group(1)
        elif value == "((size_t)-1)":
            out[name] = "ctypes.c_size_t(-1).value"
        elif value == "INT64_MIN":
            out[name] = "-2 ** 63"
    return out


def versions():
    """(project version, soname major) from meson.build."""
    with open(os.path.join(ROOT, "meson.build")) as f:
        text = f.read()
    version = re.search(r"version\s*:\s*'([0-9.]+)'", text).group(1)
    soversion = re.search(r"^soversion\s*=\s*'([0-9]+)'", text, flags=re.M).group(1)
    return version, soversion


def main():
    raw = read_headers(strip=False)
    text = read_headers()
    handles = set(re.findall(r"typedef\s+struct\s+(nnkit_[a-z0-9_]+)\s+\1\s*;", text))
    enums = set(re.findall(r"}\s*(nnkit_[a-z0-9_]+)\s*;", text))
    callbacks = {}
    cb_lines = []
    for ret, name, params in re.findall(
            r"typedef\s+([A-Za-z0-9_ \*]+?)\s*\(\s*\*\s*(nnkit_[a-z0-9_]+)\s*\)\s*\(([^)]*)\)\s*;",
            text):
        pyname = name.upper()
        callbacks[name] = pyname
        args = [ctype(p, handles, enums, {}) for p in split_params(params)]
        cb_lines.append("%s = ctypes.CFUNCTYPE(%s)" %
                        (pyname, ", ".join([ctype(ret, handles, enums, {})] + args)))
    protos = []
    status_fns = []
    for ret, name, params in re.findall(
            r"NNKIT_API\s+([A-Za-z0-9_ \*]+?)\s*\b(nnkit_[a-z0-9_]+)\s*\(([^)]*)\)\s*;", text,
            flags=re.S):
        args = [ctype(p, handles, enums, callbacks) for p in split_params(params)]
        if ret.strip() == "nnkit_status":
            status_fns.append(name)
        protos.append('    "%s": (%s, [%s]),' % (name, ctype(ret, handles, enums, callbacks),
                                                 ", ".join(args)))
    text_out = ('"""Generated by scripts/gen_prototypes.py from include/; do not edit.\n\n'
                'One entry per NNKIT_API function: name -> (restype, argtypes).\n"""\n'
                "import ctypes\n\n"
                "st = ctypes.c_int  # nnkit_status and every enum\ncint = ctypes.c_int\n"
                "vp = ctypes.c_void_p\nsz = ctypes.c_size_t\nu32 = ctypes.c_uint32\n"
                "u64 = ctypes.c_uint64\ni32 = ctypes.c_int32\ndbl = ctypes.c_double\n"
                "flt = ctypes.c_float\ncstr = ctypes.c_char_p\n"
                "c_float_p = ctypes.POINTER(ctypes.c_float)\n"
                "c_double_p = ctypes.POINTER(ctypes.c_double)\n"
                "c_int32_p = ctypes.POINTER(ctypes.c_int32)\n"
                "c_size_p = ctypes.POINTER(ctypes.c_size_t)\n"
                "c_int_p = ctypes.POINTER(ctypes.c_int)\n"
                "c_uint64_p = ctypes.POINTER(ctypes.c_uint64)\n"
                "c_void_pp = ctypes.POINTER(ctypes.c_void_p)\n\n"
                "# Callback types\n" + "\n".join(cb_lines) + "\n\n"
                "PROTOTYPES = {\n" + "\n".join(protos) + "\n}\n\n"
                "# The functions returning nnkit_status.\n"
                "STATUS_FUNCTIONS = frozenset([\n" +
                "\n".join('    "%s",' % n for n in status_fns) + "\n])\n\n"
                "# Every enum of the headers: {type: {short name: value}}.\n"
                "ENUMS = {\n" +
                "".join('    "%s": {\n%s    },\n' %
                        (t, "".join('        "%s": %d,\n' % kv for kv in m.items()))
                        for t, m in enum_tables(text).items()) + "}\n\n"
                "# Integer constants (#define) of the headers.\n" +
                "".join("%s = %s\n" % kv for kv in defines(raw).items()) + "\n"
                "# From meson.build: the package version and the soname major.\n"
                'VERSION = "%s"\nSOVERSION = %s\n' % versions())
    if "--check" in sys.argv:
        with open(OUT) as f:
            if f.read() != text_out:
                print("gen_prototypes: %s is out of date with include/; rerun "
                      "scripts/gen_prototypes.py" % os.path.relpath(OUT, ROOT))
                return 1
        print("gen_prototypes: up to date")
        return 0
    with open(OUT, "w") as f:
        f.write(text_out)
    print("gen_prototypes: %d functions, %d callback types -> %s" %
          (len(protos), len(cb_lines), os.path.relpath(OUT, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
