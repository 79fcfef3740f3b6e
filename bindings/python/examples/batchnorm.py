#!/usr/bin/python3
"""Robustness against poor initialization: the same 8-layer network
(784 -> 7 x [dense 128, ReLU] -> dense 10, every weight ~ N(0, 0.01^2))
trained with and without batch normalization; both test accuracies and
the loss curves (PNG)."""
import math
import os

from _common import args, load_digits, nnkit, plot_curves, standardize

a = args(__doc__, epochs=10)
train, test = load_digits(a.data)
standardize(train, test)  # inputs are well scaled: the trouble is the weights
poor = ("normal", 0, 0.01)
lr = 0.05


def build(bn):
    layers = []
    for _ in range(7):
        layers.append(nnkit.Dense(128, weight_init=poor))
        if bn:
            layers.append(nnkit.BatchNorm(0.1, 1e-5))
        layers.append(nnkit.ReLU())
    layers.append(nnkit.Dense(10, weight_init=poor))
    return nnkit.Net(train.sample_size, layers, seed=a.seed)


plain, bn = build(False), build(True)
print("batchnorm: %d training and %d test digits from %s; %d thread(s)" %
      (len(train), len(test), a.data, nnkit.get_num_threads()))
print("network: 784 -> 7 x [dense 128, ReLU] -> dense 10, every weight ~ N(0, 0.01^2); "
      "SGD lr %g, batch 64, %d epochs" % (lr, a.epochs))
print("(validation lines below are on the test set)")


def run(net):
    hist = net.fit(train, test, epochs=a.epochs, batch_size=64,
                   optimizer=nnkit.Optimizer("sgd", lr=lr), seed=a.seed, verbose=True,
                   log=print)
    return hist, net.evaluate(test)[1]


print("\n-- without batch normalization --")
h_plain, acc_plain = run(plain)
print("\n-- with batch normalization after each hidden dense layer --")
for i in range(3):
    print("  layer %d: %s" % (i, bn.describe(i)))
print("  ...")
h_bn, acc_bn = run(bn)

print()
plot_curves(os.path.join(a.out, "batchnorm_curves.png"),
            [("without BN, train", h_plain["train_loss"], "C0--"),
             ("without BN, test", h_plain["val_loss"], "C0-"),
             ("with BN, train", h_bn["train_loss"], "C1--"),
             ("with BN, test", h_bn["val_loss"], "C1-")],
            title="784-128x7-10 ReLU, weights ~ N(0, 0.01^2)")
print("first-epoch cost: without %.4f, with %.4f (chance: ln 10 = %.4f)" %
      (h_plain["train_loss"][0], h_bn["train_loss"][0], math.log(10.0)))
print("test accuracy without batch norm: %.4f%s" %
      (acc_plain, " (stalled at chance)" if acc_plain < 0.2 else ""))
print("test accuracy with batch norm:    %.4f" % acc_bn)
