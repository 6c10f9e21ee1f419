#!/usr/bin/env python3
"""Loads a safetensors file as PyTorch (or numpy) users do and prints what it holds.

Usage: check_safetensors.py FILE [--seed-net] [--resave OUT]

Output, one line per tensor, sorted by name (flspec-tch's tests/export.rs compares these lines
with its own):

    tensor <name> <dtype> <shape, comma-separated> <sha256 of the values' little-endian bytes>

then `loader <module>` (safetensors.torch, or safetensors.numpy without torch) and
`metadata <json>`. With --seed-net and torch installed, it also loads the tensors into the seed
tutorial's `Net` with `load_state_dict(strict=True)` (missing or unexpected keys, or other shapes,
fail) and prints `seed-net load_state_dict ok`; without torch it prints `seed-net skipped: ...`.
With --resave OUT it writes the loaded tensors to OUT with the same loader's `save_file` (so
that the test can load a file Python wrote).

Needs the `safetensors` package, and numpy or torch (scripts/setup-python-check.sh makes a
venv with both safetensors and numpy in .venv-check/). Exit status: 0 on success, 1 if the file
cannot be loaded, 2 if safetensors itself is missing.
"""

import hashlib
import json
import struct
import sys


def main(argv):
    rest, args, flags, resave = list(argv[1:]), [], set(), None
    while rest:
        arg = rest.pop(0)
        if arg == "--resave" and rest:
            resave = rest.pop(0)
        elif arg.startswith("--"):
            flags.add(arg)
        else:
            args.append(arg)
    if len(args) != 1 or not flags <= {"--seed-net"}:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 1
    path = args[0]
    try:
        import safetensors  # noqa: F401
    except ImportError as e:
        print(f"safetensors is not installed for {sys.executable}: {e}", file=sys.stderr)
        return 2

    try:
        import torch  # noqa: F401
        from safetensors.torch import load_file, save_file

        loader = "safetensors.torch"
    except ImportError:
        from safetensors.numpy import load_file, save_file

        loader = "safetensors.numpy"
        torch = None

    tensors = load_file(path)
    for name in sorted(tensors):
        t = tensors[name]
        # The same names for both loaders: float32, int64, ...
        dtype = str(t.dtype).removeprefix("torch.")
        arr = t.contiguous().numpy() if torch is not None else t
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        shape = ",".join(str(d) for d in t.shape)
        digest = hashlib.sha256(data).hexdigest()
        print(f"tensor {name} {dtype} {shape} {digest}")
    print(f"loader {loader}")
    print(f"metadata {json.dumps(read_metadata(path), sort_keys=True)}")

    if resave is not None:
        save_file(tensors, resave, metadata={"format": "pt"})
        print(f"resaved {resave}")
    if "--seed-net" in flags:
        if torch is None:
            print("seed-net skipped: torch is not installed")
        else:
            seed_net().load_state_dict(tensors, strict=True)
            print("seed-net load_state_dict ok")
    return 0


def read_metadata(path):
    """The header's `__metadata__` (safetensors' loaders do not return it)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def seed_net():
    """The seed tutorial's model (OpenFL's "Secure Aggregation with MNIST", cell 3; as
    scripts/baselines/seed_common.py)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)

        def forward(self, x):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2(x), 2))
            x = x.view(-1, 320)
            x = F.relu(self.fc1(x))
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    return Net()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as e:  # a file that safetensors or load_state_dict refuses
        print(f"check_safetensors: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
