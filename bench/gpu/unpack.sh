#!/usr/bin/env bash
# The other end of bench/gpu/pack.sh, on the machine without network.
#
#   bench/gpu/unpack.sh stash FROM_DIR STASH_DIR   # after each transfer: keep the parts that came
#   bench/gpu/unpack.sh join STASH_DIR DEST_DIR    # once all have come: join, check, extract
#
# stash checks every part found in FROM_DIR against FROM_DIR/SHA256SUMS and
# copies the good ones into STASH_DIR (a folder that outlasts the transfer),
# then says which parts are still missing. join checks that every part is in
# STASH_DIR with its checksum, joins them, checks the whole archive's
# checksum and extracts it into DEST_DIR (replacing what was there, through a
# folder beside it). A damaged, missing or foreign part stops either command
# with a message naming it and exit status 1; nothing is extracted then.
set -euo pipefail

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "unpack: $*" >&2; exit 1; }

# The manifest's part names in order, and the archive's name (its last line).
parts_of() { grep '\.part-[0-9]*$' "$1" | awk '{print $2}'; }
archive_of() { grep -v '\.part-[0-9]*$' "$1" | awk 'NF==2 {print $2}' | tail -n 1; }
expected() { awk -v f="$2" '$2 == f {print $1}' "$1"; }
check_manifest() {
  [ -f "$1" ] || die "no SHA256SUMS in $(dirname "$1"): carry it with the parts"
  [ -n "$(archive_of "$1")" ] && [ -n "$(parts_of "$1")" ] || die "$1 is not a manifest written by bench/gpu/pack.sh"
}

stash() {
  local from=${1%/} to=${2%/}
  check_manifest "$from/SHA256SUMS"
  mkdir -p "$to"
  if [ -f "$to/SHA256SUMS" ] && ! cmp -s "$from/SHA256SUMS" "$to/SHA256SUMS"; then
    die "$to holds parts of another pack (its SHA256SUMS differs from $from/SHA256SUMS): empty $to or stash elsewhere"
  fi
  cp "$from/SHA256SUMS" "$to/SHA256SUMS.tmp.$$" && mv "$to/SHA256SUMS.tmp.$$" "$to/SHA256SUMS"
  local part got bad=0 now=()
  for part in $(parts_of "$from/SHA256SUMS"); do
    [ -f "$from/$part" ] || continue
    got=$(sha256sum "$from/$part" | cut -d' ' -f1)
    if [ "$got" != "$(expected "$from/SHA256SUMS" "$part")" ]; then
      echo "unpack: $from/$part is damaged (sha256 $got, the manifest says $(expected "$from/SHA256SUMS" "$part")): carry it again" >&2
      bad=1
      continue
    fi
    cp "$from/$part" "$to/$part.tmp.$$" && mv "$to/$part.tmp.$$" "$to/$part"
    now+=("$part")
  done
  local missing=()
  for part in $(parts_of "$to/SHA256SUMS"); do [ -f "$to/$part" ] || missing+=("$part"); done
  echo "unpack: stashed ${#now[@]} part(s) in $to${now:+: ${now[*]}}"
  if [ ${#missing[@]} -eq 0 ]; then echo "unpack: all $(parts_of "$to/SHA256SUMS" | wc -l) part(s) are in $to: run join"
  else echo "unpack: still missing ${#missing[@]}: ${missing[*]}"; fi
  [ "$bad" = 0 ] || exit 1
}

join_parts() {
  local stash=${1%/} dest=${2%/}
  check_manifest "$stash/SHA256SUMS"
  local sums="$stash/SHA256SUMS" part archive got missing=() bad=()
  archive=$(archive_of "$sums")
  for part in $(parts_of "$sums"); do
    if [ ! -f "$stash/$part" ]; then missing+=("$part"); continue; fi
    got=$(sha256sum "$stash/$part" | cut -d' ' -f1)
    [ "$got" = "$(expected "$sums" "$part")" ] || bad+=("$part")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing part(s) in $stash: ${missing[*]}: carry and stash them first"
  [ ${#bad[@]} -eq 0 ] || die "damaged part(s) in $stash: ${bad[*]} (checksum differs from SHA256SUMS): delete them, carry and stash them again"

  if [ -f "$dest/.unpacked-from" ] && cmp -s "$sums" "$dest/.unpacked-from"; then
    echo "unpack: $dest already holds this pack ($archive)"
    return 0
  fi
  local work="$dest.unpacking.$$"
  rm -rf "$work"; mkdir -p "$work/tree"
  trap 'rm -rf "$work"' EXIT
  for part in $(parts_of "$sums"); do cat "$stash/$part"; done >"$work/$archive"
  got=$(sha256sum "$work/$archive" | cut -d' ' -f1)
  [ "$got" = "$(expected "$sums" "$archive")" ] || die "the joined $archive has sha256 $got, the manifest says $(expected "$sums" "$archive"): the parts are not from one pack"
  case "$archive" in
    *.tar.xz)
      if command -v xz >/dev/null; then xz -dc "$work/$archive"
      else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$work/$archive"; fi ;;
    *.tar.gz) gzip -dc "$work/$archive" ;;
    *.tar) cat "$work/$archive" ;;
    *) die "unknown archive type: $archive" ;;
  esac | tar -C "$work/tree" -xf -
  rm -f "$work/$archive"
  cp "$sums" "$work/tree/.unpacked-from"
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$work/tree" "$dest"
  rm -rf "$work"
  trap - EXIT
  echo "unpack: $archive (sha256 $got) extracted into $dest"
}

case "${1:-}" in
  stash) [ $# -eq 3 ] || { usage >&2; exit 2; }; stash "$2" "$3" ;;
  join) [ $# -eq 3 ] || { usage >&2; exit 2; }; join_parts "$2" "$3" ;;
  -h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
