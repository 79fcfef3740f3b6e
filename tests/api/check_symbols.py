#!/usr/bin/env python3
"""Checks libnnkit's exported ABI against the public headers.

  check_symbols.py --lib build/lib/libnnkit.so --include include
                   [--static build/lib/libnnkit.a] [--soname libnnkit.so.0]

Fails (exit 1, saying why) unless
  * the functions declared with NNKIT_API in include/nnkit.h and
    include/nnkit/*.h equal the dynamic symbols the shared library defines
    (nm -D --defined-only, readelf --dyn-syms as a fallback);
  * every name starts with nnkit_ and none with nnkit__ (internal helpers);
  * every public header declares its functions with NNKIT_API, and nnkit.h
    includes every nnkit/*.h;
  * each export carries the version node of lib/nnkit.map (NNKIT_0);
  * the soname is libnnkit.so.0 (readelf -d, objdump -p as a fallback);
  * with --static: every global symbol the archive defines starts with
    nnkit_ (so static linking cannot collide with a user's names), and the
    archive defines every public function.
Python 3 standard library and binutils only.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

PREFIX = "nnkit_"
INTERNAL = "nnkit__"
# Symbols that compiler instrumentation (-fsanitize=..., coverage) adds to
# each object of a static archive; not names of ours.
TOOLCHAIN = ("__asan", "__odr_asan", "__ubsan", "__sanitizer", "__sancov",
             "__gcov", "__llvm", "__tsan", "__msan")


def run(argv):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
    except OSError as e:
        return None, str(e)
    if proc.returncode != 0:
        return None, proc.stderr.strip()
    return proc.stdout, ""


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def header_declarations(include_dir, problems):
    """Returns {name: header} of the functions declared with NNKIT_API."""
    top = os.path.join(include_dir, "nnkit.h")
    subs = sorted(glob.glob(os.path.join(include_dir, "nnkit", "*.h")))
    if not os.path.isfile(top):
        problems.append("no %s" % top)
        return {}
    with open(top, encoding="utf-8") as f:
        top_text = strip_comments(f.read())
    for path in subs:
        rel = "nnkit/" + os.path.basename(path)
        if not re.search(r'#\s*include\s*[<"]%s[>"]' % re.escape(rel), top_text):
            problems.append("nnkit.h does not include %s" % rel)

    found = {}
    for path in [top] + subs:
        rel = os.path.relpath(path, include_dir)
        with open(path, encoding="utf-8") as f:
            text = strip_comments(f.read())
        # Drop preprocessor lines (with continuations) and extern "C" braces.
        text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
        text = re.sub(r'extern\s+"C"\s*\{', " ", text)
        for stmt in text.split(";"):
            stmt = stmt.replace("}", " ").replace("{", " {").strip()
            if not stmt or re.match(r"typedef\b", stmt) or "{" in stmt:
                # typedefs (enums, structs, callback types) declare no symbol
                if "NNKIT_API" in stmt and not re.match(r"typedef\b", stmt):
                    problems.append("%s: NNKIT_API on a definition: %s" % (rel, " ".join(stmt.split())))
                continue
            exported = re.search(r"\bNNKIT_API\b", stmt) is not None
            m = re.match(r"(?:NNKIT_API\s+)?[^(]*?\b([A-Za-z_]\w*)\s*\(", stmt)
            if m and "(" in stmt:
                name = m.group(1)
            else:
                ids = re.findall(r"[A-Za-z_]\w*", stmt)
                name = ids[-1] if ids else None
                if not exported:
                    continue  # e.g. a stray token; not a declaration we check
                problems.append("%s: exported variable %s (export functions only)" % (rel, name))
            if not exported:
                problems.append("%s: %s is declared without NNKIT_API" % (rel, name))
                continue
            if name in found:
                problems.append("%s: %s is declared twice (also in %s)" % (rel, name, found[name]))
            found[name] = rel
    return found


def dynamic_symbols(lib, problems):
    """Returns ({name: (type, version)}, tool) of the defined dynamic symbols."""
    syms = {}
    out, err = (None, "nm not found")
    if shutil.which("nm"):
        out, err = run(["nm", "-D", "--defined-only", lib])
    if out is not None:
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            kind, full = parts[-2], parts[-1]
            name, _, version = full.partition("@")
            version = version.lstrip("@")
            if kind == "A":
                continue  # version node (NNKIT_0), not a symbol
            syms[name] = (kind, version)
        return syms, "nm -D"
    out, err2 = (None, "readelf not found")
    if shutil.which("readelf"):
        out, err2 = run(["readelf", "--dyn-syms", "-W", lib])
    if out is None:
        problems.append("cannot list the symbols of %s: %s; %s" % (lib, err, err2))
        return syms, "none"
    for line in out.splitlines():
        parts = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(parts) < 8 or not parts[0].endswith(":") or parts[6] in ("UND", "Ndx"):
            continue
        if parts[6] == "ABS" and parts[3] == "OBJECT" and parts[2] == "0":
            continue
        if parts[4] == "LOCAL":
            continue
        name, _, version = parts[7].partition("@")
        syms[name] = ("T" if parts[3] in ("FUNC", "IFUNC") else "D", version.lstrip("@"))
    return syms, "readelf --dyn-syms"


def soname(lib):
    out, _ = run(["readelf", "-d", lib]) if shutil.which("readelf") else (None, "")
    if out is not None:
        m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
        return m.group(1) if m else None
    out, _ = run(["objdump", "-p", lib]) if shutil.which("objdump") else (None, "")
    if out is not None:
        m = re.search(r"^\s*SONAME\s+(\S+)", out, flags=re.M)
        return m.group(1) if m else None
    return None


def static_globals(archive, problems):
    out, err = run(["nm", "-g", "--defined-only", archive]) if shutil.which("nm") else (None, "nm not found")
    if out is None:
        problems.append("cannot list the symbols of %s: %s" % (archive, err))
        return {}
    syms = {}
    member = "?"
    for line in out.splitlines():
        line = line.strip()
        if line.endswith(":") and " " not in line:
            member = line[:-1]
            continue
        parts = line.split()
        if len(parts) >= 2:
            syms.setdefault(parts[-1], member)
    return syms


def main():
    ap = argparse.ArgumentParser(description="Check libnnkit's exported symbols against its headers.")
    ap.add_argument("--lib", required=True, help="path of the built libnnkit.so")
    ap.add_argument("--include", required=True, help="the source tree's include/ directory")
    ap.add_argument("--static", help="path of libnnkit.a (optional extra checks)")
    ap.add_argument("--soname", default="libnnkit.so.0", help="expected soname")
    ap.add_argument("--version-node", default="NNKIT_0", help="expected symbol version")
    args = ap.parse_args()

    problems = []
    declared = header_declarations(args.include, problems)
    exported, tool = dynamic_symbols(args.lib, problems)

    for name in sorted(set(declared) | set(exported)):
        if not name.startswith(PREFIX) or name.startswith(INTERNAL):
            where = "declared in %s" % declared[name] if name in declared else "exported"
            problems.append("%s (%s) is not a public nnkit_ name" % (name, where))
    for name in sorted(set(declared) - set(exported)):
        problems.append("%s is declared in %s but not exported by %s" % (name, declared[name], os.path.basename(args.lib)))
    for name in sorted(set(exported) - set(declared)):
        problems.append("%s is exported but declared in no public header" % name)
    for name, (kind, version) in sorted(exported.items()):
        if name in declared and kind not in ("T", "W", "i"):
            problems.append("%s is exported as a %s symbol, not a function" % (name, kind))
        if args.version_node and version != args.version_node:
            problems.append("%s has symbol version '%s', expected %s (lib/nnkit.map)" % (name, version, args.version_node))

    got = soname(args.lib)
    if got != args.soname:
        problems.append("soname of %s is %s, expected %s" % (args.lib, got, args.soname))

    if args.static:
        sglobals = static_globals(args.static, problems)
        for name, member in sorted(sglobals.items()):
            if not name.startswith(PREFIX) and not name.startswith(TOOLCHAIN):
                problems.append("%s (%s in %s) is a global symbol without the nnkit_ prefix" % (name, member, os.path.basename(args.static)))
        for name in sorted(declared):
            if sglobals and name not in sglobals:
                problems.append("%s is declared but not defined in %s" % (name, os.path.basename(args.static)))

    print("headers declare %d functions; %s lists %d exports; soname %s"
          % (len(declared), tool, len(exported), got))
    if problems:
        for p in problems:
            print("FAIL: " + p)
        print("%d problem(s)" % len(problems))
        return 1
    print("ok: the exported symbols equal the header's functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
