#!/usr/bin/python3
"""Choosing what to label by uncertainty, from Python: the twin of
examples/hard_mining.c. A 784-128-10 net trained on 200 labelled digits
(20 per class) scores the rest of the training digits by the margin
between its two likeliest classes; the 500 least certain are added (or
500 random ones), a fresh net is trained on each 700-digit set and tested
on the 2,000 test digits; 3 seeds, averaged. The same seeds give the C
example's figures. --quick: one seed, 8 epochs."""
from _common import args, load_digits, nnkit


def extra(p):
    p.add_argument("--quick", action="store_true", help="one seed, 8 epochs")


a = args(__doc__, epochs=40, extra=extra)
seeds, epochs = (1, 8) if a.quick else (3, a.epochs)


train_all, test = load_digits(a.data)
train, val = train_all.split(0.1, seed=a.seed)
norm = nnkit.Normalizer("channel_mean", with_std=1).fit(train)
for ds in (train, val, test):
    norm.apply(ds)
everything = nnkit.Dataset.concat([train, val])
n = len(everything)
labels = [int(v) for v in everything.labels]


def train_eval(ds, seed):
    net = nnkit.Net((784,), [nnkit.Dense(128), nnkit.ReLU(), nnkit.Dropout(0.2),
                             nnkit.Dense(10)], seed=seed)
    net.fit(ds, epochs=epochs, batch_size=32, optimizer=nnkit.Optimizer("adam", lr=1e-3),
            seed=seed)
    return net, net.evaluate(test)[1]


def shuffled(seed):
    """The C example's xorshift shuffle of 0..n-1."""
    mask = (1 << 64) - 1
    r = (seed * 0x9E3779B97F4A7C15 + 1) & mask
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        r ^= (r << 13) & mask
        r ^= r >> 7
        r ^= (r << 17) & mask
        j = r % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


print("hard_mining.py: %d training digits, %d test digits; %d seed(s), %d epochs" %
      (n, len(test), seeds, epochs))
print("%6s %10s %14s %14s" % ("seed", "seed set", "+500 random", "+500 uncertain"))
sums = [0.0, 0.0, 0.0]
for s in range(seeds):
    seed = a.seed + 100 * s
    per, seed_ix, pool_ix = [0] * 10, [], []
    for k in shuffled(seed):
        if per[labels[k]] < 20:
            per[labels[k]] += 1
            seed_ix.append(k)
        else:
            pool_ix.append(k)
    seed_set, pool = everything.subset(seed_ix), everything.subset(pool_ix)
    net, acc_seed = train_eval(seed_set, seed)
    scores = nnkit.mining.uncertainty(net, pool.x, kind="margin")
    chosen = nnkit.mining.hardest(pool, scores, 500)
    _, acc_unc = train_eval(nnkit.Dataset.concat([seed_set, chosen]), seed)
    _, acc_rand = train_eval(nnkit.Dataset.concat([seed_set,
                                                   everything.subset(pool_ix[:500])]), seed)
    print("%6d %10.4f %14.4f %14.4f" % (seed, acc_seed, acc_rand, acc_unc))
    for i, v in enumerate((acc_seed, acc_rand, acc_unc)):
        sums[i] += v
mean = [v / seeds for v in sums]
print("%6s %10.4f %14.4f %14.4f" % ("mean", mean[0], mean[1], mean[2]))
print("uncertainty-chosen minus random: %+.4f (mean of %d seed(s))" %
      (mean[2] - mean[1], seeds))
print("random test accuracy: %.4f" % mean[1])
print("test accuracy: %.4f" % mean[2])
