#!/usr/bin/python3
"""Twin of examples/init_study.c, the lecture's weight-initialization
experiment: 10 layers of 500 units fed 1000 inputs from N(0, 1) (the same
Box-Muller stream as the C example), initialized with weights of std 0.01,
std 1.0 and Xavier (tanh), and He (ReLU). Prints the same per-layer
activation statistics and the same three conclusions, writes the same
histogram CSV files, and draws them (init_study.png)."""
import math
import os

from _common import args, nnkit, pyplot

DEPTH, WIDTH, SAMPLES = 10, 500, 1000
a = args(__doc__, epochs=1, threads=0)


def inputs(seed):
    """The C example's N(0, 1) inputs: Box-Muller on a 64-bit LCG."""
    import array
    mask = (1 << 64) - 1
    s = (seed * 2654435761 + 1) & mask
    out = array.array("f", bytes(4 * SAMPLES * WIDTH))
    for i in range(0, SAMPLES * WIDTH, 2):
        u = []
        for _ in range(2):
            s = (s * 6364136223846793005 + 1442695040888963407) & mask
            u.append(((s >> 11) + 0.5) / 9007199254740992.0)
        r = math.sqrt(-2 * math.log(u[0]))
        out[i] = r * math.cos(6.283185307179586 * u[1])
        out[i + 1] = r * math.sin(6.283185307179586 * u[1])
    return out


CASES = [("std0.01", "tanh, weights N(0, 0.01^2)", "tanh", ("normal", 0, 0.01)),
         ("std1.0", "tanh, weights N(0, 1)", "tanh", ("normal", 0, 1.0)),
         ("xavier", "tanh, Xavier normal", "tanh", ("xavier_normal", 1, 0)),
         ("he", "ReLU, He normal", "relu", ("he_normal", 0, 0))]

x = inputs(a.seed)
print("%d layers of %d units, %d inputs from N(0, 1)" % (DEPTH, WIDTH, SAMPLES))
stats, csvs = [], []
for name, title, act, init in CASES:
    print("\n%s" % title)
    layers = []
    for _ in range(DEPTH):
        layers += [nnkit.Dense(WIDTH, weight_init=init), nnkit.Activation(act)]
    net = nnkit.Net(WIDTH, layers, seed=a.seed)
    got = net.layer_stats(x, stats=("act_mean", "act_std", "saturated", "dead"))
    relu = act == "relu"
    path = os.path.join(a.out, "init_study_%s.csv" % name) if a.out != "." else \
        "init_study_%s.csv" % name
    net.save_histograms_csv(path, 40, 0 if relu else -1, 4 if relu else 1)
    csvs.append(path)
    print("  histograms of all %d layers written to %s (draw them: "
          "nnkit.plot.histograms_csv('%s', 'init_study_%s.png'))" % (2 * DEPTH, path, path,
                                                                     name))
    rows = [[got[k][2 * l + 1] for k in ("act_mean", "act_std", "saturated", "dead")]
            for l in range(DEPTH)]
    stats.append(rows)
    print("  layer   mean        std         %s" % ("dead" if relu else "|a| > 0.99"))
    for l, r in enumerate(rows):
        print("  %5d   %+.3e  %.3e   %5.1f%%" % (l + 1, r[0], r[1], 100 * r[3 if relu else 2]))
    net.close()

# The lecture's three observations, checked.
collapse = stats[0][DEPTH - 1][1] / stats[0][0][1]
sat = 0.0
for l in range(DEPTH):
    sat += stats[1][l][2] / DEPTH
xav = stats[2][DEPTH - 1][1] / stats[2][0][1]
he = stats[3][DEPTH - 1][1] / stats[3][0][1]
ok1, ok2, ok3 = collapse < 1e-3, sat > 0.5, xav > 0.1 and 0.1 < he < 10
print("\nstd 0.01: the std at layer %d is %.1e of layer 1's: the activations collapse to "
      "zero %s" % (DEPTH, collapse, "(shown)" if ok1 else "(NOT shown)"))
print("std 1.0:  %.0f%% of the tanh outputs have |a| > 0.99: the units saturate %s"
      % (100 * sat, "(shown)" if ok2 else "(NOT shown)"))
print("Xavier:   the std at layer %d is %.2f of layer 1's; He with ReLU: %.2f: stable %s"
      % (DEPTH, xav, he, "(shown)" if ok3 else "(NOT shown)"))
if pyplot():
    for (name, *_), path in zip(CASES, csvs):
        png = os.path.join(a.out, "init_study_%s.png" % name)
        nnkit.plot.histograms_csv(path, png)
        print("wrote", png)
raise SystemExit(0 if ok1 and ok2 and ok3 else 1)
