#!/usr/bin/python3
"""The smallest complete program: a 3-arm spiral learned by a 2-layer net."""
import math
import sys

from _common import nnkit

xs, ys = [], []
for c in range(3):
    for i in range(100):
        t = i / 100
        a = c * 4.0 + 4.0 * t + 0.2 * math.sin(i * 12.9898 + c)
        xs.append([t * math.sin(a), t * math.cos(a)])
        ys.append(c)
train = nnkit.Dataset(xs, ys, num_classes=3)
net = nnkit.Net(2, [nnkit.Dense(100), nnkit.ReLU(), nnkit.Dense(3)], seed=42)
print("before training: loss %.4f, accuracy %.3f" % net.evaluate(train))
net.fit(train, epochs=300, batch_size=32, lr=0.5)
loss, acc = net.evaluate(train)
print("after 300 epochs: loss %.4f, accuracy %.3f" % (loss, acc))
sys.exit(0 if acc >= 0.9 else 1)
