#!/usr/bin/env bash
# The server under attack while honest viewers watch.
#
# Starts target/release/mjpeg-server on 127.0.0.1 with an honest stream
# (a 50 KB JPEG at 30 fps), a push stream, a watched folder holding a FIFO,
# and relays of upstreams that never end a body, drip a byte a second, or
# answer a web page. Then, for HOSTILE_SECONDS, bench/hostile.py attacks it
# from 127.0.0.2 (dash-boundary pushes, PNG and BMP decompression bombs,
# HTTP/2 connections idle or with a zero window, uploads refused mid-body,
# bare-LF requests, pushes creating stream after stream) while mjpeg-bench
# keeps HOSTILE_VIEWERS honest viewers on the honest stream.
#
# Passes (exit 0) when every honest viewer got at least 29 fps, the server's
# RSS stayed under HOSTILE_RSS_MIB, the watched folder's images behind the
# FIFO were published, idle and zero-window HTTP/2 connections were closed
# within the timeouts, the log shows no panic, and SIGTERM ends the server
# with exit code 0. Exit 1 on a failed check, 2 when it could not run.
#
#   bench/hostile.sh                         60 s, 100 viewers
#   HOSTILE_SECONDS=30 bench/hostile.sh
#
# Environment: HOSTILE_SECONDS (default 60), HOSTILE_VIEWERS (default 100),
# HOSTILE_RSS_MIB (default 300). Needs python3 >= 3.9. Everything stays on
# 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${HOSTILE_SECONDS:-60}"
viewers="${HOSTILE_VIEWERS:-100}"
rss_limit="${HOSTILE_RSS_MIB:-300}"
# Short timeouts, so that the run sees several rounds of each.
timeout_s=5

die() { echo "hostile: $*" >&2; exit 2; }
case "$seconds$viewers$rss_limit" in *[!0-9]*) die "HOSTILE_SECONDS, HOSTILE_VIEWERS and HOSTILE_RSS_MIB must be whole numbers" ;; esac
[ "$seconds" -ge 20 ] || die "HOSTILE_SECONDS must be >= 20"

cargo build --release --quiet --bin mjpeg-server --bin mjpeg-bench || die "cargo build --release failed"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mjpeg-hostile.XXXXXX")"
pids=()
server_pid=""
cleanup() {
  for p in "${pids[@]}" $server_pid; do
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/watched"

python3 bench/hostile.py upstream "$tmp/upstream.port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/upstream.port" ] && break; sleep 0.1; done
up="$(cat "$tmp/upstream.port")" || die "the test upstream did not start"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
RUST_LOG=info target/release/mjpeg-server \
  --listen "127.0.0.1:$port" \
  --stream "honest=synthetic:tests/data/jpeg_50k.jpg#fps=30" \
  --stream p=push \
  --stream "w=watch:$tmp/watched/" \
  --stream "endless=relay:http://127.0.0.1:$up/endless" \
  --stream "drip=relay:http://127.0.0.1:$up/drip" \
  --stream "page=relay:http://127.0.0.1:$up/page" \
  --allow-create --max-frame-size 4M \
  --header-timeout "$timeout_s" --write-timeout "$timeout_s" \
  --max-connections-per-address 0 \
  >"$tmp/server.log" 2>&1 &
server_pid=$!
sleep 1
kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; die "the server did not start"; }
echo "server: pid $server_pid on http://127.0.0.1:$port/, $seconds s, $viewers honest viewers"

python3 bench/hostile.py attack --port "$port" --pid "$server_pid" --seconds "$seconds" \
  --watched "$tmp/watched" --results "$tmp/attacks.json" &
attack_pid=$!
pids+=($attack_pid)
# Images keep arriving in the watched folder, behind its FIFO.
(for i in $(seq "$seconds"); do
  cp tests/data/jpeg_5k.jpg "$tmp/good.tmp" && mv "$tmp/good.tmp" "$tmp/watched/good-$i.jpg"
  sleep 1
done) &
pids+=($!)

target/release/mjpeg-bench --url "http://127.0.0.1:$port/stream/honest" \
  --clients "$viewers" --warmup 3 --duration "$((seconds - 8))" \
  --server-pid "$server_pid" --json >"$tmp/bench.json" || die "mjpeg-bench failed"
wait "$attack_pid" || die "the attacks failed"
python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port/status', timeout=10).read().decode())" \
  >"$tmp/status.json" || die "/status did not answer"

kill -TERM "$server_pid"
server_rc=""
for _ in $(seq 150); do
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
  server_rc="still running 15 s after SIGTERM"
else
  wait "$server_pid" && server_rc=0 || server_rc=$?
fi
server_pid=""

python3 - "$tmp" "$server_rc" "$rss_limit" "$timeout_s" <<'EOF'
import json, sys
tmp, server_rc, rss_limit, timeout_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bench = json.load(open(f"{tmp}/bench.json"))
attacks = json.load(open(f"{tmp}/attacks.json"))
status = json.load(open(f"{tmp}/status.json"))
log = open(f"{tmp}/server.log", errors="replace").read()
streams = {s["name"]: s for s in status["streams"]}
fps = bench["fast"]["fps"]
rss = max(attacks["rss_mib"] or [0])
held = attacks.get("h2_idle_held_s", []) + attacks.get("h2_zero_window_held_s", [])
print(f"honest viewers: {bench['fast']['receiving']}/{bench['clients']} receiving, fps min {fps['min']:.1f} median {fps['median']:.1f}, "
      f"p99 latency {bench['fast']['latency_ms']['p99'] if bench['fast']['latency_ms'] else '-'} ms, "
      f"server CPU {bench['server']['cpu_percent']:.0f} %")
print(f"server RSS: max {rss} MiB over the run (limit {rss_limit})")
print(f"attacks: " + ", ".join(f"{k} {v}" for k, v in attacks.items() if k not in ("rss_mib", "errors")))
if attacks["errors"]:
    print(f"attack errors (first 5): {attacks['errors'][:5]}")
print(f"relays: " + "; ".join(f"{n}: {streams[n]['source']}, reconnects {streams[n].get('reconnects')}, last error {streams[n].get('last_error')!r}" for n in ("endless", "drip", "page")))
print(f"watched folder: {streams['w']['frames_published']} images published; created streams now: "
      f"{sum(1 for n in streams if n.startswith('spam'))}")
checks = [
    ("every honest viewer at >= 29 fps", fps["min"] >= 29.0),
    ("RSS under the limit", rss <= rss_limit),
    ("the watched folder's images behind a FIFO were published", streams["w"]["frames_published"] > 0),
    ("idle and zero-window HTTP/2 connections closed within 2x the timeouts", bool(held) and max(held) <= 2 * timeout_s + 2),
    ("dash-boundary pushes answered", all(s in (204, 400, 413, 415) for s in attacks.get("dash_push_status", [0]))),
    ("bombs refused", all(s in (400, 413, 415) for k in ("bomb_png_status", "bomb_bmp_status") for s in attacks.get(k, [0]))),
    ("oversize uploads answered 413", attacks.get("oversize_status") == [413]),
    ("bare-LF requests answered 200", attacks.get("bare_lf_status") == [200]),
    ("WebSocket garbage and unmasked frames closed 1002", attacks.get("ws_garbage_close") == [1002] and attacks.get("ws_unmasked_close") == [1002]),
    ("WebSocket frames announcing 1 GiB closed 1009", attacks.get("ws_huge_close") == [1009]),
    ("WebSocket subscribe floods closed 1008", attacks.get("ws_churn_close") == [1008]),
    ("no panic in the log", "panicked" not in log),
    ("SIGTERM exits 0", server_rc == "0"),
]
failed = [name for name, ok in checks if not ok]
for name, ok in checks:
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
sys.exit(1 if failed else 0)
EOF
