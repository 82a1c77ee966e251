#!/usr/bin/python3
"""scripts/fmnist_data.py: the IDX reader refuses every kind of bad file with one message
naming the file, and reads the installed Debian dataset with the counts and content
recorded in ../shared/reference/datasets.md (md5 of the raw IDX bytes, 6,000 / 1,000
images per class). Bad files are built here byte by byte from the IDX layout.

usage: test_fmnist_data.py SOURCE_DIR"""
import gzip
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def idx_images(n, rows=28, cols=28, magic=b"\x00\x00\x08\x03", payload=None):
    body = payload if payload is not None else bytes((i * 7) % 256 for i in range(n * rows * cols))
    return magic + struct.pack(">III", n, rows, cols) + body


def idx_labels(n, magic=b"\x00\x00\x08\x01", payload=None):
    return magic + struct.pack(">I", n) + (payload if payload is not None else bytes(i % 10 for i in range(n)))


def write_set(d, images, labels, gz=True):
    os.makedirs(d, exist_ok=True)
    for name, data in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        if gz:
            with gzip.open(os.path.join(d, name + ".gz"), "wb") as f:
                f.write(data)
        else:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


def expect_error(fd, d, fragments, what):
    try:
        fd.load("test", d)
    except fd.DatasetError as exc:
        msg = str(exc)
        ok = all(f in msg for f in fragments)
        check(ok, "%s: %s" % (what, msg if ok else "message lacks %s: %s" % (fragments, msg)))
        return
    check(False, "%s: accepted" % what)


def main():
    root = sys.argv[1]
    sys.path.insert(0, os.path.join(root, "scripts"))
    import fmnist_data as fd
    with tempfile.TemporaryDirectory() as tmp:
        good = os.path.join(tmp, "good")
        write_set(good, idx_images(3), idx_labels(3))
        x, y = fd.load("test", good)
        check(x.shape == (3, 1, 28, 28) and x.dtype == np.uint8 and y.tolist() == [0, 1, 2],
              "a well-formed 3-image set reads as (3,1,28,28) uint8 with its labels")
        check(int(x[1, 0, 0, 5]) == ((784 + 5) * 7) % 256, "pixel (image 1, row 0, col 5) is byte 16+784+5")
        raw = os.path.join(tmp, "raw")
        write_set(raw, idx_images(2), idx_labels(2), gz=False)
        check(fd.load("test", raw)[0].shape[0] == 2, "uncompressed IDX files are read too")

        expect_error(fd, os.path.join(tmp, "nowhere"), ["nowhere", "dataset-fashion-mnist"], "missing directory")
        os.makedirs(os.path.join(tmp, "empty"))
        expect_error(fd, os.path.join(tmp, "empty"), ["t10k-images-idx3-ubyte", "not found", "dataset-fashion-mnist"],
                     "missing file")
        cases = [
            ("truncated images", idx_images(3)[:-100], idx_labels(3), ["t10k-images", "truncated", "2352", "2252"]),
            ("truncated header", idx_images(3)[:10], idx_labels(3), ["t10k-images", "truncated", "header"]),
            ("trailing bytes", idx_images(3) + b"\x00", idx_labels(3), ["t10k-images", "trailing"]),
            ("wrong magic", idx_images(3, magic=b"\x00\x00\x08\x01"), idx_labels(3), ["t10k-images", "dimensions"]),
            ("not IDX", b"PK\x03\x04" + idx_images(3)[4:], idx_labels(3), ["t10k-images", "not an IDX"]),
            ("element type", idx_images(3, magic=b"\x00\x00\x0d\x03"), idx_labels(3), ["t10k-images", "0x0d"]),
            ("image size", idx_images(3, 32, 32), idx_labels(3), ["t10k-images", "32x32", "28x28"]),
            ("absurd count", b"\x00\x00\x08\x03" + struct.pack(">III", 0xFFFFFFFF, 28, 28), idx_labels(3),
             ["t10k-images", "absurd"]),
            ("labels vs images", idx_images(3), idx_labels(4), ["t10k-labels", "4 labels", "3 images"]),
            ("label value", idx_images(3), idx_labels(3, payload=b"\x01\x0c\x02"), ["t10k-labels", "12", "item 1"]),
            ("truncated labels", idx_images(3), idx_labels(3)[:-1], ["t10k-labels", "truncated"]),
        ]
        for what, im, lb, frag in cases:
            d = os.path.join(tmp, what.replace(" ", "_"))
            write_set(d, im, lb)
            expect_error(fd, d, frag, what)
        # a damaged gzip stream (the compressed payload cut short)
        d = os.path.join(tmp, "badgz")
        write_set(d, idx_images(3), idx_labels(3))
        p = os.path.join(d, "t10k-images-idx3-ubyte.gz")
        data = open(p, "rb").read()
        open(p, "wb").write(data[:len(data) // 2])
        expect_error(fd, d, ["t10k-images-idx3-ubyte.gz"], "cut gzip stream")
        # the command line: one message, non-zero exit
        r = subprocess.run(["/usr/bin/python3", os.path.join(root, "scripts", "fmnist_data.py"), "--dir",
                            os.path.join(tmp, "truncated_images"), "--export-test", os.path.join(tmp, "x.npy"),
                            os.path.join(tmp, "y.npy")], capture_output=True, text=True)
        check(r.returncode == 1 and r.stderr.count("\n") == 1 and "truncated: 3 items" in r.stderr
              and not os.path.exists(os.path.join(tmp, "x.npy")),
              "fmnist_data.py on a truncated file: exit 1, one line: %s" % r.stderr.strip())

    # the installed Debian dataset (scripts/setup-deps --training installs it)
    if not os.path.isdir(fd.DEFAULT_DIR):
        print("skip: %s not installed" % fd.DEFAULT_DIR)
        return 77 if not failures else 1
    md5 = {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
           "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
           "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
           "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"}
    for split, n in (("train", 60000), ("test", 10000)):
        x, y = fd.load(split, fd.DEFAULT_DIR)
        check(x.shape == (n, 1, 28, 28) and y.shape == (n,), "%s: %d images 28x28" % (split, n))
        check(np.bincount(y, minlength=10).tolist() == [n // 10] * 10, "%s: %d per class" % (split, n // 10))
        iname, lname = fd.FILES[split]
        himg = hashlib.md5(b"\x00\x00\x08\x03" + struct.pack(">III", n, 28, 28) + x.tobytes()).hexdigest()
        hlab = hashlib.md5(b"\x00\x00\x08\x01" + struct.pack(">I", n) + y.astype(np.uint8).tobytes()).hexdigest()
        check(himg == md5[iname], "%s: header + images re-serialised have the raw md5 %s" % (split, md5[iname]))
        check(hlab == md5[lname], "%s: header + labels re-serialised have the raw md5 %s" % (split, md5[lname]))
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
