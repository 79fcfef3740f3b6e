#!/usr/bin/env python3
"""doc/building.md's package table equals scripts/packages.sh's lists.

usage: check_packages_doc.py SOURCE_ROOT

The lists of Debian packages live in scripts/packages.sh only; the guide
shows them as a table (package, what needs it, build or tests). This test
fails, naming the difference, when one changes without the other.
"""
import re
import sys


def lists(path):
    text = open(path, encoding="utf-8").read()
    out = {}
    for name, kind in (("build_packages", "build"), ("test_packages", "tests")):
        m = re.search(name + r"=\(\n(.*?)\n\)", text, re.S)
        if not m:
            sys.exit(f"{path}: no {name}=( ... ) list")
        for line in m.group(1).split("\n"):
            pkg = line.split("#")[0].strip()
            if pkg:
                out[pkg] = kind
    return out


def table(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"\|\s*`([^`]+)`\s*\|[^|]*\|\s*(build|tests)\s*\|\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def main():
    root = sys.argv[1]
    want = lists(root + "/scripts/packages.sh")
    have = table(root + "/doc/building.md")
    bad = [f"{p}: in scripts/packages.sh ({k}) but not in doc/building.md's table"
           for p, k in want.items() if p not in have]
    bad += [f"{p}: in doc/building.md's table but not in scripts/packages.sh"
            for p in have if p not in want]
    bad += [f"{p}: '{have[p]}' in doc/building.md, '{want[p]}' in scripts/packages.sh"
            for p in want if p in have and have[p] != want[p]]
    print(f"{len(want)} packages in scripts/packages.sh, {len(have)} in doc/building.md")
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
