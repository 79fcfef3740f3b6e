#!/usr/bin/python3
"""Dropout on a small training set: a wide net (784-512-512-10, ReLU)
trained long enough to overfit 1,000 digits, with and without inverted
dropout (0.2 on the input, 0.5 after each hidden layer); train/validation
gaps, test accuracies and the loss curves (PNG)."""
import os
import sys

from _common import args, load_digits, nnkit, plot_curves, standardize

TRAIN_N, VAL_N = 1000, 1000
a = args(__doc__, epochs=100)
full, test = load_digits(a.data)
if len(full) < TRAIN_N + VAL_N:
    sys.exit("dropout: %s holds %d training images, %d are needed" %
             (a.data, len(full), TRAIN_N + VAL_N))
train, val = full.subset(range(TRAIN_N)), full.subset(range(TRAIN_N, TRAIN_N + VAL_N))
standardize(train, val, test)  # the 1,000 training images' statistics only
print("dropout: %d training, %d validation and %d test digits from %s; SGD lr 0.02, "
      "batch 32, %d epochs; %d thread(s)" % (TRAIN_N, VAL_N, len(test), a.data, a.epochs,
                                            nnkit.get_num_threads()))


def run(dropout):
    layers = [nnkit.Dropout(0.2)] if dropout else []
    for _ in range(2):
        layers += [nnkit.Dense(512), nnkit.ReLU()]
        if dropout:
            layers.append(nnkit.Dropout(0.5))
    net = nnkit.Net(train.sample_size, layers + [nnkit.Dense(10)], seed=a.seed)
    for i, text in enumerate(net.describe()):
        print("  layer %d: %s" % (i, text))
    hist = net.fit(train, val, epochs=a.epochs, batch_size=32, lr=0.02, seed=a.seed)
    for e in range(len(hist)):
        if (e + 1) % 10 == 0 or e == len(hist) - 1:
            print("  epoch %3d: cost %.4f, validation accuracy %.4f" %
                  (e + 1, hist["train_loss"][e], hist["val_acc"][e]))
    # all three in evaluation mode (no dropout)
    return hist, [net.evaluate(ds)[1] for ds in (train, val, test)]


print("\n-- without dropout --")
h_plain, plain = run(False)
print("\n-- with dropout (inverted; p = 0.2 on the input, 0.5 after each hidden layer) --")
h_drop, drop = run(True)

print()
plot_curves(os.path.join(a.out, "dropout_curves.png"),
            [("without dropout, train", h_plain["train_loss"], "C0--"),
             ("without dropout, val", h_plain["val_loss"], "C0-"),
             ("with dropout, train", h_drop["train_loss"], "C1--"),
             ("with dropout, val", h_drop["val_loss"], "C1-")],
            logy=True, title="784-512-512-10 on 1,000 digits")
print("%-16s %10s %10s %10s %10s" % ("", "train acc", "val acc", "gap", "test acc"))
for name, (tr, va, te) in (("without dropout", plain), ("with dropout", drop)):
    print("%-16s %10.4f %10.4f %10.4f %10.4f" % (name, tr, va, tr - va, te))
print("train/validation gap without dropout: %.4f" % (plain[0] - plain[1]))
print("train/validation gap with dropout:    %.4f" % (drop[0] - drop[1]))
print("test accuracy without dropout: %.4f" % plain[2])
print("test accuracy with dropout:    %.4f" % drop[2])
