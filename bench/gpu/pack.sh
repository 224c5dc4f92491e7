#!/usr/bin/env bash
# Packs a folder into numbered parts small enough to carry one per transfer to
# a machine without network (the GPU check's bundle, or onnxruntime-node's CUDA
# provider for an air-gapped server), with a SHA256SUMS manifest that
# bench/gpu/unpack.sh checks part by part and whole.
#
#   bench/gpu/pack.sh SRC_DIR OUT_DIR [--part-mib N | --part-bytes N] [--compress xz|gzip|none] [--name NAME]
#
# OUT_DIR gets NAME.tar.EXT.part-000, -001, … (each at most the part size;
# default 60 MiB, room for a 64 MiB transfer with the project's own files) and
# SHA256SUMS: one line per part, then one for the joined archive. The archive
# itself is not kept. OUT_DIR is written beside itself first and renamed into
# place, so an interrupted pack leaves no half set.
set -euo pipefail

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "pack: $*" >&2; exit 1; }

src=""; out=""; part_bytes=$((60 * 1024 * 1024)); compress=xz; name=bundle
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --part-mib) part_bytes=$(( ${2:?--part-mib needs a number} * 1024 * 1024 )); shift 2 ;;
    --part-bytes) part_bytes=${2:?--part-bytes needs a number}; shift 2 ;;
    --compress) compress=${2:?--compress needs xz, gzip or none}; shift 2 ;;
    --name) name=${2:?--name needs a name}; shift 2 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) if [ -z "$src" ]; then src=$1; elif [ -z "$out" ]; then out=$1; else die "unexpected argument $1"; fi; shift ;;
  esac
done
[ -n "$src" ] && [ -n "$out" ] || { usage >&2; exit 2; }
[ -d "$src" ] || die "$src is not a folder"
[[ "$part_bytes" =~ ^[0-9]+$ ]] && [ "$part_bytes" -gt 0 ] || die "the part size must be a positive number of bytes, not '$part_bytes'"
[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "--name may hold only letters, digits, '.', '_' and '-'"

case "$compress" in
  xz) command -v xz >/dev/null || die "xz is not installed (apt-get install xz-utils, or --compress gzip)"
      ext=tar.xz; filter=(xz -T0 -6) ;;
  gzip) ext=tar.gz; filter=(gzip -6) ;;
  none) ext=tar; filter=(cat) ;;
  *) die "--compress must be xz, gzip or none, not '$compress'" ;;
esac
archive="$name.$ext"

out=${out%/}
tmp="$out.packing.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

# Owner and times are not worth carrying; the order of entries is fixed so the
# same folder packs to the same bytes.
tar -C "$src" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | "${filter[@]}" >"$tmp/$archive"
whole=$(sha256sum "$tmp/$archive" | cut -d' ' -f1)
size=$(stat -c %s "$tmp/$archive")
( cd "$tmp" && split -b "$part_bytes" -d -a 3 "$archive" "$archive.part-" )
rm -f "$tmp/$archive"
( cd "$tmp" && sha256sum "$archive".part-* >SHA256SUMS && echo "$whole  $archive" >>SHA256SUMS )

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
parts=$(grep -c '\.part-' "$out/SHA256SUMS")
echo "pack: $src -> $out: $archive, $size bytes, sha256 $whole, in $parts part(s) of at most $part_bytes bytes"
