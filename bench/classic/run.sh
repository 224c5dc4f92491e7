#!/usr/bin/env bash
# Opt-in (never in CI): the classic PyTorch transfer-learning job against
# tlpipe's catsdogs pipeline, same images, same torchvision architecture, on
# the CPU; prints the wall-time ratios of the full job and of a rerun with a
# changed learning rate. See docs/classic-comparison.md.
#
#   bench/classic/run.sh [--train-per-class 200] [--test 100] [--arch mobilenet_v2|resnet50]
#                        [--epochs 5] [--torch-reps 1] [--tlpipe-reps 3] [--workers 2] [--wait-idle 300] [--int8] [--int8-reps N] [--keep]
#   (or the environment: CLASSIC_TRAIN_PER_CLASS, CLASSIC_TEST, CLASSIC_ARCH, CLASSIC_EPOCHS,
#    CLASSIC_TORCH_REPS, CLASSIC_TLPIPE_REPS, CLASSIC_WORKERS, CLASSIC_WAIT_IDLE; TLPIPE_FIXTURES for the photos)
#
# Needs Debian's python3-torch, python3-torchvision and python3-pil (installed
# here with apt-get when missing: it says so first), Node 20 and `npm ci` done.
# The images are ../shared/fixtures/datasets/catsdogs-2k (or TLPIPE_FIXTURES).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

case "${1:-}" in
  -h|--help) exec sed -n '2,14p' "${BASH_SOURCE[0]}" ;;
esac

# Debian's packages install into the system Python, not a pyenv/venv one.
PY=/usr/bin/python3
PKGS="python3-torch python3-torchvision python3-pil"
if ! "$PY" -c 'import torch, torchvision, PIL' 2>/dev/null; then
  echo "bench/classic: $PY lacks torch/torchvision/PIL; installing Debian packages:"
  echo "  apt-get update && apt-get install -y $PKGS"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -q && apt-get install -y -q $PKGS
  elif command -v sudo >/dev/null; then
    sudo apt-get update -q && sudo apt-get install -y -q $PKGS
  else
    echo "bench/classic: not root and no sudo: run the command above as root, then rerun" >&2
    exit 1
  fi
fi

# tlpipe as a user runs it: the built CLI (tsc, then the start-up bundle).
echo "bench/classic: building tlpipe (npm run build)"
bin="$(node -p "require('./package.json').bin.tlpipe")"
tsc_log="$(mktemp)"
if ! npm run --silent build >"$tsc_log" 2>&1; then
  grep -E 'error TS' "$tsc_log" | head -n 5 >&2 || true
  if [ -f "$bin" ]; then
    echo "bench/classic: WARNING: tsc reported $(grep -c 'error TS' "$tsc_log") error(s) (first above);" \
      "dist/ was still emitted, continuing with $bin" >&2
  else
    cat "$tsc_log" >&2
    echo "bench/classic: the build failed and there is no $bin" >&2
    exit 1
  fi
fi
rm -f "$tsc_log"

exec "$PY" bench/classic/compare.py "$@"
