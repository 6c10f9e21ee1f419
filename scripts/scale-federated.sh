#!/usr/bin/env bash
# One round of SecAgg MNIST with N collaborators hosted by E envoy processes on this machine
# (issue 12): a director, E envoys each hosting N/E collaborators (`envoy --hosts-file`, given
# to it by the director's `--hosts` list), SecAgg+ (malicious-secure by default), tiny shares of
# the bundled data. Prints the wall time of the run, the bytes the director sent and received
# per collaborator (its /metrics), and the peak RSS of the director and of each envoy.
#
#   scripts/scale-federated.sh [N] [E] [extra client flags...]
#   e.g. scripts/scale-federated.sh 1000 4
#        scripts/scale-federated.sh 1000 4 --secagg-security semi-honest
#
# Uses the release build in ${CARGO_TARGET_DIR:-target-release}; builds it if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
E=${2:-4}
shift $(( $# > 2 ? 2 : $# ))
TARGET=${CARGO_TARGET_DIR:-$PWD/target-release}
BIN="$TARGET/release/examples/secagg_mnist"
FED="$TARGET/release/flspec-fed"
if [[ ! -x "$BIN" || ! -x "$FED" ]]; then
  CARGO_TARGET_DIR="$TARGET" cargo build --release --example secagg_mnist -p flspec-examples
  CARGO_TARGET_DIR="$TARGET" cargo build --release -p flspec-federated --bin flspec-fed
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The collaborators' names, as the example makes them: Bengaluru, Portland, collaborator-003...
names() {
  for ((i = 1; i <= N; i++)); do
    case $i in
      1) echo Bengaluru ;;
      2) echo Portland ;;
      *) printf 'collaborator-%03d\n' "$i" ;;
    esac
  done
}
names > "$WORK/names.txt"
certs_args=()
for ((e = 1; e <= E; e++)); do certs_args+=(--envoy "site-$e"); done
while read -r name; do certs_args+=(--envoy "$name"); done < "$WORK/names.txt"
started=$(date +%s.%N)
"$FED" certs --out "$WORK/certs" --director-host 127.0.0.1 "${certs_args[@]}" > /dev/null
echo "certificates for $E envoys and $N collaborators: $(echo "$(date +%s.%N) - $started" | bc) s"
: > "$WORK/hosts.txt"
for ((e = 1; e <= E; e++)); do
  awk -v e="$e" -v E="$E" '(NR - 1) % E == e - 1' "$WORK/names.txt" > "$WORK/site-$e.txt"
  echo "site-$e $(tr '\n' ' ' < "$WORK/site-$e.txt")" >> "$WORK/hosts.txt"
done
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADMIN=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
"$BIN" director --listen "$ADDR" --certs "$WORK/certs" --hosts "$WORK/hosts.txt" \
  --admin "127.0.0.1:$ADMIN" 2> "$WORK/director.log" &
PIDS+=($!)
DIRECTOR=$!
ENVOYS=()
for ((e = 1; e <= E; e++)); do
  "$BIN" envoy --director "$ADDR" --name "site-$e" --certs "$WORK/certs" --threads 1 \
    --collaborators "$N" --hosts-file "$WORK/site-$e.txt" 2> "$WORK/envoy-$e.log" &
  PIDS+=($!)
  ENVOYS+=($!)
done
for ((t = 0; t < 600; t++)); do
  online=$("$FED" envoys --director "$ADDR" --certs "$WORK/certs" 2>/dev/null | grep -c -E 'online|idle' || true)
  [[ "$online" -ge "$E" ]] && break
  sleep 0.2
done
echo "$E envoys online"
started=$(date +%s.%N)
"$BIN" --runtime federated --director "$ADDR" --certs "$WORK/certs" --collaborators "$N" \
  --rounds 1 --secagg-plus --max-samples 64 --quiet "$@" | tee "$WORK/client.out"
wall=$(echo "$(date +%s.%N) - $started" | bc)
metrics=$(curl -s "http://127.0.0.1:$ADMIN/metrics" || python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$ADMIN/metrics').read().decode())")
sent=$(echo "$metrics" | awk '/^flspec_director_envoy_sent_bytes_total/ {s += $2} END {print s + 0}')
received=$(echo "$metrics" | awk '/^flspec_director_envoy_received_bytes_total/ {s += $2} END {print s + 0}')
rss() { awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$1/status"; }
echo "== $N collaborators in $E envoy processes, one round: $wall s wall (client submit to table)"
echo "director sent $((sent / N)) B and received $((received / N)) B per collaborator (task payloads)"
echo "peak RSS: director $(rss "$DIRECTOR")"
for ((e = 1; e <= E; e++)); do echo "peak RSS: envoy site-$e $(rss "${ENVOYS[$((e - 1))]}")"; done
echo "CPU: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}') ($(nproc) cores)"
