#!/usr/bin/python3
"""Fashion-MNIST from Debian's dataset-fashion-mnist (IDX files), checked as it is read.

    fmnist_data.py                      # check the installed files, print counts per class
    fmnist_data.py --dir D              # files elsewhere (same names)
    fmnist_data.py --export-test X.npy Y.npy [--limit N]   # the test split as qsim run --input/--labels files

Files (gzip-compressed or not: NAME.gz is read if present, else NAME):
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte.

IDX (the format of Fashion-MNIST and MNIST): big-endian 32-bit integers. Images: magic
00 00 08 03 (unsigned byte, 3 dimensions), count, rows, cols, then count*rows*cols bytes;
labels: magic 00 00 08 01, count, then count bytes. Everything is checked: the magic,
the dimensions (28x28), the payload length (truncated files and trailing bytes are
refused), label values 0..9 and that the labels file has one label per image. Any
problem raises DatasetError whose message names the file and what is wrong.
"""
from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
import zlib

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL_HINT = ("install the Debian package dataset-fashion-mnist (scripts/setup-deps --training "
                "does it)")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
ROWS = COLS = 28
# A declared count above this is refused before anything is allocated (the real files
# hold 60,000 and 10,000 images).
MAX_COUNT = 1_000_000


class DatasetError(ValueError):
    """A missing, truncated or inconsistent dataset file; the message names the file."""


def _resolve(directory: str, name: str) -> str:
    for cand in (os.path.join(directory, name + ".gz"), os.path.join(directory, name)):
        if os.path.isfile(cand):
            return cand
    raise DatasetError("%s: Fashion-MNIST file not found (looked for %s.gz and %s); %s" % (
        os.path.join(directory, name), name, name, INSTALL_HINT))


def _read_exact(path: str, f, n: int, what: str) -> bytes:
    """n bytes or DatasetError (truncated); reads in chunks so a corrupt count never
    allocates more than the file really holds."""
    parts, got = [], 0
    try:
        while got < n:
            chunk = f.read(min(1 << 20, n - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError("%s: cannot read %s: %s" % (path, what, exc)) from None
    if got < n:
        raise DatasetError("%s: truncated: %s needs %d bytes, the file holds %d" % (path, what, n, got))
    return b"".join(parts)


def read_idx(path: str, ndim: int, dims=None) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions (dims: expected sizes after the
    count, e.g. (28, 28)), as a uint8 array (count, *dims)."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        f = opener(path, "rb")
    except OSError as exc:
        raise DatasetError("%s: cannot open: %s" % (path, exc)) from None
    with f:
        head = _read_exact(path, f, 4, "the IDX magic number")
        if head[0] != 0 or head[1] != 0:
            raise DatasetError("%s: not an IDX file (magic %s, expected 00 00 08 %02x)" % (
                path, head.hex(" "), ndim))
        if head[2] != 0x08:
            raise DatasetError("%s: IDX element type 0x%02x, expected 0x08 (unsigned byte)" % (path, head[2]))
        if head[3] != ndim:
            raise DatasetError("%s: IDX file has %d dimensions, expected %d" % (path, head[3], ndim))
        sizes = struct.unpack(">%dI" % ndim, _read_exact(path, f, 4 * ndim, "the IDX header"))
        count = sizes[0]
        if count == 0 or count > MAX_COUNT:
            raise DatasetError("%s: absurd item count %d in the header (1..%d)" % (path, count, MAX_COUNT))
        if dims is not None and tuple(sizes[1:]) != tuple(dims):
            raise DatasetError("%s: item size %s in the header, expected %s" % (
                path, "x".join(map(str, sizes[1:])), "x".join(map(str, dims))))
        per = 1
        for d in sizes[1:]:
            per *= d
        data = _read_exact(path, f, count * per, "%d items of %d bytes" % (count, per))
        try:
            extra = f.read(1)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError("%s: cannot read: %s" % (path, exc)) from None
        if extra:
            raise DatasetError("%s: trailing bytes after the %d items the header declares" % (path, count))
    return np.frombuffer(data, dtype=np.uint8).reshape((count,) + tuple(sizes[1:]))


def load(split: str, directory: str = DEFAULT_DIR):
    """(x, y): x the images as network input integers, uint8 (N, 1, 28, 28) (pixel 0..255,
    0 = background); y the labels, int64 (N,)."""
    if split not in FILES:
        raise ValueError("split must be 'train' or 'test', not %r" % split)
    if not os.path.isdir(directory):
        raise DatasetError("%s: Fashion-MNIST directory not found; %s" % (directory, INSTALL_HINT))
    ipath, lpath = (_resolve(directory, n) for n in FILES[split])
    x = read_idx(ipath, 3, (ROWS, COLS))
    y = read_idx(lpath, 1)
    if len(y) != len(x):
        raise DatasetError("%s: %d labels for the %d images of %s" % (lpath, len(y), len(x), ipath))
    bad = np.nonzero(y > 9)[0]
    if len(bad):
        raise DatasetError("%s: label %d of item %d is not a class 0..9" % (lpath, int(y[bad[0]]), int(bad[0])))
    return x.reshape(-1, 1, ROWS, COLS), y.astype(np.int64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=DEFAULT_DIR)
    ap.add_argument("--export-test", nargs=2, metavar=("X.npy", "Y.npy"),
                    help="write the test images (N,1,28,28) int32 and labels (N,) int32")
    ap.add_argument("--limit", type=int, default=0, help="with --export-test: the first N images")
    args = ap.parse_args(argv)
    try:
        if args.export_test:
            x, y = load("test", args.dir)
            if args.limit > 0:
                x, y = x[:args.limit], y[:args.limit]
            np.save(args.export_test[0], x.astype(np.int32))
            np.save(args.export_test[1], y.astype(np.int32))
            print("wrote %d test images to %s, labels to %s" % (len(y), *args.export_test))
            return 0
        for split in ("train", "test"):
            x, y = load(split, args.dir)
            per = np.bincount(y, minlength=10)
            print("%s: %d images %dx%d, mean pixel %.2f, %.1f%% zero pixels, per class %s" % (
                split, len(y), x.shape[2], x.shape[3], float(x.mean()), 100.0 * float((x == 0).mean()),
                " ".join(map(str, per))))
    except DatasetError as exc:
        print("fmnist_data: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
