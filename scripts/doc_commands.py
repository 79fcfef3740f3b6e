#!/usr/bin/env python3
"""Runs every command of the README and the guide, so the docs cannot rot.

usage: doc_commands.py [--update] [--list] BUILD_DIR [FILE.md ...]

Reads README.md, doc/guide/*.md and doc/case-study-digits.md (or the FILEs
given) and runs their code blocks, each in a fresh scratch folder that
holds links to the source tree's data/, scripts/, examples/, bindings/ and
doc/ and a link build -> BUILD_DIR, so a block reads as a user at the
repository root would type it:

  ```sh       run with `bash -e`;
  ```c        a whole program (it has `main`): compiled against BUILD_DIR's
              library and run;
  ```python   run with Debian's /usr/bin/python3 (NumPy, matplotlib), the
              package from bindings/python and BUILD_DIR's library.

A block whose first line is a comment starting with "not run by the docs
test" (`# not run by the docs test: why` or `/* not run ... */`) is only
read; say why (the two README commands, for instance, are what CI runs).
Every other block must exit 0; the script prints one line per block and
fails at the end if any failed.

With --update it also refreshes the outputs shown in the pages: a block
followed by the comment `<!-- output -->` (or `<!-- output tail=N -->`,
`<!-- output head=N -->`) and then a ```text block gets that text block
replaced by what the command printed (stdout, then stderr), and every PNG
the block wrote whose name a page shows as `img/NAME.png` is copied into
that page's img/ folder. Outputs hold timings, so the check does not
compare them; rerun --update after changing an example.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SKIP = "not run by the docs test"
FENCE = re.compile(r"^```(\w*)\s*$")
OUTPUT = re.compile(r"^<!-- output(?:\s+(head|tail)=(\d+))?\s*-->\s*$")


def blocks(lines):
    """Yields (kind, first_line_index, last_line_index, code) per fence."""
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        yield m.group(1), i, j, "\n".join(lines[i + 1:j]) + "\n"
        i = j + 1


def sandbox(build):
    d = tempfile.mkdtemp(prefix="nnkit-docs-")
    for name in ("data", "scripts", "examples", "bindings", "doc", "include"):
        os.symlink(os.path.join(ROOT, name), os.path.join(d, name))
    os.symlink(build, os.path.join(d, "build"))
    return d


def run_block(kind, code, build, cwd):
    """Runs one block (kind "sh", "python" or "c"); (exit code, stdout, stderr)."""
    env = dict(os.environ)
    lib = os.path.join(build, "lib", "libnnkit.so")
    # Debian's python3 (NumPy, matplotlib) first, as on a user's Debian
    # machine: the first python3 on this PATH may be another one.
    env.update(NNKIT_LIBRARY=lib, PYTHONPATH=os.path.join(ROOT, "bindings", "python"),
               PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg",
               PATH="/usr/bin:" + env.get("PATH", ""))
    if kind == "sh":
        cmd = ["bash", "-e", "-c", code]
    elif kind == "python":
        cmd = [PY, "-c", code]
    elif kind == "c":
        src = os.path.join(cwd, "doc_example.c")
        with open(src, "w") as f:
            f.write(code)
        cc = subprocess.run(
            ["cc", "-std=c11", "-Wall", "-Werror", "-o", os.path.join(cwd, "doc_example"), src,
             "-I", os.path.join(ROOT, "include"), "-I", os.path.join(build, "include"),
             "-L", os.path.join(build, "lib"), "-lnnkit", "-lm",
             "-Wl,-rpath," + os.path.join(build, "lib")],
            capture_output=True, text=True)
        if cc.returncode != 0:
            return cc.returncode, "", "compiling the C block failed:\n" + cc.stderr
        cmd = [os.path.join(cwd, "doc_example")]
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    return r.returncode, r.stdout, r.stderr


def runnable(kind, code):
    if kind not in ("sh", "c", "python"):
        return False
    if kind == "c" and not re.search(r"\bint\s+main\s*\(", code):
        return False
    first = code.lstrip().split("\n", 1)[0]
    return SKIP not in first


def process(path, build, update, listing):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    failures = 0
    edits = []  # (start, end, new_lines) of text blocks to replace
    rel = os.path.relpath(path, ROOT)
    for kind, start, end, code in list(blocks(lines)):
        if not runnable(kind, code):
            continue
        title = code.strip().split("\n")[0][:60]
        if listing:
            print(f"{rel}:{start + 1}: {kind}: {title}")
            continue
        cwd = sandbox(build)
        try:
            rc, out, err = run_block(kind, code, build, cwd)
            ok = rc == 0
            print(f"{'ok  ' if ok else 'FAIL'} {rel}:{start + 1}: {kind}: {title}", flush=True)
            if not ok:
                failures += 1
                tail = (out + err).strip().split("\n")[-15:]
                print("\n".join("     | " + t for t in tail))
            # The output block that follows, if any.
            k = end + 1
            while k < len(lines) and not lines[k].strip():
                k += 1
            m = OUTPUT.match(lines[k]) if k < len(lines) else None
            if update and ok and m:
                t = k + 1
                while t < len(lines) and not lines[t].strip():
                    t += 1
                if t < len(lines) and FENCE.match(lines[t]):
                    te = t + 1
                    while te < len(lines) and lines[te].rstrip() != "```":
                        te += 1
                    text = (out + err).rstrip("\n").split("\n")
                    if m.group(1) == "head":
                        n = int(m.group(2))
                        text = text[:n] + (["..."] if len(text) > n else [])
                    elif m.group(1) == "tail":
                        n = int(m.group(2))
                        text = (["..."] if len(text) > n else []) + text[-n:]
                    edits.append((t + 1, te, [x.rstrip() for x in text]))
            if update and ok:
                page = "\n".join(lines)
                # Files the block wrote: the scratch folder's own, not the
                # linked source folders (os.walk does not follow links).
                pngs = [os.path.join(d, f) for d, _, fs in os.walk(cwd)
                        for f in fs if f.endswith(".png")]
                for png in pngs:
                    name = os.path.basename(png)
                    if f"img/{name}" in page:
                        dst = os.path.join(os.path.dirname(path), "img", name)
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        shutil.copyfile(png, dst)
        finally:
            shutil.rmtree(cwd, ignore_errors=True)
    if edits:
        for s, e, new in sorted(edits, reverse=True):
            lines[s:e] = new
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    return failures


def main(argv):
    update = "--update" in argv
    listing = "--list" in argv
    args = [a for a in argv if a not in ("--update", "--list")]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    build = os.path.abspath(args[0])
    files = [os.path.abspath(a) for a in args[1:]]
    if not files:
        files = [os.path.join(ROOT, "README.md")]
        files += sorted(glob.glob(os.path.join(ROOT, "doc", "guide", "*.md")))
        cs = os.path.join(ROOT, "doc", "case-study-digits.md")
        if os.path.exists(cs):
            files.append(cs)
    if not os.path.exists(os.path.join(build, "lib", "libnnkit.so")):
        print(f"doc_commands.py: no library in {build}/lib: build first", file=sys.stderr)
        return 2
    if not listing and not os.path.exists(os.path.join(ROOT, "data", "digits",
                                                       "train-images-idx3-ubyte.gz")):
        print("doc_commands.py: data/digits is missing (scripts/fetch_digits.py): skipped")
        return 77
    failures = sum(process(f, build, update, listing) for f in files)
    if failures:
        print(f"doc_commands.py: {failures} block(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
