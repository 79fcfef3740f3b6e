#!/usr/bin/python3
"""Can we use convnets for small data sets? Transfer learning on the digits
(the twin of examples/transfer.c: same data, nets, settings and seeds).

A small convnet is pretrained on the digits 0-4. The new task is the digits
5-9 from only 50 labelled images per class, three ways: (a) from scratch,
(b) the pretrained conv stack's outputs ("CNN codes", Net.features) + a
linear classifier, (c) fine-tuning: the saved pretrained net loaded, cut
before its head (Net.cut), given a new head, its conv layers frozen.
Prints the test accuracies per seed and their means; a bar chart (PNG).
--epochs sets the pretraining epochs."""
import os
import tempfile
import time

from _common import args, load_digits, nnkit, pyplot, standardize

PER_CLASS, NUM_SEEDS = 50, 5
CODES_LAYER, HEAD_LAYER, CONV_LAYERS = 8, 12, 8
PRE_LR, SCRATCH_LR, LINEAR_LR, FINETUNE_LR, MOMENTUM = 0.02, 0.005, 0.01, 0.005, 0.9
SCRATCH_EPOCHS, LINEAR_EPOCHS, FINETUNE_EPOCHS = 40, 40, 40
PRE_BATCH, SMALL_BATCH = 32, 10
MASK = (1 << 64) - 1


def splitmix64(state):
    """(new state, draw): the C example's generator."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def digit_range(src, lo, per_class=0, seed=0):
    """The samples labelled lo..lo+4, relabelled 0..4: all of them in file
    order, or the first per_class of each class in a seeded shuffle."""
    labels = list(src.labels)
    order = list(range(len(labels)))
    if per_class:  # Fisher-Yates, as in the C example
        s = seed
        for i in range(len(order) - 1, 0, -1):
            s, r = splitmix64(s)
            j = r % (i + 1)
            order[i], order[j] = order[j], order[i]
    taken, pick = [0] * 5, []
    for i in order:
        c = labels[i] - lo
        if 0 <= c < 5 and not (per_class and taken[c] == per_class):
            taken[c] += 1
            pick.append(i)
    with src.subset(pick) as sub:
        return nnkit.Dataset(sub.x, [labels[i] - lo for i in pick], num_classes=5)


def make_cnn(shape, seed):
    return nnkit.Net(shape, [
        nnkit.Conv2D(16, 3, bias=False), nnkit.BatchNorm(0.1, 1e-5), nnkit.ReLU(),
        nnkit.MaxPool2D(2),
        nnkit.Conv2D(32, 3, bias=False), nnkit.BatchNorm(0.1, 1e-5), nnkit.ReLU(),
        nnkit.MaxPool2D(2),
        nnkit.Flatten(), nnkit.Dense(64), nnkit.ReLU(), nnkit.Dropout(0.5), nnkit.Dense(5)],
        seed=seed)


def train(net, ds, test, lr, batch, epochs, seed):
    """SGD + momentum (a fresh optimizer each time); the test accuracy."""
    net.fit(ds, epochs=epochs, batch_size=batch, seed=seed,
            optimizer=nnkit.Optimizer("sgd", lr=lr, momentum=MOMENTUM))
    return net.evaluate(test)[1]


a = args(__doc__, epochs=3, threads=1)
t0 = time.monotonic()
full, test = load_digits(a.data)
standardize(full, test)  # the training images' pixel mean and std
pre, pre_test, new_test = digit_range(full, 0), digit_range(test, 0), digit_range(test, 5)

print("transfer: can we use convnets for small data sets?\n")
print("The old task: digits 0-4, %d training images. The new task: digits 5-9 with only\n"
      "%d labelled images per class (%d in all), tested on all %d test images of 5-9.\n"
      "%d thread(s).\n" % (len(pre), PER_CLASS, 5 * PER_CLASS, len(new_test),
                           nnkit.get_num_threads()))

net = make_cnn(pre.shape, a.seed)
for i, text in enumerate(net.describe()):
    print("  layer %2d: %s" % (i, text))
print("pretraining on digits 0-4: %d epochs, SGD lr %g momentum %g, batch %d" %
      (a.epochs, PRE_LR, MOMENTUM, PRE_BATCH))
tp = time.monotonic()
pre_acc = train(net, pre, pre_test, PRE_LR, PRE_BATCH, a.epochs, a.seed)
print("pretrained net: test accuracy %.4f on digits 0-4 (%.1f s)\n" %
      (pre_acc, time.monotonic() - tp))

print("new task: digits 5-9 from %d images per class" % PER_CLASS)
print("  (a) from scratch: the same net, %d epochs, lr %g, batch %d" %
      (SCRATCH_EPOCHS, SCRATCH_LR, SMALL_BATCH))
print("  (b) CNN codes (layer %d, %s) + a linear classifier: %d epochs, lr %g" %
      (CODES_LAYER, net.describe(CODES_LAYER), LINEAR_EPOCHS, LINEAR_LR))
print("  (c) fine-tuning: the pretrained net cut before layer %d, a new dense 5 head,\n"
      "      layers 0-%d frozen; %d epochs, lr %g" %
      (HEAD_LAYER, CONV_LAYERS - 1, FINETUNE_EPOCHS, FINETUNE_LR))
print("  (each seed draws other images and another initialization)\n")
print("  seed   (a) scratch   (b) codes+linear   (c) fine-tuned")

rows = []
with tempfile.TemporaryDirectory() as tmp:
    model = os.path.join(tmp, "pretrained.safetensors")
    net.save(model)
    test_codes = net.features(new_test, CODES_LAYER, dataset=True)
    for k in range(NUM_SEEDS):
        seed = a.seed + k
        small = digit_range(full, 5, PER_CLASS, seed)
        # (a) from scratch
        acc_a = train(make_cnn(small.shape, seed + 100), small, new_test, SCRATCH_LR,
                      SMALL_BATCH, SCRATCH_EPOCHS, seed)
        # (b) CNN codes + a linear classifier
        codes = net.features(small, CODES_LAYER, dataset=True)
        linear = nnkit.Net(codes.sample_size, [nnkit.Dense(5)], seed=seed + 200)
        acc_b = train(linear, codes, test_codes, LINEAR_LR, SMALL_BATCH, LINEAR_EPOCHS,
                      seed)
        # (c) fine-tuning: load, cut, a new head, freeze the conv layers, train
        tuned = nnkit.Net.load(model).cut(HEAD_LAYER).add(nnkit.Dense(5))
        for i in range(CONV_LAYERS):
            tuned.set_trainable(i, False)
        acc_c = train(tuned, small, new_test, FINETUNE_LR, SMALL_BATCH, FINETUNE_EPOCHS,
                      seed)
        rows.append((acc_a, acc_b, acc_c))
        print("  %4d   %11.4f   %16.4f   %14.4f" % (seed, acc_a, acc_b, acc_c), flush=True)

means = [sum(r[j] for r in rows) / NUM_SEEDS for j in range(3)]
print("  mean   %11.4f   %16.4f   %14.4f\n" % tuple(means))
print("against training from scratch, on average: CNN codes + linear %+.1f points,\n"
      "fine-tuning %+.1f points." % (100 * (means[1] - means[0]), 100 * (means[2] - means[0])))
print("The pretrained features were learned from other digits only, yet a linear\n"
      "classifier on them needs no convolution training at all. How much transfer\n"
      "gains depends on how far the new task is from the old one and on how much\n"
      "a net can learn from the small set alone: 250 clean digits already take a\n"
      "convnet with batch normalization a long way.")
plt = pyplot()
if plt:
    fig, ax = plt.subplots(figsize=(6, 4))
    names = ["(a) scratch", "(b) codes + linear", "(c) fine-tuned"]
    ax.bar(names, means, color=["tab:gray", "tab:blue", "tab:green"])
    for j in range(3):
        ax.plot([j] * NUM_SEEDS, [r[j] for r in rows], "k.", label="seeds" if j == 0 else None)
    ax.set_ylim(max(0.0, min(min(r) for r in rows) - 0.05), 1.0)
    ax.set_ylabel("test accuracy on digits 5-9")
    ax.set_title("%d labelled images per class" % PER_CLASS)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(a.out, "transfer_accuracies.png")
    fig.savefig(path)
    plt.close(fig)
    print("wrote", path)
print("total time %.1f s" % (time.monotonic() - t0))
