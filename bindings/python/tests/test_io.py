"""Model files from Python: Net.save / Net.load round trips (a loaded net
takes raw samples through the normalizer it carries), class names, the
checksum, errors, and (when PyTorch is installed) that PyTorch reads an
nnkit file.

The safetensors file is read here with struct + json (+ NumPy/torch for the
PyTorch check) only: the `safetensors` package is not needed.
"""
import json
import math
import os
import struct
import sys
import tempfile
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import nnkit  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None

try:
    import torch
except ImportError:
    torch = None


def blobs(n=120):
    xs, ys = [], []
    for i in range(n):
        c = i % 3
        a = c * 2 * math.pi / 3
        jitter = ((i * 7919) % 101) / 101.0 - 0.5
        xs.append([2 * math.cos(a) + 0.4 * jitter, 2 * math.sin(a) - 0.4 * jitter,
                   0.5 * jitter, 1.0 + 0.1 * c])
        ys.append(c)
    return xs, ys


def as_rows(x):
    return [list(map(float, r)) for r in x]


def read_safetensors(path):
    """(metadata, {name: (shape, list of floats)}) with the standard library."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        count = (e - b) // 4
        tensors[name] = (t["shape"], list(struct.unpack("<%df" % count,
                                                       data[base + b:base + e])))
    return meta, tensors


class SaveLoadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def trained(self):
        xs, ys = blobs()
        ds = nnkit.Dataset(xs, ys, num_classes=3)
        nz = nnkit.Normalizer("standardize").fit(ds)
        nz.apply(ds)
        net = nnkit.Net(4, [nnkit.Dense(16), nnkit.BatchNorm(), nnkit.ReLU(),
                            nnkit.Dropout(0.2), nnkit.Dense(3)], seed=5)
        net.fit(ds, epochs=5, batch_size=16, lr=0.1)
        return xs, net, nz

    def test_round_trip_gives_identical_predictions(self):
        xs, net, nz = self.trained()
        p = self.path("model.safetensors")
        net.save(p, normalizer=nz)
        back = nnkit.Net.load(p)
        self.assertIsInstance(back, nnkit.Net)
        self.assertFalse(back.training)
        self.assertEqual(back.describe(), net.describe())
        z = nz.transform(xs)
        # the loaded net carries the normalizer: raw samples in
        self.assertIsNotNone(back.normalizer)
        self.assertIsNone(net.normalizer)
        self.assertEqual(as_rows(back.predict_proba(xs)), as_rows(net.predict_proba(z)))
        self.assertEqual(list(back.predict(xs)), list(net.predict(z)))
        self.assertEqual(as_rows(back.normalizer.transform(xs)), as_rows(z))
        # forward takes normalized samples, as before (evaluation mode)
        net.training = False
        self.assertEqual(as_rows(back.forward(z)), as_rows(net.forward(z)))
        back2, nz2 = nnkit.Net.load(p, with_normalizer=True)
        self.assertIsInstance(nz2, nnkit.Normalizer)
        self.assertEqual(as_rows(nz2.transform(xs)), as_rows(z))
        self.assertEqual(as_rows(back2.predict_proba(xs)),
                         as_rows(net.predict_proba(z)))
        # detached, the loaded net is the saved one on normalized samples
        back2.set_normalizer(None)
        self.assertIsNone(back2.normalizer)
        self.assertEqual(as_rows(back2.predict_proba(z)), as_rows(net.predict_proba(z)))
        # no normalizer saved: None comes back
        net.save(p)
        bare, none = nnkit.Net.load(p, with_normalizer=True)
        self.assertIsNone(none)
        self.assertIsNone(bare.normalizer)

    def test_raw_input_accuracy_survives_a_round_trip(self):
        """A net trained on standardized samples of a set that needs it
        (features thousands apart in scale) reaches 0.99 on the raw samples
        once saved with its normalizer and loaded back; the net without the
        normalizer does not."""
        xs, ys = blobs(300)
        raw = [[5000.0 + 100.0 * a, 0.01 * b - 3.0, 40.0 * c, d] for a, b, c, d in xs]
        ds = nnkit.Dataset(raw, ys, num_classes=3)
        nz = nnkit.Normalizer("standardize").fit(ds)
        train = nnkit.Dataset(raw, ys, num_classes=3)
        nz.apply(train)
        net = nnkit.Net(4, [nnkit.Dense(16), nnkit.ReLU(), nnkit.Dense(3)], seed=3)
        net.fit(train, epochs=30, batch_size=16, lr=0.1)
        net.set_normalizer(nz)
        net.class_names = ["red", "green", "blue"]
        p = self.path("raw.safetensors")
        net.save(p)  # the net's own normalizer and names
        back = nnkit.Net.load(p)
        self.assertEqual(back.class_names, ["red", "green", "blue"])
        _, acc = back.evaluate(ds)
        self.assertGreaterEqual(acc, 0.99)
        hits = sum(int(c) == y for c, y in zip(back.predict(raw), ys))
        self.assertGreaterEqual(hits / len(ys), 0.99)
        back.set_normalizer(None)
        _, bare = back.evaluate(ds)
        self.assertLess(bare, 0.9)

    def test_normalizer_and_class_names_api(self):
        _, net, nz = self.trained()
        self.assertIsNone(net.class_names)
        net.class_names = ["a", "b", "c"]
        self.assertEqual(net.class_names, ["a", "b", "c"])
        with self.assertRaises(nnkit.ShapeError) as cm:
            net.class_names = ["a", "b"]
        self.assertIn("2 class names for 3 outputs", cm.exception.message)
        net.class_names = None
        self.assertIsNone(net.class_names)
        with self.assertRaises(nnkit.StateError) as cm:
            net.set_normalizer(nnkit.Normalizer("standardize"))
        self.assertIn("not fitted", cm.exception.message)
        other = nnkit.Normalizer("standardize").fit(nnkit.Dataset([[1.0, 2.0], [3.0, 5.0]],
                                                                  [0, 1], num_classes=2))
        with self.assertRaises(nnkit.ShapeError) as cm:
            net.set_normalizer(other)
        self.assertIn("gives 2 values per sample but the net takes 4", cm.exception.message)
        net.set_normalizer(nz)
        view = net.normalizer
        self.assertEqual(view.in_size, 4)
        with self.assertRaises(nnkit.StateError):
            view.fit(nnkit.Dataset([[1.0] * 4, [2.0] * 4], [0, 1], num_classes=2))
        # another net can take a copy of it
        twin = nnkit.Net(4, [nnkit.Dense(3)])
        twin.set_normalizer(view)
        self.assertEqual(as_rows(twin.normalizer.transform([[1, 2, 3, 4]])),
                         as_rows(nz.transform([[1, 2, 3, 4]])))
        net.set_normalizer(None)
        self.assertIsNone(net.normalizer)
        with self.assertRaises(nnkit.StateError):  # the view went with it
            view.transform([[1, 2, 3, 4]])
        with self.assertRaises(nnkit.ShapeError):  # 4 values per raw sample
            twin.predict([[1, 2, 3]])

    def test_checksum_is_zlib_crc32_and_corruption_is_refused(self):
        _, net, nz = self.trained()
        p = self.path("model.safetensors")
        net.save(p, nz)
        with open(p, "rb") as f:
            data = f.read()
        # doc/file-format.md's recipe
        i = data.index(b'"crc32":"') + 9
        stored = data[i:i + 8].decode()
        self.assertEqual(stored, "%08x" % zlib.crc32(data[:i] + b"00000000" + data[i + 8:]))
        meta, _ = read_safetensors(p)
        self.assertEqual(meta["crc32"], stored)
        self.assertEqual(meta["format_version"], "2")
        bad = bytearray(data)
        bad[-3] ^= 0x10  # one bit of the last tensor
        with open(p, "wb") as f:
            f.write(bad)
        with self.assertRaises(nnkit.FormatError) as cm:
            nnkit.Net.load(p)
        self.assertIn("checksum mismatch: the file is corrupt (stored %s" % stored,
                      cm.exception.message)

    def test_file_is_readable_without_nnkit(self):
        _, net, nz = self.trained()
        p = self.path("model.safetensors")
        net.save(p, nz)
        meta, tensors = read_safetensors(p)
        self.assertEqual(meta["format"], "nnkit")
        self.assertEqual(json.loads(meta["input_shape"]), [4])
        arch = json.loads(meta["architecture"])
        self.assertEqual([l["kind"] for l in arch],
                         ["dense", "batchnorm", "activation", "dropout", "dense"])
        self.assertEqual(tensors["layers.0.weight"][0], [16, 4])
        self.assertEqual(tensors["layers.1.running_var"][0], [16])
        self.assertEqual(tensors["normalizer.mean"][0], [4])
        self.assertEqual(json.loads(meta["normalizer"])["kind"], "standardize")
        params = list(net.params)
        self.assertEqual(tensors["layers.0.weight"][1], params[:64])

    def test_corrupt_and_missing_files_raise_with_the_sentence(self):
        _, net, _ = self.trained()
        p = self.path("model.safetensors")
        net.save(p)
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "wb") as f:
            f.write(data[:len(data) // 2])
        with self.assertRaises(nnkit.FormatError) as cm:
            nnkit.Net.load(p)
        self.assertEqual(cm.exception.status, nnkit.E_FORMAT)
        self.assertIn("model.safetensors", cm.exception.message)
        self.assertIn("truncated", cm.exception.message)
        with self.assertRaises(nnkit.IOFailure) as cm:
            nnkit.Net.load(self.path("absent.safetensors"))
        self.assertIn("absent.safetensors", cm.exception.message)
        with self.assertRaises(nnkit.IOFailure):
            net.save(self.path("no/such/dir/model.safetensors"))
        self.assertFalse(os.path.exists(self.path("no")))


@unittest.skipIf(torch is None or np is None,
                 "PyTorch (python3-torch) and NumPy are needed to check that "
                 "PyTorch reads nnkit's files")
class PyTorchReadsTest(unittest.TestCase):
    """An nnkit-saved MLP loaded with struct/json/NumPy into torch.nn gives
    the same outputs to 1e-5."""

    def test_mlp_outputs_match_torch(self):
        xs, ys = blobs()
        ds = nnkit.Dataset(xs, ys, num_classes=3)
        net = nnkit.Net(4, [nnkit.Dense(12), nnkit.Tanh(), nnkit.Dense(8),
                            nnkit.LeakyReLU(0.1), nnkit.Dense(3)], seed=9)
        net.fit(ds, epochs=3, batch_size=16, lr=0.1)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "mlp.safetensors")
            net.save(p)
            meta, tensors = read_safetensors(p)
        state = {k: torch.from_numpy(np.array(v, dtype=np.float32).reshape(s))
                 for k, (s, v) in tensors.items()}
        acts = {1: torch.nn.ReLU(), 3: torch.nn.Tanh(), 4: torch.nn.Sigmoid()}
        mods = []
        width = json.loads(meta["input_shape"])[0]
        for layer in json.loads(meta["architecture"]):
            if layer["kind"] == "dense":
                mods.append(torch.nn.Linear(width, layer["units"]))
                width = layer["units"]
            elif layer["activation"] == 2:
                mods.append(torch.nn.LeakyReLU(layer["slope"]))
            else:
                mods.append(acts[layer["activation"]])
        model = torch.nn.Sequential(*mods)
        model.load_state_dict({k.replace("layers.", ""): v for k, v in state.items()})
        x = np.array(xs, dtype=np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        got = np.array(net.forward(x), dtype=np.float32)
        self.assertLess(float(np.abs(got - want).max()), 1e-5)


if __name__ == "__main__":
    unittest.main()
