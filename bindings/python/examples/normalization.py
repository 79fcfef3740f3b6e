#!/usr/bin/python3
"""Can I feed raw data into the model? One 784-128-10 ReLU net (same seed,
same batches) trained on raw, zero-mean, standardized, PCA- and
ZCA-whitened digits by a loop written in Python over a batch pipeline;
normalizers are fitted on the training split only. Training loss per epoch,
final accuracies and the loss curves (PNG)."""
import math
import os
import time

from _common import args, load_digits, nnkit, plot_curves

a = args(__doc__, epochs=10)
full, test = load_digits(a.data)
train, val = full.split(0.1, seed=a.seed)  # stratified; normalizers see only train
print("normalization: %d train, %d validation, %d test digits from %s" %
      (len(train), len(val), len(test), a.data))
print("net: dense 128, ReLU, dense 10; SGD lr 0.01 momentum 0.9, batch 64, %d epochs, "
      "seed %d, %d thread(s)\n" % (a.epochs, a.seed, nnkit.get_num_threads()))

# Pixels are 0..255: an epsilon of 0.1 on the [0, 1] scale keeps
# near-constant directions (blank borders) from being blown up.
EPS = 0.1 * 255 * 255
variants = [("raw 0..255", None, {}), ("zero-mean", "mean_image", {}),
            ("standardized", "standardize", {}),
            ("PCA-whitened", "pca_whiten", dict(variance=0.95, epsilon=EPS)),
            ("ZCA-whitened", "zca_whiten", dict(epsilon=EPS))]


def normalized(ds, nz):
    """A normalized copy of ds (ds itself without a normalizer)."""
    return nz.apply(nnkit.Dataset.concat([ds])) if nz else ds


def run(kind, params):
    r = dict(losses=[], diverged=False, fit_seconds=0.0, val_acc=math.nan,
             test_acc=math.nan)
    nz = None
    if kind:
        nz = nnkit.Normalizer(kind, **params)
        t0 = time.monotonic()
        nz.fit(train)
        r["fit_seconds"] = time.monotonic() - t0
    pipe = nnkit.Pipeline(train, normalizer=nz, batch_size=64, seed=a.seed)
    r["size"] = pipe.sample_size
    net = nnkit.Net(pipe.sample_size, [nnkit.Dense(128), nnkit.ReLU(), nnkit.Dense(10)],
                    seed=a.seed)
    opt = nnkit.Optimizer("sgd", lr=0.01, momentum=0.9)
    t0 = time.monotonic()
    for e in range(a.epochs):
        total = 0.0
        for x, y in pipe.batches(e):
            net.forward(x)
            loss = net.backward(labels=y)
            if not math.isfinite(loss):
                r["diverged"] = True
                break
            opt.step(net)
            total += loss * len(y)
        r["losses"].append(math.nan if r["diverged"] else total / len(train))
        if r["diverged"]:
            break
    r["train_seconds"] = time.monotonic() - t0
    if not r["diverged"]:
        r["val_acc"] = net.evaluate(normalized(val, nz))[1]
        r["test_acc"] = net.evaluate(normalized(test, nz))[1]
    return r


results = []
for name, kind, params in variants:
    r = run(kind, params)
    results.append(r)
    print("%-13s inputs of %3d values: normalizer fitted in %5.2f s, trained in %5.2f s%s"
          % (name, r["size"], r["fit_seconds"], r["train_seconds"],
             "  (DIVERGED: the cost became NaN/inf)" if r["diverged"] else ""),
          flush=True)

print("\ntraining loss after each epoch\nepoch" +
      "".join(" %13s" % name for name, _, _ in variants))
for e in range(a.epochs):
    row = "%5d" % (e + 1)
    for r in results:
        if e >= len(r["losses"]) or math.isnan(r["losses"][e]):
            row += " %13s" % ("diverged" if e < len(r["losses"]) else "-")
        elif r["losses"][e] < 1e5:
            row += " %13.4f" % r["losses"][e]
        else:
            row += " %13.3e" % r["losses"][e]
    print(row)
shown = [v for r in results for v in r["losses"] if v < 1e5]  # NaN compares False
plot_curves(os.path.join(a.out, "normalization_curves.png"),
            [(name + (" (diverged)" if r["diverged"] else ""), r["losses"], ".-")
             for (name, _, _), r in zip(variants, results)],
            ylabel="training loss", logy=True, title="784-128-10, SGD lr 0.01 momentum 0.9",
            ylim=(0.8 * min(shown), 1.5 * max(shown)) if shown else None)
print("\nfinal accuracy\n     " + "".join(" %13s" % name for name, _, _ in variants))
print("val  " + "".join(" %13.4f" % r["val_acc"] for r in results))
print("test " + "".join(" %13.4f" % r["test_acc"] for r in results))
