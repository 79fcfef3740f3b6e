#!/usr/bin/python3
"""Three short runs on the digits (lr far too high, far too low, good) and
the diagnosis of each."""
from _common import args, digits, nnkit

a = args(__doc__, epochs=4)
train_all, _ = digits(a.data)
train, val = train_all.split(0.2, seed=a.seed)
for name, lr in [("too high", 1.0), ("too low", 1e-5), ("good", 0.05)]:
    net = nnkit.Net((1, 28, 28), [nnkit.Dense(128), nnkit.ReLU(), nnkit.Dense(10)],
                    seed=a.seed)
    with nnkit.Optimizer("sgd", lr=lr) as opt, \
            nnkit.Trainer(net, opt, epochs=a.epochs, batch_size=32) as tr:
        try:
            tr.fit(train, val)
        except nnkit.Diverged as e:
            print("[%s] %s" % (name, e.message))
        print("[lr %g, %s] %s" % (lr, name, tr.diagnose().report))
