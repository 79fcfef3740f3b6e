#!/usr/bin/python3
"""SGD, momentum, RMSProp and Adam on an ill-conditioned quadratic
f = 0.5 (x^2 + 25 y^2): steps to reach f < 1e-3 and trajectories (PNG)."""
import os

from _common import args, nnkit, pyplot

a = args(__doc__)


def run(kind, **hp):
    # A net whose two weights are the point (x, y); we write the gradient.
    net = nnkit.Net(1, [nnkit.Dense(2)], seed=0)
    p, g = net.params, net.grads
    p[0], p[1], p[2], p[3] = -4.0, 1.0, 0.0, 0.0
    opt = nnkit.Optimizer(kind, **hp)
    path, reached = [(p[0], p[1])], None
    for step in range(1, 401):
        g[0], g[1], g[2], g[3] = p[0], 25.0 * p[1], 0.0, 0.0
        opt.step(net)
        path.append((p[0], p[1]))
        if reached is None and 0.5 * (p[0] ** 2 + 25 * p[1] ** 2) < 1e-3:
            reached = step
    return path, reached


plt = pyplot()
for label, kind, hp in [("SGD", "sgd", dict(lr=0.075)),
                        ("SGD+momentum", "sgd", dict(lr=0.02, momentum=0.9)),
                        ("RMSProp", "rmsprop", dict(lr=0.05)),
                        ("Adam", "adam", dict(lr=0.1))]:
    path, reached = run(kind, **hp)
    print("%-13s %s" % (label, "reaches f < 1e-3 in %d steps" % reached if reached
                        else "never reaches f < 1e-3 in 400 steps"))
    if plt:
        plt.plot([q[0] for q in path], [q[1] for q in path], ".-", label=label, ms=2)
if plt:
    plt.legend()
    plt.title("f = 0.5 (x^2 + 25 y^2)")
    plt.savefig(os.path.join(a.out, "optimizers.png"))
    print("wrote", os.path.join(a.out, "optimizers.png"))
