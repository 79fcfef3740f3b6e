#!/usr/bin/python3
"""How can I monitor my training? Three short runs of the digits
perceptron (784-256-128-10) with SGD: a learning rate far too high, far too
low and a good one. Prints each history and the diagnosis, checks that the
diagnosis names the right cause (exit status 1 when it does not) and plots
the good run's per-layer statistics per epoch (PNG)."""
import os
import sys

from _common import args, nnkit

a = args(__doc__, epochs=4)


def load(prefix):
    return nnkit.Dataset.load_idx(os.path.join(a.data, prefix + "-images-idx3-ubyte.gz"),
                                  os.path.join(a.data, prefix + "-labels-idx1-ubyte.gz"),
                                  10)


train, val = load("train").split(0.1, seed=a.seed)
norm = nnkit.Normalizer("channel_mean", with_std=1).fit(train)  # training split only
for ds in (train, val):
    norm.apply(ds)
print("digits: %d train, %d validation samples from %s; %d epochs per run" %
      (len(train), len(val), a.data, a.epochs))


def print_history(hist):
    print("  epoch   cost      train acc  val loss   val acc   lr        seconds")
    for e in range(len(hist)):
        print("  %5d   %-9.4g %-10.4f %-10.4g %-9.4f %-9.1e %.2f" % tuple(
            [e + 1] + [hist[k][e] for k in ("train_loss", "train_acc", "val_loss",
                                            "val_acc", "lr", "seconds")]))
    if hist.layer_stats and len(hist):
        print("  layers at epoch %d: act mean, act std, dead ReLUs, grad norm, "
              "update/weight" % len(hist))
        keys = ("act_mean", "act_std", "dead", "grad_norm", "update_ratio")
        for l in range(len(hist.layer_names)):
            print("    layer %d  %9.4f %9.4f %7.3f %10.3g %10.3g" % tuple(
                [l + 1] + [hist.layer_stats[k][-1][l] for k in keys]))
    b = hist.batch_losses
    if b:
        print("  %d batches; first losses %s, last %s" % (
            len(b), " ".join("%.4g" % v for v in b[:3]),
            " ".join("%.4g" % v for v in b[-3:])))


runs = [("too_high", 1.0, "lr_too_high", "oscillating"),
        ("too_low", 1e-5, "lr_too_low", "lr_too_low"),
        # trained long enough (--epochs), a good rate overfits: also right
        ("good", 0.05, "healthy", "overfitting")]
right = 0
for r, (name, lr, expect, also) in enumerate(runs):
    print("\n=== run %d: SGD, learning rate %g (%s) ===" % (r + 1, lr, name))
    net = nnkit.Net(train.sample_size, [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(128),
                                        nnkit.ReLU(), nnkit.Dense(10)], seed=a.seed)
    with nnkit.Optimizer("sgd", lr=lr) as opt, \
            nnkit.Trainer(net, opt, epochs=a.epochs, batch_size=32, seed=a.seed, verbose=1,
                          sanity=1, log=print) as tr:  # sanity 1: report, do not stop
        try:
            tr.fit(train, val)
        except nnkit.Diverged as e:
            print("fit stopped: %s" % e.message)
        hist = tr.history()
        print("history:")
        print_history(hist)
        csv = "monitor_%s.csv" % name
        tr.save_history(os.path.join(a.out, csv))
        print("history written to %s (draw it: nnkit.History.from_csv('%s')"
              ".plot('monitor_%s.png'))" % (csv, csv, name))
        if name == "good":
            path = os.path.join(a.out, "monitor_layers.png")
            try:
                hist.plot_layer_stats(path)
                print("wrote", path)
            except ImportError:
                print("(matplotlib is not installed: no PNG written)")
        d = tr.diagnose()
        print("diagnosis:\n%s" % d.report, end="")
        ok = d.verdicts[0][0] in (nnkit.verdict_name(expect), nnkit.verdict_name(also))
        right += ok
        print("expected: %s -> %s" % (nnkit.verdict_name(expect),
                                      "named correctly" if ok else "MISSED"))
print("\nthe diagnosis named the right cause in %d of 3 runs" % right)
sys.exit(0 if right == 3 else 1)
