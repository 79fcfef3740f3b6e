#!/usr/bin/python3
"""Twin of examples/lr_finder.c: a learning-rate range test on the digits
perceptron (the case study's data and 784-256-128-10 ReLU net, SGD with
momentum 0.9, batch 32), the same printed curve and suggestion, then
training with the suggested rate (early stopping on the validation
accuracy, patience 5) and the test accuracy. With the same seed and thread
count it prints what the C example prints; it also draws the curve
(lr_finder.png, LRFinder.plot)."""
import os

from _common import args, nnkit, pyplot

STEPS = 100
a = args(__doc__, epochs=20)


def load(prefix):
    return nnkit.Dataset.load_idx(os.path.join(a.data, prefix + "-images-idx3-ubyte.gz"),
                                  os.path.join(a.data, prefix + "-labels-idx1-ubyte.gz"), 10)


# examples/digits_data.h: a stratified 10% validation split, a per-channel
# standardization fitted on the training split only.
train_all, test = load("train"), load("t10k")
train, val = train_all.split(0.1, seed=a.seed)
norm = nnkit.Normalizer("channel_mean", with_std=1).fit(train)
for ds in (train, val, test):
    norm.apply(ds)
net = nnkit.Net(train.sample_size, [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(128),
                                    nnkit.ReLU(), nnkit.Dense(10)], seed=a.seed)
opt = nnkit.Optimizer("sgd", momentum=0.9)
with nnkit.Trainer(net, opt, batch_size=32, seed=a.seed) as tr:
    print("digits: %d train, %d validation, %d test samples; SGD with momentum 0.9, "
          "batch 32" % (len(train), len(val), len(test)))
    found = tr.find_lr(train, 1e-6, 10, STEPS)
    suggested, lrs, losses = found
    n = len(lrs)
    print("learning-rate range test: %d steps from %.0e (stopped %s)" %
          (n, lrs[0], "when the loss exploded" if n < STEPS else "at the end of the range"))
    lo, hi = min(losses), max(losses)
    # Every third step, and the suggested step itself (one of the rates
    # tried), marked.
    pick = max((i for i in range(n) if lrs[i] == suggested), default=n)
    print("  %-10s %-8s" % ("lr", "loss (smoothed)"))
    for i in range(n):
        if i % 3 != 0 and i != pick:
            continue
        w = int(50 * (losses[i] - lo) / (hi - lo) + 0.5) if hi > lo else 0
        mark = "  <- suggested" if i == pick else ""
        print("  %-10.2e %-8.4f |%s%s" % (lrs[i], losses[i], "*" * w, mark))
    print("suggested learning rate: %.2e (the steepest fall of the smoothed loss)" %
          suggested)
    if pyplot():
        found.plot(os.path.join(a.out, "lr_finder.png"))
        print("wrote", os.path.join(a.out, "lr_finder.png"))

    # Train with it: the net is untouched by the sweep.
    opt["lr"] = suggested
    tr["epochs"] = a.epochs
    tr["verbose"] = 1
    tr.set_early_stopping("val_acc", 5, 0)
    print("training up to %d epochs with learning rate %.3g (early stopping on the "
          "val accuracy, patience 5)" % (a.epochs, suggested))
    tr.fit(train, val)
test_loss, test_acc = net.evaluate(test)
print("test loss: %.4f" % test_loss)
print("test accuracy: %.4f" % test_acc)
