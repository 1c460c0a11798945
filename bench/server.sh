# Sourced by the benchmark scripts: one release server at a time, started by
# the script and always stopped when it exits.
#
#   "$bin" ... & server_pid=$!; wait_up URL LOG   then   stop_server

server_pid=""

# release_tools SCRIPT: checks for jq and curl, raises the open-file limit,
# builds the release server and load client, and sets $bin to their folder.
release_tools() {
  local tool
  for tool in jq curl; do
    command -v "$tool" >/dev/null || { echo "$1 needs $tool" >&2; exit 2; }
  done
  ulimit -n "$(ulimit -Hn)"
  cargo build --release --quiet --bin mjpeg-server --bin mjpeg-bench
  bin="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release"
}

# Stops the server started last, if it runs.
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT

# Waits up to 10 s for URL to answer (any certificate); exits 2 with the
# server's LOG if it died or never answered.
wait_up() {
  local url="$1" log="$2"
  for _ in $(seq 100); do
    if curl -sfk "$url" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "the server did not start:" >&2
      cat "$log" >&2
      exit 2
    fi
    sleep 0.1
  done
  echo "the server did not answer $url within 10 s" >&2
  exit 2
}
