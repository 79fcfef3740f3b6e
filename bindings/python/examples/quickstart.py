#!/usr/bin/python3
"""Twin of examples/quickstart.c, the smallest complete program: a 3-arm
spiral (the same points, from the same noise generator) learned by a
2-layer net with SGD, Keras-style on plain lists; prints what the C
program prints."""
import math
import sys

from _common import nnkit

CLASSES, PER_CLASS = 3, 100
xs, ys = [], []
noise = 12345
for c in range(CLASSES):
    for i in range(PER_CLASS):
        t = i / PER_CLASS
        noise = (noise * 1103515245 + 12345) & 0xFFFFFFFF
        jitter = ((noise >> 16) % 1000 / 1000.0 - 0.5) * 0.4
        angle = c * 4.0 + 4.0 * t + jitter
        xs.append([t * math.sin(angle), t * math.cos(angle)])
        ys.append(c)
net = nnkit.Net(2, [nnkit.Dense(100), nnkit.ReLU(), nnkit.Dense(CLASSES)], seed=42)
print("nnkit %s: spiral, %d samples, %d classes" % (nnkit.version(), len(xs), CLASSES))
print("before training: loss %.4f, accuracy %.3f" % net.evaluate(xs, ys))
history = net.fit(xs, ys, epochs=300, batch_size=32, lr=0.5)
loss, acc = net.evaluate(xs, ys)
print("after %d epochs: loss %.4f, accuracy %.3f" % (len(history), loss, acc))
if acc < 0.9:
    print("quickstart: the net did not learn the spiral (accuracy %.3f < 0.9)" % acc,
          file=sys.stderr)
sys.exit(0 if acc >= 0.9 else 1)
