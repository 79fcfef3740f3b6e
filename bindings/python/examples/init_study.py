#!/usr/bin/python3
"""The lecture's initialization study: 10 tanh layers of 500 units fed
N(0,1) inputs; per-layer activation mean/std and histograms (PNG)."""
import os
import random

from _common import args, nnkit, pyplot

a = args(__doc__)
rng = random.Random(a.seed)
x = [rng.gauss(0, 1) for _ in range(500 * 500)]
cases = [("std 0.01", ("normal", 0, 0.01), "tanh"), ("std 1.0", ("normal", 0, 1.0), "tanh"),
         ("xavier", ("xavier_normal",), "tanh"), ("he + relu", ("he_normal",), "relu")]
plt = pyplot()
if plt:
    fig, axes = plt.subplots(len(cases), 10, figsize=(20, 8), sharey="row")
for row, (name, init, act) in enumerate(cases):
    layers = []
    for _ in range(10):
        layers += [nnkit.Dense(500, weight_init=init), nnkit.Activation(act)]
    net = nnkit.Net(500, layers, seed=a.seed)
    net.training = False
    stats = net.layer_stats(x, stats=("act_mean", "act_std", "saturated"))
    acts = [2 * i + 1 for i in range(10)]
    print("%-10s std per layer: %s" % (name, " ".join("%.2e" % stats["act_std"][i]
                                                      for i in acts)))
    if act == "tanh":
        print("%-10s saturated (|a| > 0.99) at layer 10: %.0f%%" %
              (name, 100 * stats["saturated"][acts[-1]]))
    if plt:
        net.forward(x)
        lo, hi = (0.0, 4.0) if act == "relu" else (-1.0, 1.0)  # as examples/init_study.c
        w = (hi - lo) / 40
        for k, layer in enumerate(acts):
            counts = net.activation_histogram(layer, bins=40, lo=lo, hi=hi)
            axes[row][k].bar([lo + (i + 0.5) * w for i in range(40)], counts, width=w)
            axes[row][k].set_title("%s L%d" % (name, k + 1), fontsize=7)
if plt:
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "init_study.png"))
    print("wrote", os.path.join(a.out, "init_study.png"))
