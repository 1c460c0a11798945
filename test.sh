#!/usr/bin/env bash
# Every test: the Rust workspace's (`cargo test`) and the Python module's
# (python/test.sh). Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"
cargo test "$@"
python/test.sh
