#!/usr/bin/python3
"""A grid of augmented digits (PNG) and a 1,000-digit CNN trained with and
without augmentation."""
import os

from _common import args, digits, nnkit, pyplot

a = args(__doc__, epochs=15)
train_all, test = digits(a.data, standardize=False)
small = train_all.subset(range(1000))
aug = nnkit.Augmenter([("rotate", 0.8, -12, 12), ("translate", 0.8, 2, 2),
                       ("scale", 0.5, 0.9, 1.1)])
plt = pyplot()
if plt:
    grid = aug.apply(small.x[:16], (1, 28, 28), seed=a.seed)
    fig, axes = plt.subplots(2, 16, figsize=(16, 2.4))
    for i in range(16):
        axes[0][i].imshow(small.x[i].reshape(28, 28), cmap="gray")
        axes[1][i].imshow(grid[i].reshape(28, 28), cmap="gray")
        axes[0][i].axis("off")
        axes[1][i].axis("off")
    fig.savefig(os.path.join(a.out, "augmented.png"))
    print("wrote", os.path.join(a.out, "augmented.png"))
for name, augmenter in [("without augmentation", None), ("with augmentation", aug)]:
    net = nnkit.Net((1, 28, 28), [nnkit.Conv2D(16, 3), nnkit.ReLU(), nnkit.MaxPool2D(2),
                                  nnkit.Conv2D(32, 3), nnkit.ReLU(), nnkit.MaxPool2D(2),
                                  nnkit.Dense(64), nnkit.ReLU(), nnkit.Dense(10)],
                    seed=a.seed)
    pipe = nnkit.Pipeline(small, augmenter=augmenter, batch_size=32, seed=a.seed)
    net.fit(pipe, epochs=a.epochs, optimizer=nnkit.Optimizer("sgd", lr=0.02, momentum=0.9))
    print("%-22s test accuracy %.4f" % (name, net.evaluate(test)[1]))
