#!/usr/bin/env bash
# What variants cost, on fresh release servers with a 1280×720 source at
# 30 fps (tests/data/jpeg_200k.jpg), loaded by mjpeg-bench:
#
# - mix: 200 viewers of the stream, 200 of ?width=320 and 50 of
#   ?width=640&quality=60 at once; every viewer's fps, the server's CPU
#   and peak RSS;
# - sharing: 1 and 100 viewers of ?width=320, and the plain fan-out of the
#   same 320×180 frames (a synthetic stream of one) to 1 and 100 viewers:
#   100 viewers of a variant should cost at most 1.2 × one viewer of it
#   plus the fan-out.
#
#   bench/variants.sh
#
# Environment: BENCH_PORT (default 18221), BENCH_DURATION (seconds per case,
# default 10), BENCH_OUT (default target/variants). Everything stays on
# 127.0.0.1. Step times of one variant frame: cargo bench --bench variant.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${BENCH_PORT:-18221}"
duration="${BENCH_DURATION:-10}"
out="${BENCH_OUT:-target/variants}"
mkdir -p "$out"
. bench/server.sh
release_tools bench/variants.sh
base="http://127.0.0.1:$port"

# start SOURCE: a fresh server with stream b.
start() {
  "$bin/mjpeg-server" --listen "127.0.0.1:$port" --max-connections-per-address 0 \
    --stream "b=$1" >"$out/server.log" 2>&1 &
  server_pid=$!
  wait_up "$base/status" "$out/server.log"
}

# load NAME QUERY CLIENTS [PID]: mjpeg-bench on /stream/b?QUERY, report to
# $out/NAME.json; with PID, the server's CPU and RSS are read too.
load() {
  local name="$1" query="$2" clients="$3" pid="${4:-}"
  "$bin/mjpeg-bench" --url "$base/stream/b$query" --clients "$clients" \
    --duration "$duration" --warmup 2 ${pid:+--server-pid "$pid"} --json \
    >"$out/$name.json" 2>"$out/$name.log"
}

fps() { jq -r '"\(.fast.fps.min * 10 | round / 10) / \(.fast.fps.median * 10 | round / 10)"' "$out/$1.json"; }
cpu() { jq -r '.server.cpu_s / .window_s * 100 | floor' "$out/$1.json"; }

echo "== mix: 200 plain + 200 ?width=320 + 50 ?width=640&quality=60" >&2
start "synthetic:tests/data/jpeg_200k.jpg#fps=30"
load mix-plain "" 200 "$server_pid" &
a=$!
load mix-320 "?width=320" 200 &
b=$!
load mix-640 "?width=640&quality=60" 50 &
c=$!
# The variants as /status shows them halfway through the window.
sleep "$(awk -v d="$duration" 'BEGIN { print 2 + 5 + d / 2 }')"
status="$(curl -s "$base/status")"
wait "$a" "$b" "$c"
stop_server

echo "== sharing" >&2
start "synthetic:tests/data/jpeg_200k.jpg#fps=30"
curl -sf "$base/snapshot/b?width=320" -o "$out/w320.jpg"
load share-1 "?width=320" 1 "$server_pid"
stop_server
start "synthetic:tests/data/jpeg_200k.jpg#fps=30"
load share-100 "?width=320" 100 "$server_pid"
stop_server
start "synthetic:$out/w320.jpg#fps=30"
load fan-1 "" 1 "$server_pid"
stop_server
start "synthetic:$out/w320.jpg#fps=30"
load fan-100 "" 100 "$server_pid"
stop_server

cpu_s() { jq '.server.cpu_s * 100 | round / 100' "$out/$1.json"; }
c1=$(cpu_s share-1)
c100=$(cpu_s share-100)
f1=$(cpu_s fan-1)
f100=$(cpu_s fan-100)
cat <<TABLE
### Variants, $duration s per case ($(nproc) cores)

| case | viewers | fps per viewer (min / median) |
| --- | ---: | --- |
| the stream itself | 200 | $(fps mix-plain) |
| ?width=320 | 200 | $(fps mix-320) |
| ?width=640&quality=60 | 50 | $(fps mix-640) |

Server during the mix: $(cpu mix-plain) % of one core, peak RSS $(jq '.server.peak_rss_mb * 10 | round / 10' "$out/mix-plain.json") MB;
variants: $(echo "$status" | jq -c '[.streams[0].variants[] | {variant, viewers, mean_ms, p99_ms}]')

| sharing | server CPU-s in $duration s |
| --- | ---: |
| 1 viewer of ?width=320 | $c1 |
| 100 viewers of ?width=320 | $c100 |
| plain fan-out of 320×180 frames, 1 viewer | $f1 |
| plain fan-out of 320×180 frames, 100 viewers | $f100 |

100 viewers of a variant / (1.2 × 1 viewer + fan-out of 99 more): $(echo "$c100 $c1 $f100 $f1" | awk '{printf "%.2f", $1 / (1.2 * $2 + ($3 - $4))}') (goal: at most 1)
TABLE
