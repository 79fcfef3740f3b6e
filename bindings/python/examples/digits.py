#!/usr/bin/python3
"""The handwritten-digits case study from Python, the twin of
examples/digits.c: the same stratified 10% validation split, the same
normalizer fitted on the training split only, the same 784-256-128-10 ReLU
net with dropout 0.2, SGD + momentum 0.9 with a cosine schedule, early stopping on the
validation accuracy. With the same seed, --predictions writes the same file
as the C example, bit for bit. Loss curves are written as PNG. With --save
FILE the model and its normalizer go to a safetensors file, are loaded back
and must predict the same classes on the raw test digits."""
import os

from _common import args, nnkit


def extra(p):
    p.add_argument("--predictions", help="write the test set's predicted classes here")
    p.add_argument("--save", help="write the model and its normalizer here, then reload them")


a = args(__doc__, epochs=20, extra=extra)


def load(prefix):
    return nnkit.Dataset.load_idx(os.path.join(a.data, prefix + "-images-idx3-ubyte.gz"),
                                  os.path.join(a.data, prefix + "-labels-idx1-ubyte.gz"))


train_all, test = load("train"), load("t10k")
train, val = train_all.split(0.1, seed=a.seed)
# Statistics of the training split only, applied unchanged to the rest.
norm = nnkit.Normalizer("channel_mean", with_std=1).fit(train)
for ds in (train, val, test):
    norm.apply(ds)
net = nnkit.Net((784,), [nnkit.Dropout(0.2), nnkit.Dense(256), nnkit.ReLU(),
                         nnkit.Dropout(0.2), nnkit.Dense(128), nnkit.ReLU(),
                         nnkit.Dropout(0.2), nnkit.Dense(10)], seed=a.seed)
opt = nnkit.Optimizer("sgd", lr=0.02, momentum=0.9)
opt.set_schedule(nnkit.Schedule("cosine", t_max=a.epochs))
hist = net.fit(train, val, epochs=a.epochs, batch_size=32, optimizer=opt, seed=a.seed,
               verbose=True, sanity=1, diagnose=1,
               early_stopping=dict(monitor="val_acc", patience=10))
loss, acc = net.evaluate(test)
print("confusion matrix (rows = true digit):")
for r, row in enumerate(net.confusion(test)):
    print("  %d: %s" % (r, " ".join("%4d" % v for v in row)))
hist.to_csv(os.path.join(a.out, "digits_history.csv"))
try:
    hist.plot(os.path.join(a.out, "digits_curves.png"))
    print("wrote", os.path.join(a.out, "digits_curves.png"))
except ImportError:
    print("(matplotlib is not installed: no PNG written)")
if a.predictions:
    with open(a.predictions, "w") as f:
        f.write("".join("%d\n" % c for c in net.predict(test.x)))
    print("test predictions written to", a.predictions)
print("test loss: %.4f" % loss)
print("test accuracy: %.4f" % acc)
if a.save:
    # The file holds the net and the normalizer fitted on the training split.
    net.save(a.save, normalizer=norm)
    print("model and normalizer written to", a.save)
    # The reloaded net carries the normalizer: it takes the raw test digits.
    back, back_norm = nnkit.Net.load(a.save, with_normalizer=True)
    raw_test = load("t10k")
    _, back_acc = back.evaluate(raw_test)
    same = (list(back.predict(raw_test.x)) == list(net.predict(test.x))
            and back_acc == acc and back_norm is not None and back.normalizer is not None)
    print("reloaded model: test accuracy %.4f (%s)" % (back_acc,
                                                     "identical" if same else "DIFFERENT"))
    if not same:
        raise SystemExit("digits: the reloaded model predicts differently")
