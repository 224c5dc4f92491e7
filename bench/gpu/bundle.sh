#!/usr/bin/env bash
# Builds, on a machine with the npm registry, everything the GPU check needs
# on a GPU machine without network, in parts to carry one transfer at a time:
#
#   npm run build && bench/gpu/bundle.sh [--out .gpu-carry] [--part-mib 60] [--compress gzip|xz|none] [--keep-stage]
#
# The bundle (DIR/stage, packed by bench/gpu/pack.sh into DIR/parts) holds:
#   node/bin/node  this machine's Node (Linux x64, linked against glibc only)
#   app/           package.json, dist/src, dist/bench, pipelines/, schemas/, the runtime
#                  node_modules, with onnxruntime-node replaced by
#                  $ORT_NODE_VERSION and its CUDA provider libraries put into
#                  its bin folder, where onnxruntime-node's own install puts them
#   fixtures/      the shared fixtures the check uses (MobileNetV2-int8, catsdogs-2k)
#   BUNDLE.txt     versions and sha256 of what is inside
#
# Why $ORT_NODE_VERSION and not the lockfile's onnxruntime-node: the CUDA
# provider of a release must come from the same release, and the npm registry
# holds one only for 1.29.0 (see bench/gpu/README.md, "Where the CUDA provider
# comes from"). The provider files are checked against the sha256 below.
set -euo pipefail

ORT_NODE_VERSION=1.29.0
PROVIDER_PACKAGE=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
PROVIDER_DIR_IN_PACKAGE=Plugins/Linux/x64
PROVIDER_SHA256_CUDA=56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037
PROVIDER_SHA256_SHARED=c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# gzip: 311 MB in 5 parts of 60 MiB, packed in under 4 minutes on a loaded
# 2-core machine; xz saves about 8 % (165 MB instead of 179 MB on the provider
# alone), still 5 parts, at several times the packing time.
out="$repo/.gpu-carry"; part_mib=60; compress=gzip; keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --out) out=${2:?}; shift 2 ;;
    --part-mib) part_mib=${2:?}; shift 2 ;;
    --compress) compress=${2:?}; shift 2 ;;
    --keep-stage) keep=1; shift ;;
    *) echo "bundle: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done
die() { echo "bundle: $*" >&2; exit 1; }

fixtures="${TLPIPE_FIXTURES:-$repo/../shared/fixtures}"
[ -f "$repo/dist/bench/gpu/check.js" ] || die "no dist/bench/gpu/check.js: run npm run build first"
[ -f "$fixtures/models/mobilenetv2-12-int8.onnx" ] || die "no fixtures at $fixtures (set TLPIPE_FIXTURES)"
[ "$(uname -sm)" = "Linux x86_64" ] || die "the GPU machine is Linux x86-64: build the bundle on one (this is $(uname -sm))"
node_bin="$(readlink -f "$(command -v node)")"

stage="$out/stage"; downloads="$out/downloads"
rm -rf "$stage"; mkdir -p "$stage/node/bin" "$stage/app/dist" "$stage/app/node_modules" "$stage/fixtures/models" "$stage/fixtures/datasets" "$downloads"

echo "bundle: node $("$node_bin" --version) from $node_bin"
cp "$node_bin" "$stage/node/bin/node"

echo "bundle: the app (dist/src, dist/bench, pipelines, runtime node_modules)"
cp "$repo/package.json" "$stage/app/"
cp -r "$repo/pipelines" "$repo/schemas" "$stage/app/"
(cd "$repo/dist" && tar --exclude='*.map' -cf - src bench) | tar -C "$stage/app/dist" -xf -
mapfile -t deps < <(cd "$repo" && npm ls --omit=dev --parseable --all 2>/dev/null | sed "s|^$repo/||" | grep '^node_modules/' \
  | grep -v -e '^node_modules/onnxruntime-node$' -e '^node_modules/onnxruntime-common$')
(cd "$repo" && tar --exclude='node_modules/onnxruntime-node' --exclude='node_modules/onnxruntime-common' --exclude='*.md' -cf - "${deps[@]}") | tar -C "$stage/app" -xf -

echo "bundle: onnxruntime-node $ORT_NODE_VERSION and $PROVIDER_PACKAGE from the npm registry (cached in $downloads)"
(cd "$downloads" && npm pack --silent "onnxruntime-node@$ORT_NODE_VERSION" "onnxruntime-common@$ORT_NODE_VERSION" "$PROVIDER_PACKAGE" >/dev/null)
ort="$stage/app/node_modules/onnxruntime-node"; mkdir -p "$ort" "$stage/app/node_modules/onnxruntime-common"
tar -xzf "$downloads/onnxruntime-node-$ORT_NODE_VERSION.tgz" -C "$ort" --strip-components=1 \
  --exclude='package/bin/napi-v6/darwin' --exclude='package/bin/napi-v6/win32' --exclude='package/bin/napi-v6/linux/arm64'
tar -xzf "$downloads/onnxruntime-common-$ORT_NODE_VERSION.tgz" -C "$stage/app/node_modules/onnxruntime-common" --strip-components=1
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
provider_tgz="$downloads/$(echo "$PROVIDER_PACKAGE" | sed 's/@\(.*\)$/-\1/').tgz"
tar -xzf "$provider_tgz" -C "$tmp" "package/$PROVIDER_DIR_IN_PACKAGE/libonnxruntime_providers_cuda.so" "package/$PROVIDER_DIR_IN_PACKAGE/libonnxruntime_providers_shared.so"
for f in cuda:$PROVIDER_SHA256_CUDA shared:$PROVIDER_SHA256_SHARED; do
  lib="libonnxruntime_providers_${f%%:*}.so"
  got="$(sha256sum "$tmp/package/$PROVIDER_DIR_IN_PACKAGE/$lib" | cut -d' ' -f1)"
  [ "$got" = "${f#*:}" ] || die "$lib in $PROVIDER_PACKAGE has sha256 $got, not the pinned ${f#*:}: the package changed; check it before trusting it"
  cp "$tmp/package/$PROVIDER_DIR_IN_PACKAGE/$lib" "$ort/bin/napi-v6/linux/x64/$lib"
done

echo "bundle: fixtures from $fixtures"
cp -L "$fixtures/README.md" "$stage/fixtures/"
cp -L "$fixtures/models/mobilenetv2-12-int8.onnx" "$stage/fixtures/models/"
cp -rL "$fixtures/labels" "$stage/fixtures/"
cp -rL "$fixtures/datasets/catsdogs-2k" "$stage/fixtures/datasets/"

{
  echo "tlpipe GPU check bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "node $("$node_bin" --version)"
  echo "onnxruntime-node $ORT_NODE_VERSION (npm), CUDA provider from $PROVIDER_PACKAGE (npm)"
  (cd "$stage" && sha256sum node/bin/node app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/*)
} >"$stage/BUNDLE.txt"
cat "$stage/BUNDLE.txt"

"$here/pack.sh" "$stage" "$out/parts" --part-mib "$part_mib" --compress "$compress" --name tlpipe-gpu
[ "$keep" = 1 ] || rm -rf "$stage"

echo "bundle: to carry, one device call per part (each under the 64 MiB a call takes, with the checkout):"
n=0
for p in $(grep '\.part-' "$out/parts/SHA256SUMS" | awk '{print $2}'); do
  rel="${out#"$repo"/}/parts"
  echo "  carry [\"$rel/SHA256SUMS\", \"$rel/$p\"]: bash bench/gpu/unpack.sh stash $rel /tmp/tlpipe-gpu-parts"
  n=$((n + 1))
done
echo "  then: bash bench/gpu/unpack.sh join /tmp/tlpipe-gpu-parts /tmp/tlpipe-gpu && bash bench/gpu/check.sh --bundle /tmp/tlpipe-gpu"
echo "  (join and the check can follow the last stash in the same call; $n part(s) in all)"
