#!/usr/bin/python3
"""The PyTorch twin of bench/perf.c: same data, network, init scheme,
optimizer, batch size and thread count; no DataLoader workers.

  /usr/bin/python3 bench/pytorch_peer.py --model mlp --threads 1 --blas-threads 1

Prints one line of key=value figures (the format bench/perf.c prints), so
bench/run.py can put both side by side. Thread settings must be chosen
before torch is imported, so each setting runs in its own process.
"""
import argparse
import gzip
import os
import resource
import struct
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OMP/OpenBLAS threads of the BLAS torch calls")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


ARGS = parse()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.blas_threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(prefix):
    x = read_idx(os.path.join(ARGS.data, prefix + "-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(ARGS.data, prefix + "-labels-idx1-ubyte.gz"))
    x = torch.from_numpy((x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28))
    return x, torch.from_numpy(y.astype(np.int64))


def model():
    nn = torch.nn
    if ARGS.model == "mlp":
        layers = [nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                  nn.ReLU(), nn.Linear(256, 10)]
    else:
        layers = [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)]
    net = nn.Sequential(*layers)
    # nnkit's default scheme: He-normal before a ReLU, Xavier-uniform otherwise,
    # zero biases.
    for i, m in enumerate(layers):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(nxt, nn.ReLU):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def flops_per_sample():
    """Multiply-adds x 2 of forward + backward (3x forward), as bench/perf.c."""
    if ARGS.model == "mlp":
        fwd = 784 * 512 + 512 * 256 + 256 * 10
    else:
        fwd = (28 * 28 * 16 * 9) + (14 * 14 * 32 * 16 * 9) + 32 * 7 * 7 * 128 + 128 * 10
    return 2.0 * 3.0 * fwd


def main():
    torch.manual_seed(ARGS.seed)
    torch.set_num_threads(ARGS.threads)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    net = model()
    opt = torch.optim.SGD(net.parameters(), lr=ARGS.lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = xtr.shape[0]
    g = torch.Generator().manual_seed(ARGS.seed)
    times = []
    for _ in range(ARGS.epochs):
        perm = torch.randperm(n, generator=g)
        net.train()
        t0 = time.perf_counter()
        for s in range(0, n, ARGS.batch):
            idx = perm[s:s + ARGS.batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    net.eval()
    with torch.no_grad():
        correct = 0
        for s in range(0, xte.shape[0], 1000):
            correct += (net(xte[s:s + 1000]).argmax(1) == yte[s:s + 1000]).sum().item()
    med = sorted(times)[len(times) // 2]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("peer=pytorch model=%s threads=%d blas_threads=%d epoch_s=%.3f samples_s=%.0f "
          "gflops=%.1f rss_mb=%.0f test_acc=%.4f epochs=%d" %
          (ARGS.model, ARGS.threads, ARGS.blas_threads, med, n / med,
           flops_per_sample() * n / med / 1e9, rss_mb, correct / xte.shape[0],
           ARGS.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
