#!/usr/bin/python3
"""The handwritten-digits case study with a small convnet:
conv 3x3 (32)-BN-ReLU-pool, conv 3x3 (64)-BN-ReLU-pool, dense 128-ReLU-
dropout 0.5-dense 10; SGD + momentum with a per-batch cosine schedule.
Every tenth training image is held out for validation. Prints the epoch
lines, the seconds per epoch and the test accuracy; loss curves (PNG)."""
import os

from _common import args, every_tenth, load_digits, nnkit, standardize

a = args(__doc__, epochs=15)
full, test = load_digits(a.data)
mean, std = standardize(full, test)  # the training set's statistics only
train, val = every_tenth(full)
lr, momentum, batch = 0.01, 0.9, 32

net = nnkit.Net(train.shape, [
    nnkit.Conv2D(32, 3, bias=False), nnkit.BatchNorm(0.1, 1e-5), nnkit.ReLU(),
    nnkit.MaxPool2D(2),
    nnkit.Conv2D(64, 3, bias=False), nnkit.BatchNorm(0.1, 1e-5), nnkit.ReLU(),
    nnkit.MaxPool2D(2),
    nnkit.Flatten(), nnkit.Dense(128), nnkit.ReLU(), nnkit.Dropout(0.5), nnkit.Dense(10)],
    seed=a.seed)
opt = nnkit.Optimizer("sgd", lr=lr, momentum=momentum)
steps = (len(train) + batch - 1) // batch * a.epochs  # cosine to 0 over every step
opt.set_schedule(nnkit.Schedule("cosine", per_batch=1, t_max=steps))

print("digits_cnn: %d train, %d validation, %d test images from %s; %d thread(s)" %
      (len(train), len(val), len(test), a.data, nnkit.get_num_threads()))
print("normalized with the training set's pixel mean %.2f and std %.2f" % (mean, std))
for i, text in enumerate(net.describe()):
    print("  layer %2d: %s" % (i, text))
print("%d parameters; optimizer: SGD with momentum %g, lr %g annealed to 0 (cosine, per "
      "batch), batch %d" % (net.num_params, momentum, lr, batch))

hist = net.fit(train, val, epochs=a.epochs, batch_size=batch, optimizer=opt, seed=a.seed,
               verbose=True, log=print)
seconds = sum(hist["seconds"])
test_loss, test_acc = net.evaluate(test)
try:
    hist.plot(os.path.join(a.out, "digits_cnn_curves.png"))
    print("wrote", os.path.join(a.out, "digits_cnn_curves.png"))
except ImportError:
    print("(matplotlib is not installed: no PNG written)")
print("training time: %.1f s, %.2f s per epoch (%d epochs, %d thread(s))" %
      (seconds, seconds / len(hist), len(hist), nnkit.get_num_threads()))
print("validation accuracy: %.4f" % hist["val_acc"][-1])
print("test loss: %.4f" % test_loss)
print("test accuracy: %.4f" % test_acc)
