#!/usr/bin/env bash
# The GPU check: does `device: cuda` work, and agree with the CPU?
#
#   bench/gpu/check.sh [--bundle DIR] [--work DIR]
#
# With an NVIDIA GPU (nvidia-smi lists one): reports the driver, CUDA and
# cuDNN it finds; puts the CUDA libraries that onnxruntime's CUDA provider
# needs on LD_LIBRARY_PATH; writes ResNet-50 and MobileNetV2 (random weights,
# PyTorch) as ONNX; runs the catsdogs pipeline on the fixtures' 3,003 photos
# with each backbone (and the fixtures' pretrained MobileNetV2-int8) on the
# CPU and on CUDA; and compares: features within a relative L2 distance of
# 2e-2 per image, and for the pretrained backbone the same submission.csv
# labels and validation accuracy within 0.5 points. Prints images/s of the
# features stage and the training time on both. Exit 0 only when all held.
#
# Without a GPU: says so, checks that `device: auto` falls back to the CPU
# with its message (and `device: cuda` refuses), and exits 0 with "no GPU" in
# its last line. It never reports success for a GPU it did not run on.
#
# --bundle DIR: run the app, Node and fixtures unpacked from a carried bundle
# (bench/gpu/bundle.sh, bench/gpu/unpack.sh; see bench/gpu/README.md) instead
# of this checkout's dist/, node_modules/ and ../shared/fixtures.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bundle=""; work=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --bundle) bundle=${2:?--bundle needs a folder}; shift 2 ;;
    --work) work=${2:?--work needs a folder}; shift 2 ;;
    *) echo "check: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done

say() { echo "gpu check: $*"; }

if [ -n "$bundle" ]; then
  bundle="$(cd "$bundle" && pwd)" || { say "FAILED: no bundle at $bundle"; exit 2; }
  app="$bundle/app"; node="$bundle/node/bin/node"; fixtures="$bundle/fixtures"
else
  app="$repo"; node="$(command -v node || true)"; fixtures="${TLPIPE_FIXTURES:-$repo/../shared/fixtures}"
fi
work="${work:-${TMPDIR:-/tmp}/tlpipe-gpu-check}"
mkdir -p "$work"

# Is there a GPU? nvidia-smi must exist, answer, and list one.
gpu=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1 || true)"
fi

for need in "$node" "$app/dist/bench/gpu/check.js" "$fixtures/models/mobilenetv2-12-int8.onnx" "$fixtures/datasets/catsdogs-2k"; do
  if [ -z "$need" ] || [ ! -e "$need" ]; then
    where="${gpu:+on a machine with a GPU (nothing was run on it)}"
    say "FAILED: ${need:-node} not found (npm run build; fixtures in ../shared/fixtures or TLPIPE_FIXTURES; or --bundle)${where:+ }${where:-; no GPU}"
    exit 2
  fi
done
say "node $("$node" --version), app $app, fixtures $fixtures, work $work"

if [ -z "$gpu" ]; then
  say "no GPU found (nvidia-smi $(command -v nvidia-smi >/dev/null && echo 'lists none' || echo 'is not installed')): checking the CPU fallback only"
  if "$node" "$app/dist/bench/gpu/check.js" no-gpu --fixtures "$fixtures" --work "$work"; then
    say "no GPU on this machine: nothing was run on a GPU; device auto fell back to the CPU with its message, device cuda refused with its own"
    exit 0
  fi
  say "FAILED on a machine with no GPU: the CPU fallback is not as documented (MISMATCH lines above)"
  exit 1
fi

# ── a GPU ──────────────────────────────────────────────────────────────────
say "GPU: $gpu"
smi_cuda="$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | head -n 1 || true)"
say "driver supports ${smi_cuda:-an unknown CUDA version}; nvcc: $(command -v nvcc >/dev/null && nvcc --version | grep -o 'release [0-9.]*' || echo 'not installed')"

ort_dir="$app/node_modules/onnxruntime-node"
provider="$ort_dir/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so"
ort_version="$("$node" -p "require('$ort_dir/package.json').version" 2>/dev/null || echo unknown)"
if [ ! -f "$provider" ]; then
  say "FAILED: a GPU but no CUDA provider: onnxruntime-node $ort_version has no $provider. Carry it (bench/gpu/bundle.sh, then --bundle; see bench/gpu/README.md) or install it with network (README, \"CUDA\")"
  exit 3
fi
say "onnxruntime-node $ort_version, CUDA provider $(sha256sum "$provider" | cut -c1-16)… ($(stat -c %s "$provider") bytes)"

# The provider links the CUDA runtime libraries by soname and opens cuDNN at
# run time: find each where this machine keeps them (the CUDA toolkit,
# PyTorch's pip wheels, the driver's folder).
roots=(/usr/local/nvidia /usr/local/cuda /usr/local/cuda-* /usr/lib/x86_64-linux-gnu /usr/lib64 /opt /usr/local/lib /usr/lib/python3 /root/.local)
find_lib() { find "${roots[@]}" -name "$1" \( -type f -o -type l \) 2>/dev/null | head -n 1; }
libdirs=()
add_dir() { local d; d="$(dirname "$1")"; case ":$(IFS=:; echo "${libdirs[*]:-}"):" in *":$d:"*) ;; *) libdirs+=("$d") ;; esac; }
missing="$(ldd "$provider" 2>/dev/null | awk '/not found/ {print $1}')"
for so in $missing libcudnn.so.9; do
  found="$(find_lib "$so")"
  if [ -n "$found" ]; then add_dir "$found"; say "  $so: $(readlink -f "$found")"; else say "  $so: NOT FOUND on this machine"; fi
done
if [ ${#libdirs[@]} -gt 0 ]; then export LD_LIBRARY_PATH="$(IFS=:; echo "${libdirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
still="$(ldd "$provider" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')"
cudnn="$(find_lib 'libcudnn.so.9')"
if [ -n "$still" ] || [ -z "$cudnn" ]; then
  say "FAILED: the CUDA provider cannot load here: missing ${still}${cudnn:+}${cudnn:-libcudnn.so.9} (install CUDA and cuDNN 9 of the major version the provider was built for; ldd $provider)"
  exit 4
fi
cudart="$(ldd "$provider" | awk '/libcudart/ {print $3}')"
say "CUDA runtime $(basename "$(readlink -f "$cudart")"), cuDNN $(basename "$(readlink -f "$cudnn")") ($(dirname "$cudnn"))"

models="$work/models"
if ! python3 "$here/export_backbones.py" "$models"; then
  say "FAILED: could not write the ResNet-50 and MobileNetV2 ONNX files with PyTorch (python3 $here/export_backbones.py) on $gpu"
  exit 5
fi

"$node" "$app/dist/bench/gpu/check.js" gpu --fixtures "$fixtures" --work "$work" \
  --backbone "MobileNetV2-int8 (fixtures, pretrained)=$fixtures/models/mobilenetv2-12-int8.onnx=pretrained" \
  --backbone "MobileNetV2 fp32 (random weights)=$models/mobilenet_v2.onnx" \
  --backbone "ResNet-50 fp32 (random weights)=$models/resnet50.onnx"
rc=$?
if [ "$rc" -eq 0 ]; then
  say "PASSED on $gpu: onnxruntime-node $ort_version, $(basename "$(readlink -f "$cudart")"), $(basename "$(readlink -f "$cudnn")"): device cuda agrees with the CPU (table above)"
  exit 0
fi
say "FAILED on $gpu (exit $rc): MISMATCH lines above"
exit 1
