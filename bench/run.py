#!/usr/bin/python3
"""Runs bench/perf (nnkit) and bench/pytorch_peer.py (PyTorch) on the same
workloads in one go and prints the ratio nnkit / PyTorch per row: one table
for training (seconds per epoch) and one for inference (nnkit_net_predict
against net(x).argmax(1) under torch.inference_mode(): median latency per
call and samples/s, at each --batches size).

  /usr/bin/python3 bench/run.py [--build build] [--epochs 3]
                                [--models mlp,cnn,digits_cnn] [--threads 1,2]
                                [--tasks train,predict] [--batches 1,256]
                                [--rounds 1] [--layers]

mlp and cnn run on --data (Fashion-MNIST), digits_cnn (the net, split,
optimizer and schedule of examples/digits_cnn.c, batch 32) on
--digits-data. For each thread count t, PyTorch runs every setting (torch
threads x BLAS threads) with both at most t, and the best (fastest) one is
compared; the table says which it was. With --rounds R every run (nnkit's
and each PyTorch setting's) is made R times, the rounds taking turns, and
each keeps its fastest: a shared machine's slow spells then hit both peers
alike instead of whichever was running. Build the benchmark first:
  meson setup build -Dbench=true -Dbuildtype=release && ninja -C build
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def figures(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def run(cmd, echo=False):
    """The key=value figures of cmd's last line; echo: print the lines
    before it (perf --layers 1's per-layer and kernel lines)."""
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("bench/run.py: %s failed:\n%s%s" % (" ".join(cmd), out.stdout, out.stderr))
    lines = out.stdout.strip().splitlines()
    if echo:
        for line in lines[:-1]:
            print("       ", line)
    return figures(lines[-1])


def show(who, got):
    print("%-7s" % who, " ".join("%s=%s" % kv for kv in got.items()), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--models", default="mlp,cnn,digits_cnn")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tasks", default="train,predict")
    ap.add_argument("--batches", default="1,256", help="predict batch sizes")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="data of mlp and cnn")
    ap.add_argument("--digits-data", default=os.path.join(ROOT, "data", "digits"),
                    help="data of digits_cnn")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--layers", action="store_true",
                    help="nnkit's training runs print their per-layer profile and "
                         "kernel choices (perf --layers 1)")
    a = ap.parse_args()
    if a.rounds < 1 or a.epochs < 1:
        ap.error("--rounds and --epochs must be at least 1")
    models = a.models.split(",")
    tasks = a.tasks.split(",")
    for m in models:
        if m not in ("mlp", "cnn", "digits_cnn"):
            ap.error("unknown model %r (mlp, cnn, digits_cnn)" % m)
    for t in tasks:
        if t not in ("train", "predict"):
            ap.error("unknown task %r (train, predict)" % t)
    try:
        threads = [int(x) for x in a.threads.split(",")]
        batches = [int(x) for x in a.batches.split(",")]
    except ValueError:
        ap.error("--threads and --batches take comma-separated integers")
    if min(threads) < 1 or min(batches) < 1:
        ap.error("--threads and --batches must be at least 1")
    perf = os.path.join(a.build, "bench", "perf")
    if not os.path.exists(perf):
        sys.exit("bench/run.py: %s not found; configure with -Dbench=true and build "
                 "(or pass --build DIR)" % perf)

    def data_of(model):
        return a.digits_data if model == "digits_cnn" else a.data

    for m in models:
        d = data_of(m)
        missing = [f for f in FILES if not os.path.exists(os.path.join(d, f))]
        if missing:
            sys.exit("bench/run.py: %s (data of %s) lacks %s; pass --%s DIR%s" %
                     (d, m, ", ".join(missing),
                      "digits-data" if m == "digits_cnn" else "data",
                      " (python3 scripts/fetch_digits.py --out DIR fetches the digits)"
                      if m == "digits_cnn" else ""))

    def faster(old, new, key):
        return new if old is None or float(new[key]) < float(old[key]) else old

    def compare(model, t, nnkit_args, peer_args, key):
        """Fastest nnkit run and fastest PyTorch setting over the rounds."""
        mine, best = None, None
        for _ in range(a.rounds):
            got = run([perf, "--model", model, "--threads", str(t), "--data", data_of(model)]
                      + nnkit_args, echo=a.layers)
            show("nnkit", got)
            mine = faster(mine, got, key)
            for tt in range(1, t + 1):
                for bt in range(1, t + 1):
                    peer = run([sys.executable, os.path.join(HERE, "pytorch_peer.py"),
                                "--model", model, "--threads", str(tt), "--blas-threads",
                                str(bt), "--data", data_of(model)] + peer_args)
                    show("pytorch", peer)
                    best = faster(best, peer, key)
        return mine, best

    train_rows, pred_rows = [], []
    if "train" in tasks:
        for model in models:
            for t in threads:
                ep = ["--epochs", str(a.epochs)]
                mine_args = ep + (["--layers", "1"] if a.layers else [])
                train_rows.append((model, t) + compare(model, t, mine_args, ep, "epoch_s"))
    if "predict" in tasks:
        for model in models:
            for t in threads:
                for b in batches:
                    args = ["--task", "predict", "--batch", str(b)]
                    pred_rows.append((model, t, b) + compare(model, t, args, args,
                                                             "latency_us"))
    if train_rows:
        print()
        print("| model | threads | nnkit s/epoch | PyTorch best s/epoch (torch x BLAS threads) "
              "| time ratio nnkit/PyTorch | nnkit GFLOP/s | of sgemm peak | of FMA peak "
              "| RSS MB nnkit / PyTorch | allocs/step | test acc nnkit / PyTorch |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for model, t, mine, best in train_rows:
            print("| %s | %d | %s | %s (%sx%s) | %.2f | %s | %.0f%% of %s | %.0f%% of %s "
                  "| %s / %s | %s | %s / %s |"
                  % (model, t, mine["epoch_s"], best["epoch_s"], best["threads"],
                     best["blas_threads"], float(mine["epoch_s"]) / float(best["epoch_s"]),
                     mine["gflops"], 100 * float(mine["peak_fraction"]),
                     mine["sgemm_peak_gflops"], 100 * float(mine["fma_fraction"]),
                     mine["fma_peak_gflops"], mine["rss_mb"], best["rss_mb"],
                     mine["allocs_per_step"], mine["test_acc"], best["test_acc"]))
    if pred_rows:
        print()
        print("| model | threads | batch | nnkit latency us | nnkit samples/s "
              "| PyTorch best latency us (torch x BLAS threads) | PyTorch samples/s "
              "| time ratio nnkit/PyTorch | nnkit allocs/call |")
        print("|---|---|---|---|---|---|---|---|---|")
        for model, t, b, mine, best in pred_rows:
            print("| %s | %d | %d | %s | %s | %s (%sx%s) | %s | %.2f | %s |"
                  % (model, t, b, mine["latency_us"], mine["samples_s"], best["latency_us"],
                     best["threads"], best["blas_threads"], best["samples_s"],
                     float(mine["latency_us"]) / float(best["latency_us"]),
                     mine["allocs_per_call"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
