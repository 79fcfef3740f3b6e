#!/usr/bin/python3
"""Runs bench/perf (nnkit) and bench/pytorch_peer.py (PyTorch) on the same
workloads in one go and prints the ratio nnkit / PyTorch per row.

  /usr/bin/python3 bench/run.py [--build build] [--epochs 3] [--models mlp,cnn]
                                [--rounds 1]

For each thread count t, PyTorch runs every setting (torch threads x BLAS
threads) with both at most t, and the best (fastest) one is compared;
the table says which it was. With --rounds R every run (nnkit's and each
PyTorch setting's) is made R times, the rounds taking turns, and each
keeps its fastest: a shared machine's slow spells then hit both peers
alike instead of whichever was running. Build the benchmark first:
  meson setup build -Dbench=true && ninja -C build
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def figures(line):
    return dict(kv.split("=", 1) for kv in line.split())


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("bench/run.py: %s failed:\n%s%s" % (" ".join(cmd), out.stdout, out.stderr))
    return figures(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    if a.rounds < 1:
        sys.exit("bench/run.py: --rounds must be at least 1")
    perf = os.path.join(a.build, "bench", "perf")
    if not os.path.exists(perf):
        sys.exit("bench/run.py: %s not found; configure with -Dbench=true and build" % perf)
    def faster(old, new):
        return new if old is None or float(new["epoch_s"]) < float(old["epoch_s"]) else old

    rows = []
    for model in a.models.split(","):
        for t in [int(x) for x in a.threads.split(",")]:
            mine, best = None, None
            for r in range(a.rounds):
                got = run([perf, "--model", model, "--threads", str(t), "--epochs",
                           str(a.epochs), "--data", a.data])
                print("nnkit  ", " ".join("%s=%s" % kv for kv in got.items()), flush=True)
                mine = faster(mine, got)
                for tt in range(1, t + 1):
                    for bt in range(1, t + 1):
                        peer = run([sys.executable, os.path.join(HERE, "pytorch_peer.py"),
                                    "--model", model, "--threads", str(tt),
                                    "--blas-threads", str(bt), "--epochs", str(a.epochs),
                                    "--data", a.data])
                        print("pytorch", " ".join("%s=%s" % kv for kv in peer.items()),
                              flush=True)
                        best = faster(best, peer)
            rows.append((model, t, mine, best))
    print()
    print("| model | threads | nnkit s/epoch | PyTorch best s/epoch (torch x BLAS threads) "
          "| time ratio nnkit/PyTorch | nnkit GFLOP/s (of sgemm peak) | RSS MB nnkit / "
          "PyTorch | allocs/step | test acc nnkit / PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, t, mine, best in rows:
        print("| %s | %d | %s | %s (%sx%s) | %.2f | %s (%.0f%% of %s) | %s / %s | %s | %s / %s |"
              % (model, t, mine["epoch_s"], best["epoch_s"], best["threads"],
                 best["blas_threads"], float(mine["epoch_s"]) / float(best["epoch_s"]),
                 mine["gflops"], 100 * float(mine["peak_fraction"]),
                 mine["sgemm_peak_gflops"], mine["rss_mb"], best["rss_mb"],
                 mine["allocs_per_step"], mine["test_acc"], best["test_acc"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
