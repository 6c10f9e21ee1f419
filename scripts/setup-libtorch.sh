#!/usr/bin/env bash
# Creates the project-local, CPU-only libtorch folder `.libtorch/` that the `torch` feature of the
# root package (tch 0.26, libtorch 2.13.0) builds and runs against.
#
# It downloads three wheels from PyPI with `python3 -m pip download` (no venv, no root) into
# `.cache/wheels/` (kept between runs) and unpacks only what a CPU build needs (about 0.5 GB instead
# of the ~4.7 GB of a full `pip install torch`):
#
#   include/                  torch's C++ headers           (torch wheel)
#   lib/libtorch_cpu.so       the CPU implementation        (torch wheel)
#   lib/libc10.so             core library                  (torch wheel)
#   lib/libgomp.so.1          the OpenMP runtime torch uses (torch wheel)
#   lib/libcudart.so.13       NEEDED by libtorch_cpu.so     (nvidia-cuda-runtime wheel)
#   lib/libcupti.so.13        NEEDED by libtorch_cpu.so     (nvidia-cuda-cupti wheel)
#   lib/libtorch.so  -> libtorch_cpu.so   torch-sys always links `-ltorch`; the wheel's own
#                                         libtorch.so needs the 470 MB libtorch_cuda.so
#   lib/libgomp.so   -> libgomp.so.1      torch-sys links `-lgomp`: use the wheel's, not the system's
#   build-version             "2.13.0", checked by torch-sys
#
# Usage: scripts/setup-libtorch.sh [--force]
# Environment: FLSPEC_LIBTORCH_DIR (default <repo>/.libtorch),
#              FLSPEC_WHEEL_CACHE (default <repo>/.cache/wheels).
# Idempotent: a stamp file makes a second run instant; --force rebuilds the folder from the cache.
set -euo pipefail

TORCH_VERSION=2.13.0
CUDART_VERSION=13.0.96 # torch 2.13.0 requires cuda-toolkit[cudart,cupti]==13.0.3, which pins these
CUPTI_VERSION=13.0.85
LAYOUT=1 # bump when the set of unpacked files changes

# Wheel files and their SHA-256 (as published on PyPI). The torch wheel is pinned to the cp311 tag
# so that any host Python can fetch it: only its C++ libraries are used, never its Python part.
TORCH_WHEEL="torch-${TORCH_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
TORCH_SHA256=60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7
CUDART_WHEEL="nvidia_cuda_runtime-${CUDART_VERSION}-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
CUDART_SHA256=7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
CUPTI_WHEEL="nvidia_cuda_cupti-${CUPTI_VERSION}-py3-none-manylinux_2_25_x86_64.whl"
CUPTI_SHA256=4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${FLSPEC_LIBTORCH_DIR:-$ROOT/.libtorch}
CACHE=${FLSPEC_WHEEL_CACHE:-$ROOT/.cache/wheels}
STAMP="$DEST/.flspec-setup-stamp"
WANT="torch=$TORCH_VERSION cudart=$CUDART_VERSION cupti=$CUPTI_VERSION layout=$LAYOUT"

say() { printf 'setup-libtorch: %s\n' "$*"; }
die() {
	printf 'setup-libtorch: error: %s\n' "$*" >&2
	exit 1
}

force=0
for arg in "$@"; do
	case $arg in
	--force) force=1 ;;
	-h | --help)
		sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument '$arg'; usage: $0 [--force]" ;;
	esac
done

NEEDED_FILES=(build-version include/torch/csrc/api/include/torch/torch.h lib/libtorch_cpu.so
	lib/libc10.so lib/libgomp.so.1 lib/libgomp.so lib/libcudart.so.13 lib/libcupti.so.13 lib/libtorch.so)
complete() {
	local f
	for f in "${NEEDED_FILES[@]}"; do [[ -e "$DEST/$f" ]] || return 1; done
}
if [[ $force == 0 && -f $STAMP && "$(cat "$STAMP")" == "$WANT" ]] && complete; then
	touch "$STAMP" # for make, whose target is the stamp
	say "$DEST is up to date (libtorch $TORCH_VERSION, CPU)"
	exit 0
fi

[[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] ||
	die "only Linux x86_64 is scripted (this is $(uname -s) $(uname -m)); on other systems install libtorch $TORCH_VERSION and set LIBTORCH to its folder"
command -v python3 >/dev/null 2>&1 ||
	die "python3 is missing: install it (Debian: apt-get install python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 ||
	die "pip is missing for python3: install it (Debian: apt-get install python3-pip; without root: python3 -m ensurepip --user, or python3 -m venv .venv && .venv/bin/python -m pip ... needs python3-venv)"

mkdir -p "$CACHE"

# fetch WHEEL SHA256 PIP-ARGS...: downloads one wheel into the cache unless it is there and intact.
fetch() {
	local wheel=$1 sha=$2
	shift 2
	if [[ -f "$CACHE/$wheel" ]] && echo "$sha  $CACHE/$wheel" | sha256sum --check --status; then
		say "cached: $wheel"
		return
	fi
	rm -f "$CACHE/$wheel"
	say "downloading $wheel (pip download) ..."
	PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip download --quiet --no-deps --only-binary=:all: \
		--dest "$CACHE" "$@" ||
		die "pip download failed for $wheel (is PyPI reachable? a proxy can be set with HTTPS_PROXY)"
	[[ -f "$CACHE/$wheel" ]] || die "pip did not produce $CACHE/$wheel (files there: $(ls "$CACHE"))"
	echo "$sha  $CACHE/$wheel" | sha256sum --check --status ||
		die "checksum mismatch for $CACHE/$wheel: delete it and run again"
}

manylinux=(--platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64
	--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
fetch "$TORCH_WHEEL" "$TORCH_SHA256" "${manylinux[@]}" \
	--python-version 3.11 --implementation cp --abi cp311 "torch==$TORCH_VERSION"
fetch "$CUDART_WHEEL" "$CUDART_SHA256" "${manylinux[@]}" "nvidia-cuda-runtime==$CUDART_VERSION"
fetch "$CUPTI_WHEEL" "$CUPTI_SHA256" "${manylinux[@]}" "nvidia-cuda-cupti==$CUPTI_VERSION"

# Unpack into a fresh folder next to DEST, then swap it in, so an interrupted run never leaves a
# half-filled DEST behind a valid stamp.
TMP="$DEST.tmp.$$"
trap 'rm -rf "$TMP"' EXIT
rm -rf "$TMP"
mkdir -p "$TMP/lib" "$TMP/include"
say "unpacking headers and CPU libraries into $DEST ..."
python3 - "$TMP" "$CACHE/$TORCH_WHEEL" "$CACHE/$CUDART_WHEEL" "$CACHE/$CUPTI_WHEEL" <<'EOF'
import os, shutil, sys, zipfile

dest, torch_whl, cudart_whl, cupti_whl = sys.argv[1:]

def copy(zf, member, target):
    target = os.path.join(dest, target)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with zf.open(member) as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(target, 0o755 if ".so" in target else 0o644)

with zipfile.ZipFile(torch_whl) as zf:
    n = 0
    for info in zf.infolist():
        name = info.filename
        if name.startswith("torch/include/") and not info.is_dir():
            copy(zf, name, name[len("torch/"):])
            n += 1
    print(f"setup-libtorch:   {n} header files")
    for lib in ("libtorch_cpu.so", "libc10.so", "libgomp.so.1"):
        copy(zf, "torch/lib/" + lib, "lib/" + lib)
for whl, lib in ((cudart_whl, "libcudart.so.13"), (cupti_whl, "libcupti.so.13")):
    with zipfile.ZipFile(whl) as zf:
        copy(zf, "nvidia/cu13/lib/" + lib, "lib/" + lib)
EOF
ln -s libtorch_cpu.so "$TMP/lib/libtorch.so"
ln -s libgomp.so.1 "$TMP/lib/libgomp.so"
printf '%s' "$TORCH_VERSION" >"$TMP/build-version"

# Every NEEDED library of libtorch_cpu.so must resolve (its RPATH has $ORIGIN) without a GPU.
python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "$TMP/lib/libtorch_cpu.so" ||
	die "the unpacked libtorch_cpu.so does not load (see the error above)"

for f in "${NEEDED_FILES[@]}"; do
	[[ -e "$TMP/$f" ]] || die "$f is missing from the unpacked wheels"
done

rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
printf '%s' "$WANT" >"$STAMP"
say "done: $DEST ($(du -sh "$DEST" | cut -f1)); cargo finds it through .cargo/config.toml"
