#!/usr/bin/python3
"""Learning-rate range test on the digits: the loss-vs-lr curve (PNG) and
the suggested rate, then training with it."""
import os

from _common import args, digits, nnkit, pyplot

a = args(__doc__, epochs=10)
train, test = digits(a.data)
net = nnkit.Net((1, 28, 28), [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(10)],
                seed=a.seed)
opt = nnkit.Optimizer("sgd", lr=0.01, momentum=0.9)
with nnkit.Trainer(net, opt, epochs=a.epochs, batch_size=32, seed=a.seed) as tr:
    lr, lrs, losses = tr.find_lr(train, 1e-6, 10.0, 100)
    print("suggested learning rate: %.3g" % lr)
    plt = pyplot()
    if plt:
        plt.semilogx(lrs, losses)
        plt.axvline(lr, color="r")
        plt.xlabel("learning rate")
        plt.ylabel("loss")
        plt.savefig(os.path.join(a.out, "lr_finder.png"))
        print("wrote", os.path.join(a.out, "lr_finder.png"))
    opt["lr"] = lr
    tr.fit(train)
print("test accuracy: %.4f" % net.evaluate(test)[1])
