#!/usr/bin/env python3
"""Every public declaration of nnkit's headers is documented.

usage: check_docs.py INCLUDE_DIR [DOXYGEN DOXYFILE]

1. Each header of INCLUDE_DIR/nnkit has a `@file` comment (without one,
   Doxygen leaves the file's functions out of the reference silently).
2. Each `NNKIT_API` declaration is directly preceded by a documentation
   comment (`/** ... */`, a blank line at most between them) or belongs to a
   group of declarations that share the comment just above it (consecutive
   lines, no blank line between).
3. With DOXYGEN and DOXYFILE, Doxygen builds the HTML reference with
   warnings as errors, which also catches undocumented types, enum values
   and broken references.
Prints each problem as FILE:LINE: text and exits 1 if there is any.
"""
import os
import re
import subprocess
import sys


def check_header(path):
    problems = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if not any("@file" in line for line in lines[:10]):
        problems.append(f"{path}:1: no '@file' comment in the first lines")
    for i, line in enumerate(lines):
        if not line.startswith("NNKIT_API"):
            continue
        m = re.search(r"\b(nnkit_\w+)\s*\(", line)
        name = m.group(1) if m else line.strip()
        j = i - 1
        # A declaration that continues a group: the previous line ends a
        # declaration (';') of the same group; walk up to the group's head.
        while j >= 0 and (lines[j].rstrip().endswith((";", ",", "(")) or
                          (lines[j].startswith(" ") and not lines[j].lstrip().startswith("*"))
                          or lines[j].startswith("NNKIT_API")):
            j -= 1
        if j >= 0 and lines[j].strip() == "":
            j -= 1
        if j < 0 or not lines[j].rstrip().endswith("*/"):
            problems.append(f"{path}:{i + 1}: {name} has no documentation comment")
            continue
        k = j
        while k >= 0 and "/*" not in lines[k]:
            k -= 1
        if k < 0 or "/**" not in lines[k]:
            problems.append(f"{path}:{i + 1}: {name}: the comment above it is a "
                            "plain '/*' comment; documentation comments start with '/**'")
    return problems


def main():
    if len(sys.argv) not in (2, 4):
        print(__doc__, file=sys.stderr)
        return 2
    inc = os.path.join(sys.argv[1], "nnkit")
    headers = sorted(os.path.join(inc, h) for h in os.listdir(inc) if h.endswith(".h"))
    problems = []
    functions = 0
    for h in headers:
        problems += check_header(h)
        with open(h, encoding="utf-8") as f:
            functions += sum(1 for line in f if line.startswith("NNKIT_API"))
    print(f"{len(headers)} headers, {functions} public functions checked")
    if len(sys.argv) == 4:
        doxygen, doxyfile = sys.argv[2], sys.argv[3]
        r = subprocess.run([doxygen, doxyfile], capture_output=True, text=True)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or out:
            problems += [line for line in out.split("\n") if line] or [
                f"doxygen exited {r.returncode}"]
        else:
            print("doxygen: the HTML reference built with no warning")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
