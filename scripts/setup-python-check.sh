#!/usr/bin/env bash
# Creates `.venv-check/`, a small Python venv with `safetensors`, `numpy` and `tensorboard` (about
# 180 MB, under 30 s with a reachable PyPI), so that the tests that check our files with the
# reference Python readers run instead of skipping:
#   - flspec-tch's `python_safetensors_reads_the_file_and_writes_one_we_read` (tests/export.rs):
#     the model export, read by `safetensors` (scripts/check_safetensors.py);
#   - flspec's `tensorboard_reads_a_fresh_file` and `tensorboard_reads_the_golden_file`
#     (tests/fl_history.rs): the run history's event files, read by TensorBoard's own
#     EventAccumulator (scripts/reference/tensorboard_events.py).
#
# PyTorch itself is not installed: the PyPI torch 2.13.0 wheel is the CUDA build (530 MB, and
# `import torch` needs about 3 GB more of CUDA wheels), and the CPU-only wheel lives on
# download.pytorch.org. `safetensors.numpy` reads the file with the same parser and checks the
# same names, shapes and values; to also run `load_state_dict(strict=True)` into the seed's `Net`,
# point FLSPEC_CHECK_PYTHON at a Python that has torch and safetensors.
#
# Usage: scripts/setup-python-check.sh [--force]
# Environment: FLSPEC_CHECK_VENV (default <repo>/.venv-check).
# Idempotent: when the venv already imports safetensors, numpy and tensorboard it does nothing.
# Never fails the caller: without python3, venv or PyPI it says why and exits 0 (the test then
# skips, saying why).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FLSPEC_CHECK_VENV:-$ROOT/.venv-check}
say() { printf 'setup-python-check: %s\n' "$*"; }

force=0
for arg in "$@"; do
	case $arg in
	--force) force=1 ;;
	-h | --help)
		sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		say "unknown argument '$arg'; usage: $0 [--force]" >&2
		exit 2
		;;
	esac
done

if [[ $force == 0 ]] && "$VENV/bin/python" -c 'import safetensors, numpy, tensorboard' >/dev/null 2>&1; then
	say "$VENV is ready"
	exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
	say "python3 is missing (Debian: apt-get install python3 python3-venv); the safetensors and TensorBoard checks will skip"
	exit 0
fi
rm -rf "$VENV"
if ! python3 -m venv "$VENV"; then
	rm -rf "$VENV"
	say "python3 -m venv failed (Debian: apt-get install python3-venv); the safetensors and TensorBoard checks will skip"
	exit 0
fi
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet --no-cache-dir safetensors numpy tensorboard; then
	rm -rf "$VENV"
	say "pip install safetensors numpy tensorboard failed (is PyPI reachable? HTTPS_PROXY sets a proxy); the safetensors and TensorBoard checks will skip"
	exit 0
fi
say "$VENV: $("$VENV/bin/python" -c 'import safetensors, numpy, tensorboard; print("safetensors", safetensors.__version__, "numpy", numpy.__version__, "tensorboard", tensorboard.__version__)')"
