#!/usr/bin/python3
"""Twin of examples/augmentation.c: data augmentation as a regularizer on
few data. A small digits CNN is trained twice on the same stratified
1,000-digit subset, once on the images as they are and once through an
augmenter (rotation, zoom, shear, shift, erasing) in the batch pipeline;
prints both training losses per epoch and both test accuracies, and writes
the grid of augmented samples (augmentation_grid.pgm and .png), as the C
example does, with the same numbers for the same seed and thread count."""
import os
import struct
import time
import zlib

from _common import args, nnkit

SUBSET = 1000
a = args(__doc__, epochs=30)


def load(prefix):
    return nnkit.Dataset.load_idx(os.path.join(a.data, prefix + "-images-idx3-ubyte.gz"),
                                  os.path.join(a.data, prefix + "-labels-idx1-ubyte.gz"), 10)


def f32(v):
    """v rounded to float32, as C's float arithmetic does."""
    return struct.unpack("f", struct.pack("f", v))[0]


def make_augmenter():
    """The augmentation recipe: mild geometric changes a digit survives."""
    return nnkit.Augmenter([("rotate", 0.8, -12, 12), ("scale", 0.5, 0.9, 1.1),
                            ("shear_x", 0.3, -12, 12), ("translate", 0.8, 2.5, 2.5),
                            ("erase", 0.25, 0.02, 0.08)])


def write_png(path, pixels, w, h):
    """An 8-bit gray PNG, with the standard library only."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\0" + bytes(pixels[y * w:(y + 1) * w]) for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0,
                                                                  0, 0)) +
                chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def write_grid(ds, aug, seed):
    """One digit per class (rows), the original then 9 augmentations."""
    rows_n, cols_n, gap = 10, 10, 2
    _, h, w = ds.shape
    gw, gh = cols_n * (w + gap) + gap, rows_n * (h + gap) + gap
    img = bytearray([96]) * (gw * gh)  # gray gaps
    labels, x = list(ds.labels), ds.x
    for r in range(rows_n):
        if r not in labels:
            continue
        sample = x[labels.index(r)]
        for c in range(cols_n):
            tile = sample if c == 0 else aug.apply([sample], (1, h, w), seed=seed, epoch=c,
                                                   first_index=r)[0]
            flat = [v for row in tile[0] for v in row]
            for y in range(h):
                for xx in range(w):
                    v = f32(float(flat[y * w + xx]) * f32(255.0))
                    v = 0.0 if v < 0 else 255.0 if v > 255 else v
                    img[(gap + r * (h + gap) + y) * gw + gap + c * (w + gap) + xx] = \
                        int(f32(v + 0.5))
    with open(os.path.join(a.out, "augmentation_grid.pgm"), "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (gw, gh) + bytes(img))
    write_png(os.path.join(a.out, "augmentation_grid.png"), img, gw, gh)
    print("wrote augmentation_grid.pgm and augmentation_grid.png (%dx%d): one digit per "
          "row, the original first, then 9 augmentations" % (gw, gh))


def run(train, test, aug):
    """A fresh CNN trained on train (augmented when aug is given): (loss per
    epoch, test accuracy, seconds)."""
    net = nnkit.Net(train.shape, [nnkit.Conv2D(16, 5, padding=2), nnkit.ReLU(),
                                  nnkit.MaxPool2D(2), nnkit.Conv2D(32, 5, padding=2),
                                  nnkit.ReLU(), nnkit.MaxPool2D(2), nnkit.Flatten(),
                                  nnkit.Dense(64), nnkit.ReLU(), nnkit.Dense(10)],
                    seed=a.seed)
    opt = nnkit.Optimizer("sgd", lr=0.02, momentum=0.9)
    pipe = nnkit.Pipeline(train, augmenter=aug, batch_size=32, seed=a.seed)
    losses, t0 = [], time.monotonic()
    for e in range(a.epochs):
        total = 0.0
        for x, y in pipe.batches(e):
            total += opt.train_batch(net, x, y) * len(y)
        losses.append(total / len(train))
    seconds = time.monotonic() - t0
    pipe.close()
    return losses, net.evaluate(test)[1], seconds


all_train, test = load("train"), load("t10k")
# Pixels to [0, 1]: the background is 0, which is also what the augmenter
# reads outside the image, so shifted digits get clean edges.
all_train.scale(1.0 / 255)
test.scale(1.0 / 255)
rest, small = all_train.split(SUBSET / len(all_train), seed=a.seed)
aug = make_augmenter()
print("augmentation: CNN on %d of %d training digits, tested on %d; %d epochs, seed %d, "
      "%d thread(s)" % (len(small), len(all_train), len(test), a.epochs, a.seed,
                        nnkit.get_num_threads()))
print("net: conv5x5(16)-ReLU-maxpool2-conv5x5(32)-ReLU-maxpool2-dense64-ReLU-dense10; "
      "SGD lr 0.02 momentum 0.9, batch 32")
print("augmenter: rotate +-12 deg (p 0.8), zoom 0.9..1.1 (p 0.5), shear +-12 deg (p 0.3), "
      "shift +-2.5 px (p 0.8), erase 2-8% (p 0.25)")
write_grid(small, aug, a.seed)
loss_plain, acc_plain, s_plain = run(small, test, None)
loss_aug, acc_aug, s_aug = run(small, test, aug)
print("\ntraining loss after each epoch\nepoch  without  with augmentation")
for e in range(a.epochs):
    print("%5d  %7.4f  %7.4f" % (e + 1, loss_plain[e], loss_aug[e]))
print("\ntraining time: %.1f s without, %.1f s with augmentation" % (s_plain, s_aug))
print("test accuracy without augmentation: %.4f" % acc_plain)
print("test accuracy with augmentation:    %.4f (%+.2f points)" %
      (acc_aug, 100 * (acc_aug - acc_plain)))
