#!/usr/bin/env bash
# Compares two server binaries in one run, on the cases where a change of
# the code shows first: 1000 clients x 30 fps x 50 KB (CPU-seconds per GB)
# and 10 000 clients at 1 fps (peak RSS). The binaries take turns, case by
# case and round by round, so that whatever else the machine does falls on
# both alike; the answer is the ratio of the medians, not figures to set
# beside another day's.
#
#   bench/compare.sh OLD-BINARY NEW-BINARY [ROUNDS]
#
# For example, the release build of another commit against this one:
#
#   git worktree add /tmp/old COMMIT && (cd /tmp/old && cargo build --release)
#   cargo build --release
#   bench/compare.sh /tmp/old/target/release/mjpeg-server target/release/mjpeg-server
#
# The load client is this checkout's mjpeg-bench (built here, release).
# Environment: BENCH_PORT (default 18191), BENCH_DURATION (seconds per
# case, default 10), BENCH_OUT (raw JSON, default target/compare).
# Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
  echo "usage: bench/compare.sh OLD-BINARY NEW-BINARY [ROUNDS]" >&2
  exit 2
fi
old="$1" new="$2" rounds="${3:-3}"
for bin in "$old" "$new"; do
  [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "bench/compare.sh needs jq (apt-get install jq)" >&2; exit 2; }

port="${BENCH_PORT:-18191}"
duration="${BENCH_DURATION:-10}"
out="${BENCH_OUT:-target/compare}"
mkdir -p "$out"
clients_big=10000
ulimit -Hn $((clients_big + 1000)) 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((clients_big + 100)) ]; then
  clients_big=$(($(ulimit -n) - 100))
  echo "warning: the open-file limit allows $clients_big clients for the large case" >&2
fi

cargo build --release --quiet -p mjpeg-bench
bench="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/mjpeg-bench"

. bench/server.sh

# measure BINARY LABEL FPS CLIENTS: one case on a fresh server, so that its
# peak RSS is the case's own; prints "cpu_s_per_gb rss_mb".
measure() {
  local bin="$1" label="$2" fps="$3" clients="$4"
  "$bin" --listen "127.0.0.1:$port" --max-connections $((clients_big + 1000)) \
    --max-connections-per-address 0 \
    --stream "b=synthetic:tests/data/jpeg_50k.jpg#fps=$fps" 2>"$out/$label.log" &
  server_pid=$!
  wait_up "http://127.0.0.1:$port/status" "$out/$label.log"
  "$bench" --url "http://127.0.0.1:$port/stream/b" --server-pid "$server_pid" \
    --clients "$clients" --duration "$duration" --connect-timeout 60 --json \
    >"$out/$label.json" 2>"$out/$label.txt"
  stop_server
  jq -r '"\(.server.cpu_s_per_gb) \(.server.peak_rss_mb)"' "$out/$label.json"
}

declare -A cpu rss
for round in $(seq "$rounds"); do
  for which in old new; do
    bin="$old"; [ "$which" = new ] && bin="$new"
    read -r c _ < <(measure "$bin" "c1000-$which-$round" 30 1000)
    read -r _ r < <(measure "$bin" "c10k-$which-$round" 1 "$clients_big")
    cpu[$which]+="$c "
    rss[$which]+="$r "
    echo "round $round, $which: case 1 $c CPU-s per GB; case 3 peak RSS $r MB" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for which in old new; do
  printf '%s: case 1 CPU-s per GB %s (median of %s); case 3 peak RSS MB %s (median of %s)\n' \
    "$which" "$(echo "${cpu[$which]}" | median)" "${cpu[$which]}" \
    "$(echo "${rss[$which]}" | median)" "${rss[$which]}"
done
awk -v oc="$(echo "${cpu[old]}" | median)" -v nc="$(echo "${cpu[new]}" | median)" \
    -v orr="$(echo "${rss[old]}" | median)" -v nr="$(echo "${rss[new]}" | median)" \
  'BEGIN { printf "new / old: case 1 CPU-s per GB %.3f, case 3 peak RSS %.3f\n", nc / oc, nr / orr }'
