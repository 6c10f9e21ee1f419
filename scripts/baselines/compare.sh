#!/usr/bin/env bash
# Runs flspec's SecAgg MNIST demo side by side with the systems it is compared to, interleaved, on
# this machine, and writes a markdown table of medians and ratios (competitor / flspec):
#
#   flspec       the release binary of `examples/secagg_mnist.rs`: 2 collaborators, 2 rounds,
#                SecAgg on (and plain FedAvg, and SecAgg with --threads 2), bundled data/mnist-5k
#   OpenFL 1.9   the seed flow ("Secure Aggregation with MNIST", the tutorial in
#                ../shared/reference/) on LocalRuntime(backend="single_process"), checkpoint off
#   raw PyTorch  the seed's own PyTorch code without a framework (the floor a Python user gets)
#   Flower 1.42  the simulation engine on Ray, n = 2, 2 rounds, plain FedAvg and SecAgg+
#
# every one on the same files (data/mnist-5k: 4,000 train / 1,000 test images; collaborator i of n
# takes every n-th sample from i), A B C ... A B C ... with the order rotated every repetition, so
# that a machine shared with other work disturbs every variant alike. Each run is a fresh process,
# timed from fork to exit (imports and start-up included); its peak memory is the highest sum of
# RSS (and of PSS) over its whole process tree (Ray starts several processes), sampled from /proc.
#
# Usage: scripts/baselines/compare.sh [options]
#   --reps N         measured repetitions of every variant (default 3)
#   --warmup N       unmeasured passes first, to warm the page cache (default 1)
#   --only LIST      comma-separated variants (default: the seven n = 2 variants; `--list`
#                    names them all, with the scale ones: 31 and 100 collaborators, 1 round)
#   --list           list the variants and exit
#   --setup-only     create the virtual environments and exit
#   --no-setup       do not check or create the virtual environments (they must exist)
#   --no-build       do not build the flspec binary (it must exist)
#   --flspec-bin P   measure this secagg_mnist binary instead of building one (implies --no-build)
#   --out FILE       the markdown report (default target-release/baselines/report.md)
#   --timeout S      kill a single run after S seconds (default 600)
#   --threads N      libtorch threads per operation for every variant (flspec --threads N,
#                    OMP_NUM_THREADS=N for PyTorch and Ray's actors); default: each system's own
#                    default (flspec's --threads default, PyTorch one per core). On a machine that
#                    other work shares, PyTorch's OpenMP pool with one thread per core slows down
#                    many times over (its threads wait at every operation's barrier for a thread
#                    the kernel descheduled): use --threads 1 there for a like-for-like comparison.
# Environment: BASELINES_VENV (default <repo>/.venv-baselines), PYTHON (default python3.11 or
#   python3; must be 3.11 or 3.12: openfl 1.9 wants < 3.13, the cached torch wheel is cp311),
#   CARGO_TARGET_DIR (default <repo>/target-release, so the debug build is not disturbed),
#   FLSPEC_SOURCE (text for the report: where the measured binary was built from; default: the
#   repository's HEAD commit, and whether the tree has uncommitted changes).
#
# Set-up (first run only; later runs check stamp files and start at once):
#   - three folders under .venv-baselines/ (git-ignored, about 6 GB):
#       torch/   torch==2.13.0 + torchvision==0.28.0 from PyPI, installed once with `pip install
#                --target` and shared by the two venvs through a .pth file;
#       openfl/  a venv: openfl==1.9 plus the workflow interface's own requirements
#                (openfl-tutorials/experimental/workflow/workflow_interface_requirements.txt,
#                shipped in the openfl wheel: ray 2.43.0, metaflow 2.7.15, dill, tabulate, ...)
#                and pycryptodome, exactly as the tutorial's first cell installs them (plus
#                openfl-constraints.txt: today's execnb/fastcore releases break the pinned nbdev);
#       flower/  a venv: flwr[simulation]==1.42.* (ray 2.55.1, as flwr pins it).
#     OpenFL and Flower cannot share one venv: openfl 1.9 needs grpcio < 1.66 and protobuf < 6,
#     flwr 1.42 needs grpcio >= 1.70.
#   - torch: PyPI's Linux wheel of torch 2.13.0 is the CUDA build. `pip install --no-deps torch`
#     does not give an importable CPU torch (`import torch` fails: OSError: libcudart.so.13: cannot
#     open shared object file; then ValueError: libcublasLt.so.*[0-9] not found in the system
#     path): torch/_C.so needs libtorch_python.so, which lists
#     libtorch_cuda.so, libcudnn.so.9, libnccl.so.2 and libcufile.so.0 as NEEDED, and
#     libtorch_cuda.so needs cuBLAS, cuFFT, cuSPARSE(Lt), cuRAND, NVRTC and nvshmem. So torch is
#     installed with its dependencies (about 3 GB of nvidia-* wheels, 4.8 GB installed, once);
#     the runs use the CPU only (CUDA_VISIBLE_DEVICES is empty), exactly as the baselines did. With
#     Python 3.11, the torch wheel that scripts/setup-libtorch.sh cached in .cache/wheels/ is reused.
#   - Measured (2 busy cores, load 5-7, PyPI at 50-70 MB/s): 10 minutes on a first run (torch 4,
#     openfl 4, flower 2); then 0 s.
#
# Network: pip talks to PyPI only; the runs themselves reach nothing (Ray's usage statistics and
# Flower's telemetry are switched off through their environment variables).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/baselines"
VENV=${BASELINES_VENV:-$ROOT/.venv-baselines}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-release}

TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
OPENFL_VERSION=1.9
FLWR_SPEC='flwr[simulation]==1.42.*'

say() { printf 'compare: %s\n' "$*" >&2; }
die() {
	printf 'compare: error: %s\n' "$*" >&2
	exit 1
}

reps=3
warmup=1
only=""
setup=1
setup_only=0
build=1
list=0
out=""
bin=""
run_timeout=600
threads=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--reps) reps=${2:?--reps needs a number}; shift 2 ;;
	--warmup) warmup=${2:?--warmup needs a number}; shift 2 ;;
	--only) only=${2:?--only needs a list}; shift 2 ;;
	--out) out=${2:?--out needs a file}; shift 2 ;;
	--timeout) run_timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--threads) threads=${2:?--threads needs a number}; shift 2 ;;
	--setup-only) setup_only=1; shift ;;
	--no-setup) setup=0; shift ;;
	--no-build) build=0; shift ;;
	--flspec-bin) bin=${2:?--flspec-bin needs a path}; build=0; shift 2 ;;
	--list) list=1; shift ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument '$1'; see $0 --help" ;;
	esac
done
out=${out:-$CARGO_TARGET_DIR/baselines/report.md}

pick_python() {
	local p
	for p in ${PYTHON:-} python3.11 python3.12 python3; do
		if command -v "$p" >/dev/null 2>&1 &&
			"$p" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)' 2>/dev/null; then
			command -v "$p"
			return 0
		fi
	done
	return 1
}

# pip, bounded: every pip call has a wall-clock limit so that a stalled download ends the script.
pip_in() {
	local python=$1
	shift
	timeout 1800 "$python" -m pip install --disable-pip-version-check --no-input "$@"
}

setup_torch() {
	local stamp="$VENV/torch/.stamp" want="torch=$TORCH_VERSION torchvision=$TORCHVISION_VERSION"
	if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
	say "installing torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION into $VENV/torch (once; about 3 GB from PyPI)"
	rm -rf "$VENV/torch"
	mkdir -p "$VENV/torch"
	# The cp311 wheel that scripts/setup-libtorch.sh downloaded (and checked) saves 0.5 GB; pip
	# prefers the index to --find-links, so it is named as a file.
	local torch_req="torch==$TORCH_VERSION"
	local cached="$ROOT/.cache/wheels/torch-$TORCH_VERSION-cp311-cp311-manylinux_2_28_x86_64.whl"
	if [[ -f $cached ]] && "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
		torch_req=$cached
	fi
	pip_in "$PY" --target "$VENV/torch" "$torch_req" "torchvision==$TORCHVISION_VERSION"
	echo "$want" >"$stamp"
}

# A venv that sees the shared torch folder after its own site-packages.
make_venv() {
	local dir=$1
	"$PY" -m venv "$dir"
	local site
	site=$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	echo "$VENV/torch" >"$site/flspec-baselines-torch.pth"
}

setup_openfl() {
	local stamp="$VENV/openfl/.stamp" want="openfl=$OPENFL_VERSION torch=$TORCH_VERSION"
	if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
	say "creating $VENV/openfl: openfl==$OPENFL_VERSION with the workflow interface's requirements"
	rm -rf "$VENV/openfl"
	make_venv "$VENV/openfl"
	local py="$VENV/openfl/bin/python"
	pip_in "$py" "openfl==$OPENFL_VERSION"
	local req
	req=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/openfl-tutorials/experimental/workflow/workflow_interface_requirements.txt
	[[ -f $req ]] || die "the openfl $OPENFL_VERSION wheel did not install $req; the workflow interface's requirements are unknown"
	# openfl-constraints.txt: bounds for nbdev's dependencies, without which the import fails.
	pip_in "$py" -r "$req" -c "$HERE/openfl-constraints.txt" pycryptodome
	echo "$want" >"$stamp"
}

setup_flower() {
	local stamp="$VENV/flower/.stamp" want="$FLWR_SPEC torch=$TORCH_VERSION"
	if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
	say "creating $VENV/flower: $FLWR_SPEC"
	rm -rf "$VENV/flower"
	make_venv "$VENV/flower"
	pip_in "$VENV/flower/bin/python" "$FLWR_SPEC"
	echo "$want" >"$stamp"
}

PY=$(pick_python) || die "no Python 3.11 or 3.12 found (openfl 1.9 needs < 3.13; Flower 1.42 needs >= 3.11): install python3.11 or set PYTHON"
say "python: $PY ($("$PY" --version 2>&1))"

if [[ $list == 1 ]]; then
	exec "$PY" "$HERE/bench.py" --list
fi

if [[ $setup == 1 ]]; then
	t0=$SECONDS
	setup_torch
	setup_openfl
	setup_flower
	say "environments ready in $VENV ($((SECONDS - t0)) s)"
fi
[[ $setup_only == 1 ]] && exit 0

# MNIST as torchvision's MNIST class reads it (MNIST/raw/, uncompressed), from the bundled subset.
DATA="$VENV/data"
"$PY" "$HERE/prepare_data.py" "$ROOT/data/mnist-5k" "$DATA"

BIN=${bin:-$CARGO_TARGET_DIR/release/examples/secagg_mnist}
if [[ $build == 1 ]]; then
	say "building the flspec release binary ($BIN)"
	(cd "$ROOT" && cargo build --release --example secagg_mnist)
fi
[[ -x $BIN ]] || die "$BIN is missing: build it with CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release --example secagg_mnist"

args=(--root "$ROOT" --venv "$VENV" --data "$DATA" --flspec "$BIN" --reps "$reps" --warmup "$warmup"
	--out "$out" --timeout "$run_timeout" --threads "$threads")
[[ -n $only ]] && args+=(--only "$only")
[[ -n ${FLSPEC_SOURCE:-} ]] && args+=(--flspec-source "$FLSPEC_SOURCE")
exec "$PY" "$HERE/bench.py" "${args[@]}"
