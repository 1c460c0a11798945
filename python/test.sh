#!/usr/bin/env bash
# The Python module's tests: builds the module from this checkout into a
# virtual environment of its own (target/python-venv, made on first use),
# checks its formatting and that its type stub matches it, and runs pytest.
# Needs python3 (3.9 or later) and pip, and reaches PyPI for the test
# packages and maturin.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${MJPEG_SERVER_VENV:-target/python-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check pytest numpy Pillow matplotlib ruff mypy
# The debug build of the workspace (what `cargo test` just built) is reused:
# the tests check behaviour, not speed. `pip install ./python` builds the
# optimised module that users get.
MATURIN_PEP517_ARGS="--profile dev" \
  "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps ./python
"$venv/bin/ruff" format --config python/pyproject.toml --check --quiet python examples/python
"$venv/bin/ruff" check --config python/pyproject.toml --quiet python examples/python
# The stub (mjpeg_server/_native.pyi) says what the module really has.
(cd "$venv" && bin/python -m mypy.stubtest mjpeg_server)
(cd python && "../$venv/bin/python" -m pytest -q -p no:cacheprovider tests)
