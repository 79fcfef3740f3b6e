#!/usr/bin/python3
"""What L2 and L1 do to a small network that overfits: 784-256-10 ReLU on
1,000 digits, trained without a penalty, with L2 and with L1; weight
norms, sparsity, train/validation gaps and the loss curves (PNG)."""
import math
import os
import sys

from _common import args, load_digits, nnkit, plot_curves, standardize

NTRAIN, NVAL = 1000, 2000
a = args(__doc__, epochs=30, threads=1)  # one thread: the net is small
full, _ = load_digits(a.data)
n = len(full)
if n < NTRAIN + NVAL:
    sys.exit("regularization: %s has %d training digits, %d are needed" %
             (a.data, n, NTRAIN + NVAL))
train, val = full.subset(range(NTRAIN)), full.subset(range(n - NVAL, n))
standardize(train, val)
print("regularization: %d training digits, %d validation digits from %s; 784-256-10 "
      "ReLU, SGD lr 0.02 momentum 0.9, batch 32, %d epochs" % (NTRAIN, NVAL, a.data,
                                                              a.epochs))


def run(kind, strength):
    net = nnkit.Net(train.sample_size, [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(10)],
                    seed=a.seed)
    opt = nnkit.Optimizer("sgd", lr=0.02, momentum=0.9)
    if kind:
        opt.add_regularizer(nnkit.Regularizer(kind, strength))  # biases left out
    hist = net.fit(train, val, epochs=a.epochs, batch_size=32, optimizer=opt, seed=a.seed)
    r = dict(data_loss=hist["train_loss"][-1], reg_loss=hist["reg_loss"][-1],
             seconds=sum(hist["seconds"]), train_acc=net.evaluate(train)[1])
    r["val_loss"], r["val_acc"] = net.evaluate(val)
    p, ss, zeros, count = net.params, 0.0, 0, 0
    for layer in (0, 2):  # weights only: each dense layer's slice minus its biases
        off, cnt = net.layer_params(layer)
        for w in p[off:off + cnt - net.layer_shape(layer)[0]]:
            w = float(w)
            ss += w * w
            zeros += abs(w) < 1e-3
            count += 1
    r["norm"], r["zero_frac"] = math.sqrt(ss), zeros / count
    return r, hist


runs = [("none", None, 0.0), ("L2 3e-3", "l2", 3e-3), ("L1 3e-4", "l1", 3e-4)]
print("%-9s %9s %9s %9s %9s %9s %9s %9s %9s %8s" % (
    "penalty", "data loss", "reg loss", "val loss", "loss gap", "train acc", "val acc",
    "acc gap", "|W|", "w ~ 0"))
res, curves = [], []
for k, (name, kind, strength) in enumerate(runs):
    r, hist = run(kind, strength)
    res.append(r)
    curves += [("%s, train" % name, hist["train_loss"], "C%d--" % k),
               ("%s, val" % name, hist["val_loss"], "C%d-" % k)]
    print("%-9s %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.2f %7.1f%%  (%.1f s)" % (
        name, r["data_loss"], r["reg_loss"], r["val_loss"], r["val_loss"] - r["data_loss"],
        r["train_acc"], r["val_acc"], r["train_acc"] - r["val_acc"], r["norm"],
        100.0 * r["zero_frac"], r["seconds"]))
plot_curves(os.path.join(a.out, "regularization_curves.png"), curves,
            ylabel="data loss", logy=True, title="784-256-10 on 1,000 digits")
none, l2, l1 = res
print("L2 changes the weight norm %.2f -> %.2f, the train/val loss gap %.4f -> %.4f and "
      "the accuracy gap %.4f -> %.4f" % (
          none["norm"], l2["norm"], none["val_loss"] - none["data_loss"],
          l2["val_loss"] - l2["data_loss"], none["train_acc"] - none["val_acc"],
          l2["train_acc"] - l2["val_acc"]))
print("L1 makes %.1f%% of the weights ~0 (|w| < 1e-3), against %.1f%% without" %
      (100.0 * l1["zero_frac"], 100.0 * none["zero_frac"]))
