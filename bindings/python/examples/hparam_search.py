#!/usr/bin/python3
"""The lecture's coarse-to-fine hyperparameter search from Python, the twin
of examples/hparam_search.c: the learning rate and the L2 strength of the
digits perceptron (784-256-128-10, SGD + momentum 0.9), sampled in log space;
a coarse phase of one epoch per trial, then a fine phase in ranges narrowed
around the best. The objective is a Python function (it builds, trains and
scores the trial's net and reports each epoch); with the same seed its
trials score what the C example's built-in objective scores, and the best,
retrained on all training digits, has the same test accuracy. Writes the
score-against-each-dimension plot to hparam_search.png (matplotlib)."""
import os

from _common import args, nnkit


def extra(p):
    p.add_argument("--quick", action="store_true",
                   help="a quarter of the training digits and fewer trials")
    p.add_argument("--workers", type=int, default=2)


a = args(__doc__, epochs=20, extra=extra)


def load(prefix):
    return nnkit.Dataset.load_idx(os.path.join(a.data, prefix + "-images-idx3-ubyte.gz"),
                                  os.path.join(a.data, prefix + "-labels-idx1-ubyte.gz"))


train_all, test = load("train"), load("t10k")
train_split, val_split = train_all.split(0.1, seed=a.seed)
norm = nnkit.Normalizer("channel_mean", with_std=1).fit(train_split)
for ds in (train_split, val_split, test):
    norm.apply(ds)
nt, nv = len(train_split), len(val_split)
if a.quick:
    nt, nv = nt // 4, nv // 2
train, val = train_split.subset(range(nt)), val_split.subset(range(nv))
print("hparam_search: %d training and %d validation digits, %d worker(s)" %
      (nt, nv, a.workers))


def mlp(seed):
    return nnkit.Net((784,), [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(128),
                              nnkit.ReLU(), nnkit.Dense(10)], seed=seed)


def sgd(lr=0.01, reg=0.0):
    opt = nnkit.Optimizer("sgd", lr=lr, momentum=0.9)
    opt.add_regularizer(nnkit.Regularizer("l2", reg))
    return opt


def objective(params, trial):
    """What the C example's built-in objective does, in Python."""
    net, opt = mlp(trial.seed), sgd()
    tr = nnkit.Trainer(net, opt, epochs=trial.epochs, seed=trial.seed, layer_stats=0)
    trial.apply(optimizer=opt)  # the trial's lr and L2 strength
    tr.add_callback(lambda epoch, t: trial.report(epoch, t.metric(epoch, "val_acc")))
    try:
        tr.fit(train, val)
        return tr.metric(tr.epochs_done - 1, "val_acc")
    finally:
        tr.close()
        net.close()
        opt.close()


space = {"lr": nnkit.log_uniform(1e-4, 1, key=("optimizer", "sgd", "lr")),
         "reg": nnkit.log_uniform(1e-5, 1, key=("regularizer", "l2", "strength"))}
results = nnkit.search(space, objective, strategy="coarse_fine", workers=a.workers,
                       seed=a.seed, trials=8 if a.quick else 20, epochs=1,
                       top_k=3 if a.quick else 5, fine_trials=4 if a.quick else 10,
                       fine_epochs=2 if a.quick else 5, score_name="val_acc",
                       verbose=True)
best = results.best
print("best: trial %d, val_acc %.4f, lr %e, reg %e" %
      (best["trial"] + 1, best["val_acc"], best["lr"], best["reg"]))
png = results.plot(os.path.join(a.out, "hparam_search.png"))
print("wrote %s" % png if png else "(matplotlib is not installed: no PNG written)")

everything = nnkit.Dataset.concat([train_split, val_split])
net, opt = mlp(a.seed), sgd(best["lr"], best["reg"])
epochs = 2 if a.quick else a.epochs
with nnkit.Trainer(net, opt, epochs=epochs, seed=a.seed) as tr:
    tr.fit(everything)
loss, acc = net.evaluate(test)
print("retrained on all %d training digits for %d epochs" % (len(everything), epochs))
print("test accuracy: %.4f" % acc)
