#!/usr/bin/env bash
# Soak test: runs the release server for a long while under client churn and
# checks that it neither serves a broken frame nor keeps anything a client
# left behind.
#
# It starts target/release/mjpeg-server on 127.0.0.1 with three streams:
#   demo  the built-in animated source at 30 fps
#   cam   exec: a command that plays the valid JPEGs of tests/data for about
#         ten seconds and exits, so the server restarts it again and again
#   in    push: fed with good frames several times a second, and every few
#         seconds with a bad one (garbage, a truncated JPEG, an empty body)
# After a warm-up it records the server's descriptor count and VmRSS, then
# bench/soak.py opens and closes SOAK_CYCLES connections spread over
# SOAK_SECONDS (streams, mjpg-streamer URLs, snapshots, /status, /metrics;
# some leave mid-frame, some after 1-5 parts), keeps 10 slow readers busy and
# checks every part it receives whole: the multipart framing, and each JPEG's
# marker structure through to an EOI that ends it. Afterwards the descriptor
# count must be back at the baseline and VmRSS within rss_slack_mib (below)
# of it, and the server must stop with exit code 0 on SIGTERM. With gdb
# installed it also reads glibc's count of heap bytes in use (malloc_stats())
# at both moments, which tells a leak from memory the allocator keeps mapped
# for reuse: it must be within 4 MiB of the baseline.
#
# bench/hostile.sh is its companion: the same server under a hostile mix
# (pushes built to be slow to parse, decompression bombs, HTTP/2 clients
# that send or read nothing, a FIFO in a watched folder, endless and
# dripping upstreams) while 100 honest viewers watch.
#
#   bench/soak.sh                                        the full run (10 min)
#   SOAK_SECONDS=60 SOAK_CYCLES=10000 bench/soak.sh      a short run
#
# Environment: SOAK_SECONDS (default 600), SOAK_CYCLES (default 100000),
# SOAK_PORT (default: a free port). Needs python3 >= 3.11; gdb is optional.
# Exit code 0 when everything passed, 1 on a failure, 2 when it could not run.
# Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${SOAK_SECONDS:-600}"
cycles="${SOAK_CYCLES:-100000}"

# Memory a server may keep after the churn without it counting as a leak:
# allocator arenas and buffers sized for the busiest moment stay mapped
# (about 10 MB idle to begin with), while a leak of even a few hundred bytes
# per connection grows past this over 100 000 cycles. The RSS line printed
# every tenth of the run tells a plateau from a climb.
rss_slack_mib=10

# How long each run of the cam command lasts: past the server's 10 s mark
# for a healthy run, after which the next restart comes 0.5 s later. Shorter
# runs make it double its back-off, up to 30 s between restarts.
cam_seconds=10.5
cam_fps=8

die() { echo "soak: $*" >&2; exit 2; }
# kill -0 also succeeds for a zombie: a server that crashed is one until
# it is waited for.
running() {
  local state
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] && [ "$state" != Z ]
}

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "needs python3 >= 3.11"
case "$seconds$cycles" in *[!0-9]*) die "SOAK_SECONDS and SOAK_CYCLES must be whole numbers" ;; esac
[ "$seconds" -ge 10 ] && [ "$cycles" -ge 1 ] || die "SOAK_SECONDS must be >= 10 and SOAK_CYCLES >= 1"

# Always through cargo, so that the binary soaked is the source checked out
# (a no-op when it is up to date).
bin=target/release/mjpeg-server
cargo build --release --quiet --bin mjpeg-server || die "cargo build --release failed"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mjpeg-soak.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
case "$tmp" in *[\#\ \'\"]*) die "temporary folder $tmp has a character the exec: source cannot take" ;; esac

# The exec: command is run by sh and its options follow '#', so it must not
# depend on the checkout's path: the client and its frames go to $tmp.
cp bench/soak.py "$tmp/soak.py"
mkdir "$tmp/frames" "$tmp/push"
mapfile -t frames < <(python3 "$tmp/soak.py" frames tests/data)
cp "${frames[@]}" "$tmp/frames/"
# Pushes stay at 256 KB and below: the pusher sends several a second.
for f in "${frames[@]}"; do
  if [ "$(stat -c %s "$f")" -le 262144 ]; then cp "$f" "$tmp/push/"; fi
done
mapfile -t convertible < <(python3 "$tmp/soak.py" convertible tests/data)
if [ "${#convertible[@]}" -gt 0 ]; then cp "${convertible[@]}" "$tmp/push/"; fi
echo "cam plays: $(cd "$tmp/frames" && echo *)"
echo "pushed:    $(cd "$tmp/push" && echo *)"

port="${SOAK_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

RUST_LOG=info "$bin" \
  --listen "127.0.0.1:$port" \
  --fps 30 \
  --stream demo=demo \
  --stream "cam=exec:exec python3 $tmp/soak.py cam $tmp/frames $cam_seconds $cam_fps" \
  --stream in=push \
  >"$tmp/server.log" 2>&1 &
server_pid=$!
echo "server: pid $server_pid on http://127.0.0.1:$port/, ${seconds} s, ${cycles} cycles"

run_rc=0
python3 "$tmp/soak.py" run \
  --port "$port" --pid "$server_pid" \
  --seconds "$seconds" --cycles "$cycles" \
  --frames "$tmp/frames" --push-images "$tmp/push" \
  --results "$tmp/results.json" --log "$tmp/server.log" || run_rc=$?

# Stop the server the way an init system does, and give it the 5 s it grants
# its connections plus some.
server_rc=0
died_early=(--died-early)
if running "$server_pid"; then
  died_early=()
  kill -TERM "$server_pid"
  for _ in $(seq 150); do running "$server_pid" || break; sleep 0.1; done
  if running "$server_pid"; then
    echo "soak: the server did not exit within 15 s of SIGTERM" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
fi
wait "$server_pid" || server_rc=$?
server_pid=""

keep_evidence() {
  # The evidence outlives the temporary folder.
  mkdir -p target/soak
  cp "$tmp/server.log" target/soak/
  if [ -s "$tmp/results.json" ]; then cp "$tmp/results.json" target/soak/; fi
  echo "server log kept in target/soak/" >&2
}

if [ "$run_rc" -ne 0 ] || [ ! -s "$tmp/results.json" ]; then
  echo "soak: the client stopped with exit code $run_rc (server: $server_rc); last lines of the server log:" >&2
  tail -n 30 "$tmp/server.log" >&2
  keep_evidence
  exit 2
fi

report_rc=0
python3 "$tmp/soak.py" report "$tmp/results.json" \
  --log "$tmp/server.log" --server-exit "$server_rc" "${died_early[@]}" \
  --rss-slack-mib "$rss_slack_mib" || report_rc=$?
if [ "$report_rc" -ne 0 ]; then
  keep_evidence
  exit 1
fi
