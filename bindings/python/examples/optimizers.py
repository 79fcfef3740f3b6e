#!/usr/bin/python3
"""Twin of examples/optimizers.c: SGD, SGD + momentum, RMSProp and Adam on an
ill-conditioned quadratic L = (0.05 x^2 + 5 y^2) / 2 and on a saddle
L = x^2 + (y^2 - 1)^2 / 10, with nnkit's optimizers moving the point (the
weights of a dense layer of one input and two units; the gradient is
written into net.grads). Prints the C example's table (steps to loss <
1e-3, loss and point after all steps), writes the same trajectories as CSV
and draws them (optimizers.png)."""
import math
import os

from _common import args, nnkit, pyplot

a = args(__doc__, epochs=400)


def quadratic(x, y):
    return 0.5 * (0.05 * x * x + 5.0 * y * y), 0.05 * x, 5.0 * y


def saddle(x, y):
    q = y * y - 1.0
    return x * x + 0.1 * q * q, 2.0 * x, 0.4 * y * (y * y - 1.0)


LANDSCAPES = [
    ("quadratic", -4.0, 1.0, quadratic,
     "ill-conditioned quadratic L = (0.05 x^2 + 5 y^2) / 2, start (-4, 1), L0 = 2.9"),
    ("saddle", 1.5, 1e-4, saddle,
     "saddle L = x^2 + (y^2 - 1)^2 / 10, start (1.5, 1e-4) next to the saddle at (0, 0)"),
]
# SGD twice: with the learning rate momentum uses, and with one just under
# the steep axis' stability limit 2/5, where it jitters across y.
METHODS = [
    ("sgd", "SGD (lr 0.1)", "sgd", dict(lr=0.1)),
    ("sgd-fast", "SGD (lr 0.38, jitters along y)", "sgd", dict(lr=0.38)),
    ("momentum", "SGD+momentum (lr 0.1, rho 0.9)", "sgd", dict(lr=0.1, momentum=0.9)),
    ("rmsprop", "RMSProp (lr 0.05, gamma 0.99)", "rmsprop", dict(lr=0.05)),
    ("adam", "Adam (lr 0.1, betas 0.9/0.999)", "adam", dict(lr=0.1)),
]


def run(x0, y0, loss_fn, kind, hp, steps, csv_path):
    """The C example's run(): (first step with loss < 1e-3 or None, final
    loss, x, y, trajectory)."""
    net = nnkit.Net(1, [nnkit.Dense(2)], seed=1)
    opt = nnkit.Optimizer(kind, **hp)
    p, g = net.params, net.grads
    p[0], p[1], p[2], p[3] = x0, y0, 0.0, 0.0  # W[0][0], W[1][0] are the point
    reached, path = None, []
    with open(csv_path, "w") as csv:
        csv.write("step,x,y,loss\n")
        s = 0
        while True:
            x, y = float(p[0]), float(p[1])
            loss, gx, gy = loss_fn(x, y)
            csv.write("%d,%.9g,%.9g,%.9g\n" % (s, x, y, loss))
            path.append((x, y))
            if reached is None and loss < 1e-3:
                reached = s
            if s == steps or not math.isfinite(loss):
                break
            g[0], g[1], g[2], g[3] = gx, gy, 0.0, 0.0
            opt.step(net)
            s += 1
    del p, g
    return reached, loss, float(path[-1][0]), float(path[-1][1]), path


plt = pyplot()
fig = plt.figure(figsize=(12, 5)) if plt else None
for li, (name, x0, y0, loss_fn, title) in enumerate(LANDSCAPES):
    print(title)
    print("  %-34s %-24s %s" % ("optimizer", "steps to loss < 1e-3",
                                "after all steps: loss at (x, y)"))
    ax = fig.add_subplot(1, 2, li + 1) if fig else None
    for key, label, kind, hp in METHODS:
        reached, fl, fx, fy, path = run(x0, y0, loss_fn, kind, hp, a.epochs,
                                        os.path.join(a.out, "%s-%s.csv" % (name, key)))
        steps = "%d" % reached if reached is not None else "never in %d" % a.epochs
        print("  %-34s %-24s %.3g at (%.3g, %.3g)" % (label, steps, fl, fx, fy))
        if ax:
            ax.plot([q[0] for q in path], [q[1] for q in path], ".-", ms=2, label=label)
    if ax:
        ax.set_title(title.split(",")[0], fontsize=9)
        ax.legend(fontsize=7)
print("trajectories: %s/{quadratic,saddle}-{sgd,sgd-fast,momentum,rmsprop,adam}.csv "
      "(step,x,y,loss)" % a.out)
print("draw them: python3 bindings/python/examples/optimizers.py, the Python twin, "
      "runs the same steps and draws the trajectories")
if fig:
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "optimizers.png"))
    print("wrote", os.path.join(a.out, "optimizers.png"))
