#!/usr/bin/env bash
# Coffer's test command: build the workspace, run the Rust tests, then the end-to-end suite (tests/e2e), which starts
# real `coffer` processes and drives them with the real aws CLI and boto3.
#
#   ./scripts/test.sh                 everything
#   ./scripts/test.sh -k guide        extra arguments go to pytest
#
# Needs Rust (cargo), python3 with venv/pip, openssl, and Debian's chromium + chromium-driver (the last three installed
# with apt-get when missing and run as root).
# The clients go into .venv/ in the repo (pinned in tests/e2e/requirements.txt); set COFFER_VENV to put it elsewhere.
# COFFER_E2E_ONLY=1 skips `cargo test` (the build still runs); COFFER_E2E_WORKERS sets pytest-xdist's -n (default 2).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
REPO=$(pwd)
VENV=${COFFER_VENV:-$REPO/.venv}
PYTHON=${PYTHON:-python3}
STAGE=start

stage() {
    STAGE=$1
    echo
    echo "==> [$STAGE] $2"
}

fail() {
    echo >&2
    echo "==> FAILED at stage '$STAGE': $1" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------------------------
stage tools "checking cargo, python3, openssl and chromium"
command -v cargo >/dev/null || fail "cargo not found (install Rust)"
command -v "$PYTHON" >/dev/null || fail "$PYTHON not found"
# openssl: the guide's commands; chromium + chromium-driver: the browser upload test (tests/e2e/test_browser_upload.py).
MISSING=()
command -v openssl >/dev/null || MISSING+=(openssl)
[ -x /usr/bin/chromium ] || MISSING+=(chromium)
[ -x /usr/bin/chromedriver ] || MISSING+=(chromium-driver)
if [ ${#MISSING[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "missing: ${MISSING[*]}; installing with apt-get"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${MISSING[@]}"; } \
            || fail "apt-get install ${MISSING[*]}"
    else
        fail "missing: ${MISSING[*]} (as root: apt-get install ${MISSING[*]})"
    fi
fi

# ---------------------------------------------------------------------------------------------------------------
stage venv "python venv with the aws CLI, boto3 and pytest in $VENV"
REQ=tests/e2e/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || fail "$PYTHON -m venv $VENV (on Debian: apt-get install python3-venv)"
fi
STAMP=$VENV/.coffer-requirements.sha256
WANT=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || [ ! -x "$VENV/bin/aws" ]; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ" || fail "pip install -r $REQ"
    echo "$WANT" >"$STAMP"
fi
"$VENV/bin/aws" --version || fail "the venv's aws CLI does not run"

# ---------------------------------------------------------------------------------------------------------------
stage build "cargo build --workspace"
cargo build --workspace || fail "cargo build --workspace"

if [ "${COFFER_E2E_ONLY:-0}" != 1 ]; then
    stage cargo-test "cargo test --workspace"
    cargo test --workspace || fail "cargo test --workspace"
fi

# ---------------------------------------------------------------------------------------------------------------
stage e2e "pytest tests/e2e (real coffer processes, aws CLI, boto3)"
export COFFER_BIN=${COFFER_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/coffer}
[ -x "$COFFER_BIN" ] || fail "no coffer binary at $COFFER_BIN after the build"
export PATH="$VENV/bin:$PATH"
PARALLEL=()
if "$VENV/bin/python" -c 'import xdist' 2>/dev/null; then
    PARALLEL=(-n "${COFFER_E2E_WORKERS:-2}")
else
    echo "pytest-xdist is not available: running the suite sequentially"
fi
"$VENV/bin/python" -m pytest tests/e2e "${PARALLEL[@]}" "$@"
rc=$?
case $rc in
    0) ;;
    5) fail "pytest collected no tests" ;;
    *) fail "pytest exited with status $rc" ;;
esac

echo
echo "==> all stages passed"
