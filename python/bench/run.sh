#!/usr/bin/env bash
# The Python benchmark (python/bench/bench.py), in an environment of its
# own: target/python-bench-venv holds this package built as users get it
# (`pip install ./python`, optimised), and the programs it is compared
# with: PyPI's mjpeg-streamer (AGPL: installed here only, never a
# dependency of this project), Flask, simplejpeg, OpenCV and Pillow. The
# load client is the workspace's mjpeg-bench, built in release.
#
#   python/bench/run.sh [bench.py arguments]    e.g. --only encode
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/python-bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check \
  mjpeg-streamer flask simplejpeg opencv-python-headless numpy Pillow
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps ./python
cargo build --release -q -p mjpeg-bench
# Each viewer is a socket in the server and another in the client.
ulimit -n "$(ulimit -Hn)"
exec "$venv/bin/python" python/bench/bench.py "$@"
