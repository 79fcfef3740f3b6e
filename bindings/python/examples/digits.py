#!/usr/bin/python3
"""The handwritten-digits case study from Python: MLP, momentum + cosine
schedule, early stopping on a validation split, loss curves as PNG."""
import os

from _common import args, digits, nnkit

a = args(__doc__, epochs=20)
train_all, test = digits(a.data)
train, val = train_all.split(0.1, seed=a.seed)
net = nnkit.Net((1, 28, 28), [nnkit.Dense(256), nnkit.ReLU(), nnkit.Dense(128),
                              nnkit.ReLU(), nnkit.Dense(10)], seed=a.seed)
opt = nnkit.Optimizer("sgd", lr=0.02, momentum=0.9)
opt.set_schedule(nnkit.Schedule("cosine", t_max=a.epochs))
hist = net.fit(train, val, epochs=a.epochs, batch_size=32, optimizer=opt, seed=a.seed,
               verbose=True, early_stopping=dict(monitor="val_acc", patience=5))
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
print("test accuracy: %.4f" % acc)
