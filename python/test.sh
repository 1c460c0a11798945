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
# The Python code (the READMEs' snippets are laid out for reading).
py_dirs=(python/mjpeg_server python/tests python/examples python/bench examples/python)
"$venv/bin/ruff" format --config python/pyproject.toml --check --quiet "${py_dirs[@]}"
"$venv/bin/ruff" check --config python/pyproject.toml --quiet "${py_dirs[@]}"
# The stub (mjpeg_server/_native.pyi) says what the module really has.
(cd "$venv" && bin/python -m mypy.stubtest mjpeg_server)
# From the root, so that the installed module is imported, not python/mjpeg_server.
"$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
