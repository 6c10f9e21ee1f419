#!/usr/bin/env bash
# `make demo-federated`: the SecAgg MNIST flow through a director and two envoys over mutual TLS
# on 127.0.0.1, with a fresh certificate authority. Starts them, runs the example through them,
# and stops them (also on failure or Ctrl-C). Extra arguments go to the example's client.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
# FLSPEC_PROFILE=debug uses the debug build (the tests do; `make test` has built it already).
profile=${FLSPEC_PROFILE:-release}
flags=(); [ "$profile" = release ] && flags=(--release)
echo "== building the example and the federation CLI ($profile)"
cargo build "${flags[@]}" --example secagg_mnist
cargo build "${flags[@]}" -p flspec-federated --bin flspec-fed
bin="$target/$profile/examples/secagg_mnist"
fed="$target/$profile/flspec-fed"

work=$(mktemp -d "${TMPDIR:-/tmp}/flspec-federation.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "== logs and certificates: $work"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"

echo "== certificates: a CA, the director, Bengaluru, Portland, a client"
"$fed" certs --out "$work/certs" --director-host 127.0.0.1 --envoy Bengaluru --envoy Portland

echo "== director on $addr; envoys Bengaluru and Portland"
"$bin" director --listen "$addr" --certs "$work/certs" >"$work/director.log" 2>&1 &
pids+=($!)
# Two envoys share this machine: each gets half of its cores for libtorch (at least 1).
cores=$(nproc 2>/dev/null || echo 1)
threads=$(( cores / 2 > 0 ? cores / 2 : 1 ))
for name in Bengaluru Portland; do
    "$bin" envoy --director "$addr" --name "$name" --certs "$work/certs" --threads "$threads" \
        >"$work/envoy-$name.log" 2>&1 &
    pids+=($!)
done

# Wait (at most 60 s) until both envoys are online.
for _ in $(seq 1 120); do
    if listing=$("$fed" envoys --director "$addr" --certs "$work/certs" 2>/dev/null) \
        && [ "$(grep -ciE 'online|idle|busy' <<<"$listing")" -ge 2 ]; then
        break
    fi
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a federation process exited; its log:" >&2
            tail -n 20 "$work"/*.log >&2
            exit 1
        fi
    done
    sleep 0.5
done
echo "$listing"

echo "== the flow, through the director"
"$bin" --runtime federated --director "$addr" --certs "$work/certs" "$@"
