#!/usr/bin/python3
"""The PyTorch twin of bench/perf.c: same data, network, init scheme,
optimizer, schedule, batch size and thread count; no DataLoader workers.

  /usr/bin/python3 bench/pytorch_peer.py --model mlp --threads 1 --blas-threads 1
  /usr/bin/python3 bench/pytorch_peer.py --model digits_cnn --data data/digits
  /usr/bin/python3 bench/pytorch_peer.py --model cnn --task predict --batch 1

Models: mlp and cnn on Fashion-MNIST (batch 128, SGD momentum 0.9, lr
0.01); digits_cnn, the net of examples/digits_cnn.c (conv32-BN-ReLU-pool,
conv64-BN-ReLU-pool, flatten, dense128-ReLU-dropout0.5-dense10, no conv
bias) on data/digits with every tenth training image held out for
validation (evaluated every epoch, inside the timed epoch, as nnkit's
trainer does), pixels standardized with the training file's mean and std,
SGD momentum 0.9, lr 0.01 cosine-annealed to 0 over every step of the run,
batch 32.

--task predict times net(x).argmax(1) in eval mode under
torch.inference_mode() on B test samples per call (the next B each call):
the median over --calls calls after 10 warm-up calls, on the untrained net
(as bench/perf does).

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

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def parse():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["mlp", "cnn", "digits_cnn"], default="mlp")
    p.add_argument("--task", choices=["train", "predict"], default="train")
    p.add_argument("--data", default=None,
                   help="the four MNIST-named IDX files (default "
                        "/usr/share/datasets/fashion-mnist; data/digits for digits_cnn)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=None,
                   help="training: 128 (32 for digits_cnn); predict: 1")
    p.add_argument("--calls", type=int, default=None,
                   help="predict: timed calls (2000 for batch 1, 50 otherwise)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OMP/OpenBLAS threads of the BLAS torch calls")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.data is None:
        a.data = "data/digits" if a.model == "digits_cnn" else "/usr/share/datasets/fashion-mnist"
    if a.batch is None:
        a.batch = 1 if a.task == "predict" else 32 if a.model == "digits_cnn" else 128
    if a.calls is None:
        a.calls = 2000 if a.batch == 1 else 50
    for name, v in (("--epochs", a.epochs), ("--batch", a.batch), ("--calls", a.calls),
                    ("--threads", a.threads), ("--blas-threads", a.blas_threads)):
        if v < 1:
            p.error("%s must be at least 1" % name)
    missing = [f for f in FILES if not os.path.exists(os.path.join(a.data, f))]
    if missing:
        p.error("%s lacks %s (--data DIR: a folder with the four MNIST-named IDX files)"
                % (a.data, ", ".join(missing)))
    return a


ARGS = parse()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.blas_threads)

try:
    import numpy as np  # noqa: E402
    import torch  # noqa: E402
except ImportError as e:
    sys.exit("pytorch_peer.py: %s; run it with a Python that has NumPy and PyTorch "
             "(Debian's /usr/bin/python3 here)" % e)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(prefix):
    """Raw pixels (0..255, float32, shape (n, 1, 28, 28)) and int64 labels."""
    x = read_idx(os.path.join(ARGS.data, prefix + "-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(ARGS.data, prefix + "-labels-idx1-ubyte.gz"))
    return (torch.from_numpy(x.astype(np.float32).reshape(-1, 1, 28, 28)),
            torch.from_numpy(y.astype(np.int64)))


def data():
    """(train, val or None, test) as (x, y) pairs, prepared as bench/perf.c
    prepares them."""
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    if ARGS.model != "digits_cnn":
        return (xtr / 255.0, ytr), None, (xte / 255.0, yte)
    # examples/digits_cnn.c: standardize with the training file's pixel
    # mean and std (in double), then every tenth image is validation.
    px = xtr.double()
    mean = px.mean().item()
    sd = ((px * px).mean().item() - mean * mean) ** 0.5
    xtr = (xtr - mean) / sd
    xte = (xte - mean) / sd
    n = xtr.shape[0]
    nv = n // 10
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[torch.arange(9, n, 10)[:nv]] = True
    return (xtr[~is_val], ytr[~is_val]), (xtr[is_val], ytr[is_val]), (xte, yte)


def model():
    nn = torch.nn
    if ARGS.model == "mlp":
        layers = [nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                  nn.ReLU(), nn.Linear(256, 10)]
    elif ARGS.model == "cnn":
        layers = [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)]
    else:  # examples/digits_cnn.c
        layers = [nn.Conv2d(1, 32, 3, padding=1, bias=False),
                  nn.BatchNorm2d(32, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Conv2d(32, 64, 3, padding=1, bias=False),
                  nn.BatchNorm2d(64, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5),
                  nn.Linear(128, 10)]
    net = nn.Sequential(*layers)
    # nnkit's default scheme: He-normal when the next layer is a ReLU,
    # Xavier-uniform otherwise (a convolution followed by batch norm),
    # zero biases; batch norm starts at scale 1, shift 0 (both libraries).
    for i, m in enumerate(layers):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(nxt, nn.ReLU):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def layer_macs():
    """Multiply-adds per sample of each parameterised layer's forward pass."""
    if ARGS.model == "mlp":
        return [784 * 512, 512 * 256, 256 * 10]
    if ARGS.model == "cnn":
        return [28 * 28 * 16 * 1 * 9, 14 * 14 * 32 * 16 * 9, 32 * 7 * 7 * 128, 128 * 10]
    return [28 * 28 * 32 * 1 * 9, 14 * 14 * 64 * 32 * 9, 64 * 7 * 7 * 128, 128 * 10]


def flops_per_sample(train=True):
    """Counted as computed; must match train_flops_per_sample() and
    predict_flops_per_sample() in bench/perf.c: 2 per multiply-add of each
    convolution and dense layer, for the forward pass, the weight gradient
    and the input gradient, except the first parameterised layer's input
    gradient (neither library computes it); element-wise layers are not
    counted. Inference: the forward pass only."""
    m = layer_macs()
    if not train:
        return 2.0 * sum(m)
    return sum(2.0 * v * (2 if i == 0 else 3) for i, v in enumerate(m))


def predict(net, test):
    x = test[0]
    n, b = x.shape[0], ARGS.batch
    if b > n:
        sys.exit("pytorch_peer.py: --batch %d is larger than the %d test samples" % (b, n))
    span = n - b + 1
    net.eval()
    times = []
    at = 0
    with torch.inference_mode():
        for i in range(10 + ARGS.calls):
            xb = x[at:at + b]
            t0 = time.perf_counter()
            net(xb).argmax(1)
            t = time.perf_counter() - t0
            if i >= 10:
                times.append(t)
            at = (at + b) % span
    med = sorted(times)[len(times) // 2]
    print("peer=pytorch task=predict model=%s threads=%d blas_threads=%d batch=%d "
          "latency_us=%.1f samples_s=%.0f gflops=%.1f calls=%d weights=untrained" %
          (ARGS.model, ARGS.threads, ARGS.blas_threads, b, med * 1e6, b / med,
           flops_per_sample(False) * b / med / 1e9, ARGS.calls))
    return 0


def main():
    torch.manual_seed(ARGS.seed)
    torch.set_num_threads(ARGS.threads)
    (xtr, ytr), val, test = data()
    net = model()
    if ARGS.task == "predict":
        return predict(net, test)
    opt = torch.optim.SGD(net.parameters(), lr=ARGS.lr, momentum=0.9)
    n = xtr.shape[0]
    steps_per_epoch = (n + ARGS.batch - 1) // ARGS.batch
    sched = None
    if ARGS.model == "digits_cnn":  # cosine from lr to 0 over every step, per batch
        import math
        total = steps_per_epoch * ARGS.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: (1.0 + math.cos(math.pi * min(t, total) / total)) / 2.0)
    loss_fn = torch.nn.CrossEntropyLoss()
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
            if sched is not None:
                sched.step()
        if val is not None:  # the trainer's validation pass, in the epoch
            net.eval()
            with torch.no_grad():
                for s in range(0, val[0].shape[0], 1000):
                    loss_fn(net(val[0][s:s + 1000]), val[1][s:s + 1000]).item()
        times.append(time.perf_counter() - t0)
    net.eval()
    xte, yte = test
    with torch.no_grad():
        correct = 0
        for s in range(0, xte.shape[0], 1000):
            correct += (net(xte[s:s + 1000]).argmax(1) == yte[s:s + 1000]).sum().item()
    med = sorted(times)[len(times) // 2]
    nval = val[0].shape[0] if val is not None else 0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("peer=pytorch task=train model=%s threads=%d blas_threads=%d batch=%d epoch_s=%.3f "
          "samples_s=%.0f gflops=%.1f rss_mb=%.0f test_acc=%.4f epochs=%d" %
          (ARGS.model, ARGS.threads, ARGS.blas_threads, ARGS.batch, med, n / med,
           (flops_per_sample() * n + flops_per_sample(False) * nval) / med / 1e9, rss_mb,
           correct / xte.shape[0], ARGS.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
