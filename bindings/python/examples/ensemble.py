#!/usr/bin/python3
"""Model ensembles on Fashion-MNIST from Python, the twin of
examples/ensemble.c: a single 784-512-256-10 MLP with batch norm (whose run
also keeps an EMA of its weights), N independently seeded ones averaged
(nnkit.Ensemble), and a snapshot ensemble of one SGDR run
(fit(snapshots=5)), on the first 10,000 training images (--train); test
accuracy and training time of each. The same seed gives the C example's
accuracies. --quick: 3,000 training images, 2 epochs, 2 members."""
import time

from _common import args, load_digits, nnkit

CYCLES, BATCH = 5, 64


def extra(p):
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--train", type=int, default=10000, help="training images (0: all)")
    p.add_argument("--quick", action="store_true")
    p.set_defaults(data="/usr/share/datasets/fashion-mnist")


a = args(__doc__, epochs=20, extra=extra)
epochs, members, ntrain = (2, 2, 3000) if a.quick else (a.epochs, a.members, a.train)


train_all, test = load_digits(a.data)  # Fashion-MNIST has the same file names
train, val = train_all.split(0.1, seed=a.seed)
norm = nnkit.Normalizer("channel_mean", with_std=1).fit(train)
for ds in (train, val, test):
    norm.apply(ds)
if ntrain and ntrain < len(train):
    train = train.subset(range(ntrain))
print("ensemble.py: %d training and %d test images from %s; %d epochs per run" %
      (len(train), len(test), a.data, epochs))


def run(seed, snapshots=False, ema=0.0):
    net = nnkit.Net((784,), [nnkit.Dense(512), nnkit.BatchNorm(), nnkit.ReLU(),
                             nnkit.Dense(256), nnkit.BatchNorm(), nnkit.ReLU(),
                             nnkit.Dense(10)], seed=seed)
    steps = (len(train) + BATCH - 1) // BATCH * epochs
    opt = nnkit.Optimizer("sgd", lr=0.2 if snapshots else 0.05, momentum=0.9, nesterov=1)
    if snapshots:
        opt.set_schedule(nnkit.Schedule("cosine_restarts", per_batch=1,
                                        t_0=steps // CYCLES))
    else:
        opt.set_schedule(nnkit.Schedule("cosine", per_batch=1, t_max=steps))
    t0 = time.monotonic()
    net.fit(train, epochs=epochs, batch_size=BATCH, optimizer=opt, seed=seed,
            layer_stats=0, snapshots=CYCLES if snapshots else 0, ema_decay=ema)
    return net, time.monotonic() - t0


single, t_single = run(a.seed, ema=0.999)
acc_single = single.evaluate(test)[1]
acc_avg = single.averaged.evaluate(test)[1]
nets, t_seeded = [single], t_single
for m in range(1, members):
    net, t = run(a.seed + 1000 * m)
    nets.append(net)
    t_seeded += t
acc_seeded = nnkit.Ensemble(nets).evaluate(test)[1]
snap, t_snap = run(a.seed, snapshots=True)
acc_snap = snap.snapshot_ensemble.evaluate(test)[1]

print("\n%-38s %14s %14s" % ("method", "test accuracy", "training (s)"))
print("%-38s %14.4f %14.1f" % ("single model", acc_single, t_single))
print("%-38s %14.4f %14.1f" % ("%d independently seeded models" % members, acc_seeded,
                                t_seeded))
print("%-38s %14.4f %14.1f" % ("snapshot ensemble (%d of one run)" %
                                len(snap.snapshot_ensemble), acc_snap, t_snap))
print("%-38s %14.4f %14.1f" % ("weight averaging (EMA 0.999)", acc_avg, t_single))
print("test accuracy: %.4f" % max(acc_seeded, acc_snap))
