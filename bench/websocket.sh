#!/usr/bin/env bash
# What a viewer over the player's WebSocket costs against a multipart
# viewer, in one run: CLIENTS viewers of a 50 kB, 30 fps stream, loaded by
# mjpeg-bench over /stream/b and over /ws (--websocket), on a fresh release
# server per case. The two take turns, round by round, so that whatever
# else the machine does falls on both alike; the answer is the ratio of
# the medians. Goals: every viewer ≥ 29 fps, CPU-s per GB within 1.2× and
# peak RSS within 1.5× of the multipart path.
#
#   bench/websocket.sh [CLIENTS] [ROUNDS]     (default 1000 clients, 3 rounds)
#
# Environment: BENCH_PORT (default 18231), BENCH_DURATION (seconds per case,
# default 10), BENCH_OUT (default target/websocket). Everything stays on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

clients="${1:-1000}"
rounds="${2:-3}"
port="${BENCH_PORT:-18231}"
duration="${BENCH_DURATION:-10}"
out="${BENCH_OUT:-target/websocket}"
mkdir -p "$out"
. bench/server.sh
release_tools bench/websocket.sh
base="http://127.0.0.1:$port"

# measure LABEL [--websocket]: one case on a fresh server.
measure() {
  local label="$1"
  shift
  "$bin/mjpeg-server" --listen "127.0.0.1:$port" --max-connections $((clients + 100)) \
    --max-connections-per-address 0 \
    --stream "b=synthetic:tests/data/jpeg_50k.jpg#fps=30" >"$out/$label.log" 2>&1 &
  server_pid=$!
  wait_up "$base/status" "$out/$label.log"
  "$bin/mjpeg-bench" --url "$base/stream/b" --server-pid "$server_pid" --clients "$clients" \
    --duration "$duration" --connect-timeout 60 --json "$@" >"$out/$label.json" 2>"$out/$label.txt"
  stop_server
  echo "round $round, $label: $(jq -c '{fps_min: .fast.fps.min, cpu_s_per_gb: .server.cpu_s_per_gb, rss_mb: .server.peak_rss_mb}' "$out/$label.json")" >&2
}

for round in $(seq "$rounds"); do
  measure "multipart-$round"
  measure "websocket-$round" --websocket
done

# median KIND JQ: the median over the rounds of one figure.
median() {
  for round in $(seq "$rounds"); do jq -r "$2" "$out/$1-$round.json"; done |
    sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'
}
# lowest KIND JQ: the lowest over the rounds.
lowest() { for round in $(seq "$rounds"); do jq -r "$2" "$out/$1-$round.json"; done | sort -g | head -1; }

row() {
  printf '| %s | %s | %.2f / %.2f | %.0f | %.1f / %.1f | %.0f %% | %.3f | %.1f MB |\n' "$2" \
    "$(median "$1" .connected)" "$(lowest "$1" .fast.fps.min)" "$(median "$1" .fast.fps.median)" \
    "$(median "$1" .mb_per_s)" "$(median "$1" .fast.latency_ms.p50)" "$(median "$1" .fast.latency_ms.p99)" \
    "$(median "$1" .server.cpu_percent)" "$(median "$1" .server.cpu_s_per_gb)" "$(median "$1" .server.peak_rss_mb)"
}
cpu_ratio=$(awk -v w="$(median websocket .server.cpu_s_per_gb)" -v m="$(median multipart .server.cpu_s_per_gb)" 'BEGIN { printf "%.2f", w / m }')
rss_ratio=$(awk -v w="$(median websocket .server.peak_rss_mb)" -v m="$(median multipart .server.peak_rss_mb)" 'BEGIN { printf "%.2f", w / m }')
slowest=$(lowest websocket .fast.fps.min)
met() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }" && echo yes || echo no; }
cat <<TABLE
### The player's WebSocket against the multipart stream: $clients viewers × 30 fps × 50 kB, $duration s per case, median of $rounds rounds ($(nproc) cores)

| path | connected | fps per viewer: slowest of any round / median | MB/s | latency ms p50 / p99 | server CPU | server CPU-s per GB | server peak RSS |
| --- | ---: | --- | ---: | --- | ---: | ---: | ---: |
$(row multipart "multipart (\`/stream/b\`)")
$(row websocket "WebSocket (\`/ws\`, \`--websocket\`)")

| goal | measured | met |
| --- | --- | --- |
| every WebSocket viewer ≥ 29 fps | slowest $(printf "%.2f" "$slowest") fps | $(met "$slowest" '>=' 29) |
| CPU-s per GB within 1.2× of multipart | $cpu_ratio× | $(met "$cpu_ratio" '<=' 1.2) |
| peak RSS within 1.5× of multipart | $rss_ratio× | $(met "$rss_ratio" '<=' 1.5) |
TABLE
