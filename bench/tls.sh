#!/usr/bin/env bash
# What HTTPS costs: the same stream over plain HTTP, HTTPS/1.1 and HTTP/2
# (one connection per viewer), in one run, each on a fresh release server
# loaded by mjpeg-bench; server CPU-seconds per GB, p99 latency and peak
# RSS side by side, and HTTPS as a ratio of plain.
#
#   bench/tls.sh [CLIENTS...]     default: 200 1000
#
# The certificate is a throwaway self-signed one for 127.0.0.1 (openssl),
# trusted by the load client with --ca. Environment: BENCH_PORT (default
# 18201), BENCH_DURATION (seconds per case, default 10), BENCH_OUT (default
# target/tls). Everything stays on 127.0.0.1. The load client decrypts what
# the server encrypts, on the same machine: on few cores it competes with
# the server, which the fps column shows.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${BENCH_PORT:-18201}"
duration="${BENCH_DURATION:-10}"
out="${BENCH_OUT:-target/tls}"
mkdir -p "$out"
clients=("$@")
[ "${#clients[@]}" -gt 0 ] || clients=(200 1000)
for tool in jq openssl curl; do
  command -v "$tool" >/dev/null || { echo "bench/tls.sh needs $tool" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE -addext keyUsage=digitalSignature \
  -addext extendedKeyUsage=serverAuth -days 2 \
  -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null

cargo build --release --quiet --bin mjpeg-server --bin mjpeg-bench
bin="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release"

. bench/server.sh

# run LABEL CLIENTS MODE: MODE is http, https or h2.
run() {
  local label="$1" n="$2" mode="$3" tls=() scheme=http extra=()
  if [ "$mode" != http ]; then
    tls=(--tls-cert "$out/cert.pem" --tls-key "$out/key.pem")
    scheme=https
    extra=(--ca "$out/cert.pem")
    [ "$mode" = h2 ] && extra+=(--http2)
  fi
  "$bin/mjpeg-server" --listen "127.0.0.1:$port" --max-connections-per-address 0 \
    --stream "b=synthetic:tests/data/jpeg_50k.jpg#fps=30" "${tls[@]}" 2>"$out/$label.log" &
  server_pid=$!
  wait_up "$scheme://127.0.0.1:$port/status" "$out/$label.log"
  "$bin/mjpeg-bench" --url "$scheme://127.0.0.1:$port/stream/b" "${extra[@]}" \
    --clients "$n" --duration "$duration" --connect-timeout 60 \
    --server-pid "$server_pid" --json >"$out/$label.json" 2>"$out/$label.txt" || true
  stop_server
}

# The memory of a server with no viewer, per protocol, so that memory per
# viewer can be told from the fixed part.
for mode in http https h2; do
  run "$mode-0" 0 "$mode"
done

echo "| viewers | protocol | fps min / median | p99 ms | server CPU | server CPU-s per GB | × plain | peak RSS MB | KB per viewer | × plain |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in "${clients[@]}"; do
  for mode in http https h2; do
    run "$mode-$n" "$n" "$mode"
  done
  base_cpu="$(jq -r '.server.cpu_s_per_gb' "$out/http-$n.json")"
  per_viewer() { # MODE: KB of RSS per viewer above the server with none
    jq -rn --slurpfile a "$out/$1-$n.json" --slurpfile z "$out/$1-0.json" --arg n "$n" \
      '($a[0].server.peak_rss_mb - $z[0].server.peak_rss_mb) * 1000 / ($n | tonumber)'
  }
  base_kb="$(per_viewer http)"
  for mode in http https h2; do
    name=$mode; [ "$mode" = http ] && name="HTTP/1.1"; [ "$mode" = https ] && name="HTTPS/1.1"
    [ "$mode" = h2 ] && name="HTTP/2 (TLS)"
    kb="$(per_viewer "$mode")"
    jq -r --arg n "$n" --arg name "$name" --argjson bc "$base_cpu" --argjson kb "$kb" \
      --argjson bkb "$base_kb" '
      "| \($n) | \($name) | \(.fast.fps.min * 10 | round / 10) / \(.fast.fps.median * 10 | round / 10) (\(.connected) connected, \(.invalid_frames) invalid) | \(.fast.latency_ms.p99 // "-") | \(.server.cpu_percent | round) % | \(.server.cpu_s_per_gb * 1000 | round / 1000) | \((.server.cpu_s_per_gb / $bc) * 100 | round / 100) | \(.server.peak_rss_mb * 10 | round / 10) | \($kb * 10 | round / 10) | \(($kb / $bkb) * 100 | round / 100) |"
    ' "$out/$mode-$n.json"
  done
done
