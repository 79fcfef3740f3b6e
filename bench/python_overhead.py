#!/usr/bin/python3
"""The cost of driving nnkit from Python, against the same work in C.

  /usr/bin/python3 bench/python_overhead.py --build build [--rounds 3]
                                            [--epochs 5] [--loops]

(a) Training: the digits MLP (784-256-128-10 with ReLU, seed 1, SGD lr
0.05, batch 32, shuffled with seed 1, no per-layer statistics, one thread)
trained one epoch per fit call on data/digits (pixels scaled to [0, 1]):
by bench/fit_bench (C, its own process), by Trainer.fit on a Dataset, and
by Net.fit on NumPy arrays (which also builds the Trainer and converts the
arrays each call). The three take turns for --rounds rounds of --epochs
epochs each; each keeps its fastest epoch; prints the ratios to C (the
target is 1.03 at most). --loops adds the Python loops calling
forward/backward/step, or Optimizer.train_batch, per batch.

(b) Inference: Net.predict on a float32 NumPy array of test digits
against nnkit_net_predict called through ctypes on the same array's raw
pointer (same library, same net, no argument conversion), for batches 64,
256 and 1024: the calls alternate (taking turns going first), the median of each is kept; prints the
ratios (the target is 1.10 at most).

The library is the build's (build/lib/libnnkit.so), unless NNKIT_LIBRARY
names another.
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parse():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "digits"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5, help="epochs per round and kind")
    ap.add_argument("--calls", type=int, default=200, help="predict calls per batch size")
    ap.add_argument("--batches", default="64,256,1024")
    ap.add_argument("--loops", action="store_true",
                    help="also time Python loops of forward/backward/step and train_batch")
    ap.add_argument("--skip", choices=["train", "predict"], default=None,
                    help="leave one part out")
    a = ap.parse_args()
    if a.rounds < 1 or a.epochs < 1 or a.calls < 1:
        ap.error("--rounds, --epochs and --calls must be at least 1")
    try:
        a.batches = [int(b) for b in a.batches.split(",")]
    except ValueError:
        ap.error("--batches takes comma-separated integers")
    a.fit_bench = os.path.join(a.build, "bench", "fit_bench")
    a.library = os.environ.get("NNKIT_LIBRARY") or os.path.join(a.build, "lib", "libnnkit.so")
    for path, what in ((a.fit_bench, "bench/fit_bench"), (a.library, "the library")):
        if not os.path.exists(path):
            sys.exit("python_overhead.py: %s (%s) not found; configure with -Dbench=true and "
                     "build (or pass --build DIR)" % (path, what))
    for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        if not os.path.exists(os.path.join(a.data, f)):
            sys.exit("python_overhead.py: %s has no %s (--data DIR; python3 "
                     "scripts/fetch_digits.py --out DIR fetches the digits)" % (a.data, f))
    return a


ARGS = parse()
os.environ["NNKIT_LIBRARY"] = ARGS.library
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
try:
    import numpy as np  # noqa: E402
    import nnkit  # noqa: E402
except ImportError as e:
    sys.exit("python_overhead.py: %s; run it with a Python that has NumPy (Debian's "
             "/usr/bin/python3 here)" % e)
except OSError as e:  # the library would not load
    sys.exit("python_overhead.py: %s" % e)


def digits_net():
    return nnkit.Net((1, 28, 28), [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(128),
                                   nnkit.ReLU(), nnkit.Dense(10)], seed=1)


def load(prefix):
    ds = nnkit.Dataset.load_idx(os.path.join(ARGS.data, prefix + "-images-idx3-ubyte.gz"),
                                os.path.join(ARGS.data, prefix + "-labels-idx1-ubyte.gz"))
    ds.scale(1 / 255.0)
    return ds


def c_epochs():
    """One fit_bench run of ARGS.epochs epochs: its epoch times."""
    cmd = [ARGS.fit_bench, "--data", ARGS.data, "--epochs", str(ARGS.epochs), "--batch",
           "32", "--lr", "0.05", "--threads", "1", "--shuffle", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("python_overhead.py: %s failed:\n%s%s" % (" ".join(cmd), out.stdout,
                                                            out.stderr))
    kv = dict(x.split("=", 1) for x in out.stdout.split() if "=" in x)
    return [float(s) for s in kv["epoch_s"].split(",")]


def training():
    train = load("train")
    x = np.ascontiguousarray(train.x, dtype=np.float32)
    y = np.asarray(train.labels)
    n1 = digits_net()
    tr = nnkit.Trainer(n1, nnkit.Optimizer("sgd", lr=0.05), epochs=1, batch_size=32, seed=1,
                       shuffle=1, layer_stats=0)
    n2 = digits_net()
    opt2 = nnkit.Optimizer("sgd", lr=0.05)
    kinds = {"c": [], "trainer_fit": [], "net_fit": []}
    if ARGS.loops:
        n3, n4 = digits_net(), digits_net()
        opt3, opt4 = nnkit.Optimizer("sgd", lr=0.05), nnkit.Optimizer("sgd", lr=0.05)
        xf = x.reshape(len(train), -1)
        kinds.update({"py_loop": [], "train_batch_loop": []})

    def timed(fn, out):
        for _ in range(ARGS.epochs):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)

    for _ in range(ARGS.rounds):
        kinds["c"] += c_epochs()
        timed(lambda: tr.fit(train), kinds["trainer_fit"])
        timed(lambda: n2.fit(x, y, epochs=1, batch_size=32, optimizer=opt2, seed=1,
                             shuffle=True, layer_stats=0), kinds["net_fit"])
        if ARGS.loops:
            def py_loop():
                for s in range(0, len(xf), 32):
                    n3.forward(xf[s:s + 32])
                    n3.backward(labels=y[s:s + 32])
                    opt3.step(n3)

            def one_call():
                for s in range(0, len(xf), 32):
                    opt4.train_batch(n4, xf[s:s + 32], labels=y[s:s + 32])
            timed(py_loop, kinds["py_loop"])
            timed(one_call, kinds["train_batch_loop"])
    tr.close()
    c = min(kinds["c"])
    cmed = statistics.median(kinds["c"])
    print("part=train kind=c min_epoch_s=%.4f median_epoch_s=%.4f epochs=%d"
          % (c, cmed, len(kinds["c"])))
    for k, v in kinds.items():
        if k == "c":
            continue
        print("part=train kind=%s min_epoch_s=%.4f median_epoch_s=%.4f ratio_to_c=%.3f "
              "median_ratio_to_c=%.3f" % (k, min(v), statistics.median(v), min(v) / c,
                                          statistics.median(v) / cmed))


def inference():
    test = load("t10k")
    net = digits_net()
    x = np.ascontiguousarray(test.x, dtype=np.float32)  # (n, 1, 28, 28)
    raw = ctypes.CDLL(ARGS.library)  # the same loaded library, its plain symbol
    cpredict = raw.nnkit_net_predict
    cpredict.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    cpredict.restype = ctypes.c_int
    handle = net.handle.value if hasattr(net.handle, "value") else net.handle
    for b in ARGS.batches:
        if b > len(x):
            sys.exit("python_overhead.py: batch %d exceeds the %d test digits" % (b, len(x)))
        out = np.empty(b, dtype=np.int32)
        outp = out.__array_interface__["data"][0]
        tp, tc = [], []
        span = len(x) - b + 1
        at = 0
        for i in range(10 + ARGS.calls):
            xb = x[at:at + b]
            xp = xb.__array_interface__["data"][0]
            # the two take turns going first (the second finds x in cache)
            for first in ((0, 1) if i % 2 else (1, 0)):
                t0 = time.perf_counter()
                if first:
                    got = net.predict(xb)
                else:
                    st = cpredict(outp, handle, xp, b)
                t = time.perf_counter() - t0
                if i >= 10:
                    (tp if first else tc).append(t)
            if st != 0 or not np.array_equal(got, out):
                sys.exit("python_overhead.py: Net.predict and nnkit_net_predict disagree "
                         "(status %d)" % st)
            at = (at + b) % span
        p, c = statistics.median(tp), statistics.median(tc)
        print("part=predict batch=%d python_us=%.1f c_us=%.1f overhead_us=%.1f ratio=%.3f"
              % (b, p * 1e6, c * 1e6, (p - c) * 1e6, p / c))


def main():
    nnkit.set_num_threads(1)
    if ARGS.skip != "train":
        training()
    if ARGS.skip != "predict":
        inference()
    return 0


if __name__ == "__main__":
    sys.exit(main())
