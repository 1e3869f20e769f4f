#!/usr/bin/env bash
# Refresh requirements.lock, the lock of every transitive dependency, after a
# change to pyproject.toml. Run it from anywhere: `bash scripts/lock.sh`.
#
# The lock is for Linux x86-64 and Python 3.11 (the platform the tests run
# on), in requirements form (name==version lines, no index URL). It covers
# every extra (all + test): installs pick their part of it with
# `pip install -c requirements.lock '.[EXTRA]'`.
#
# Versions already in the lock are kept unless pyproject.toml no longer
# allows them; pass --upgrade (or --upgrade-package NAME) to move to newer
# releases. Other arguments go to `uv pip compile`, e.g. another platform:
#   bash scripts/lock.sh --python-platform aarch64-manylinux_2_28 -o requirements-aarch64.lock
#
# uv is taken from PATH, or installed into a throwaway virtual environment.
# torch is the CPU build (torch==2.13.0+cpu): uv reads pip's configured
# find-links (where this machine's CPU wheel lies) and PyTorch's CPU wheels
# when PIP_FIND_LINKS or HWLUT_LOCK_FIND_LINKS names them.
set -euo pipefail
cd "$(dirname "$0")/.."

uv=$(command -v uv || true)
if [ -z "$uv" ]; then
    tools=$(mktemp -d /tmp/hwlut-uv.XXXXXX)
    trap 'rm -rf "$tools"' EXIT
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q uv
    uv="$tools/bin/uv"
fi

links=()
for dir in ${HWLUT_LOCK_FIND_LINKS:-${PIP_FIND_LINKS:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}}; do
    links+=(--find-links "$dir")
done

# Defaults that the arguments may replace: the output file and the platform.
out=(-o requirements.lock)
platform=(--python-platform x86_64-manylinux_2_28)
for arg in "$@"; do
    case "$arg" in
        -o|-o*|--output-file|--output-file=*) out=();;
        --python-platform|--python-platform=*) platform=();;
    esac
done

"$uv" pip compile pyproject.toml \
    --extra all --extra test \
    --python-version 3.11 "${platform[@]}" \
    --index-strategy unsafe-best-match "${links[@]}" \
    --constraint scripts/lock-constraints.txt \
    --custom-compile-command "bash scripts/lock.sh" --quiet \
    "${out[@]}" "$@"
