"""Lays out the bundled MNIST subset as torchvision's `MNIST` class reads it.

Usage: prepare_data.py SRC DEST

SRC is a folder with MNIST's four IDX files, gzipped, and their SHA256SUMS (data/mnist-5k).
DEST/MNIST/raw/ receives the four files uncompressed, under MNIST's own names, so that
`torchvision.datasets.MNIST(DEST, download=False)` loads exactly the files flspec reads. Each
archive is checked against SHA256SUMS first. Idempotent: files already there are kept when their
size matches the archive's content. Standard library only.
"""

import gzip
import hashlib
import os
import sys

NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def expected_sums(src):
    """Reads SRC/SHA256SUMS into {file name: hex digest}."""
    path = os.path.join(src, "SHA256SUMS")
    sums = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                sums[parts[1]] = parts[0]
    return sums


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: prepare_data.py SRC DEST (SRC: the folder with the gzipped IDX files)")
    src, dest = argv[1], argv[2]
    sums = expected_sums(src)
    raw = os.path.join(dest, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for name in NAMES:
        archive = os.path.join(src, name + ".gz")
        with open(archive, "rb") as f:
            packed = f.read()
        digest = hashlib.sha256(packed).hexdigest()
        if sums.get(name + ".gz") != digest:
            sys.exit(
                f"{archive}: SHA-256 {digest} does not match {src}/SHA256SUMS; "
                "restore the file from the repository (git checkout)"
            )
        content = gzip.decompress(packed)
        target = os.path.join(raw, name)
        if os.path.exists(target) and os.path.getsize(target) == len(content):
            with open(target, "rb") as f:
                if f.read() == content:
                    continue
        tmp = target + ".tmp"
        with open(tmp, "wb") as f:
            f.write(content)
        os.replace(tmp, target)


if __name__ == "__main__":
    main(sys.argv)
