# shellcheck shell=bash
# What every guest recipe shares, sourced by <guest>/build.sh and by built.sh:
# where a guest's directory is (the hash, computed here and nowhere else), the
# fast path, the lock, the work directory and moving the result into place.
#
# A guest's <hash> covers every file of its recipe directory (names and
# contents), this file, and the directories of the guests it is made from
# (guest_inputs). This file is in it because it shapes every guest: where
# `done` goes, what a stale directory is. Editing it rebuilds them all, once.
#
# A build.sh reads:
#   source "$(dirname -- "${BASH_SOURCE[0]}")/../lib.sh"
#   guest_start NAME   # sets hash, out, recipe_dir, inputs[]; exits 0 printing $out
#                      # when it is built; else stdout goes to stderr, fd 3 keeps it
#   ...checks that need no lock...
#   guest_lock         # one build at a time; sets $work (removed on exit)
#   ...build into a directory under $work...
#   guest_finish DIR   # writes DIR/done, renames DIR to $out, removes stale
#                      # directories of this guest, prints $out on fd 3
# and may redefine guest_cleanup (what the EXIT trap removes) and guest_remove
# (how a stale directory is removed) after sourcing this file.

guests_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
cache_base=${NIXOS_TEST_TS_CACHE:-$HOME/.cache/nixos-test-ts}
guests_dir=$cache_base/guests

# Guests made from another guest's output, which then joins their hash: the
# container guest is the systemd guest's rootfs, unpacked.
declare -A guest_inputs=([container]=systemd)

# guest_locate NAME build|check: sets hash (16 hex digits), out (the guest's
# directory for its current recipe) and inputs[GUEST] (the directory of each
# guest it is made from). "build" builds an input that is missing; "check"
# fails, saying which one.
guest_locate() {
  local name=$1 mode=$2 input dir
  local -a input_dirs=()
  if [[ ! $name =~ ^[a-z0-9-]+$ || ! -f $guests_root/$name/build.sh ]]; then
    printf 'no test guest named "%s" (no %s/build.sh)\n' "$name" "$guests_root/$name" >&2
    return 2
  fi
  declare -gA inputs=()
  for input in ${guest_inputs[$name]-}; do
    if [[ $mode == build ]]; then
      dir=$(bash "$guests_root/$input/build.sh" | tail -n 1) || return 1
    else
      dir=$(guest_built "$input") || {
        printf 'the %s guest is made from the %s guest, which must be built first\n' "$name" "$input" >&2
        return 1
      }
    fi
    inputs[$input]=$dir
    input_dirs+=("$dir")
  done
  # sha256sum prints "sum  ./path" per file, so names count as well as contents.
  hash=$({
    (cd -- "$guests_root/$name" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    (cd -- "$guests_root" && sha256sum lib.sh)
    ((${#input_dirs[@]} == 0)) || printf '%s\n' "${input_dirs[@]}"
  } | sha256sum) || return 1
  hash=${hash:0:16}
  out=$guests_dir/$name-$hash
}

# guest_built NAME: prints the guest's directory if it is built for its
# current recipe, else fails saying what is missing (built.sh, prereqs.mjs).
guest_built() {
  guest_locate "$1" check || return 1
  if [[ ! -e $out/done ]]; then
    printf 'the %s guest is not built for its current recipe: %s is missing\n' "$1" "$out" >&2
    return 1
  fi
  printf '%s\n' "$out"
}

log() { printf '%s build: %s\n' "$guest" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

guest_start() {
  guest=$1
  recipe_dir=$guests_root/$guest
  guest_locate "$guest" build || exit 1
  # Fast path: every test run calls build.sh, so it must not do more than hash.
  if [[ -e $out/done ]]; then
    printf '%s\n' "$out"
    exit 0
  fi
  # From here on stdout belongs to the logs; fd 3 carries the result line.
  exec 3>&1 1>&2
}

guest_lock() {
  mkdir -p "$guests_dir"
  # Parallel test runs may all find the guest missing; one builds, the rest wait.
  exec 9> "$guests_dir/.$guest.lock"
  flock 9
  if [[ -e $out/done ]]; then
    printf '%s\n' "$out" >&3
    exit 0
  fi
  started=$SECONDS
  work=$(mktemp -d "$guests_dir/.$guest-$hash.tmp.XXXXXX")
  trap guest_cleanup EXIT
  log "building $out"
}

guest_cleanup() { rm -rf -- "$work"; }
guest_remove() { rm -rf -- "$@"; }

guest_finish() {
  local result=$1 d
  # `done` is written last: its presence means the directory is complete.
  date -u +%Y-%m-%dT%H:%M:%SZ > "$result/done"
  rm -rf -- "$out"
  mv -T -- "$result" "$out"
  # Older recipes' guests and leftovers of interrupted builds, in this cache
  # only and of this guest only; the lock ensures no other build is writing
  # into any of them. (A VM still running on an old image keeps its open
  # files; a new VM gets the new start scripts.)
  for d in "$guests_dir/$guest"-* "$guests_dir/.$guest"-*.tmp.*; do
    [[ -e $d && $d != "$out" && $d != "$work" ]] || continue
    case ${d##*/} in
      "$guest"-????????????????) ;;
      ."$guest"-????????????????.tmp.*) ;;
      *) continue ;;
    esac
    log "removing stale $d"
    guest_remove "$d"
  done
  log "done after $((SECONDS - started)) s: $out"
  printf '%s\n' "$out" >&3
}

# guest_kernel BZIMAGE DEST: the kernel as QEMU boots it fastest; sets
# kernel_kind (for the manifest). A bzImage decompresses itself (xz) before
# the kernel's clock starts: 2-4 s of every boot under TCG. QEMU also boots the
# uncompressed ELF through its PVH entry point (Debian builds CONFIG_PVH), so
# unpack it, as the kernel's scripts/extract-vmlinux does. Any surprise: DEST
# is the bzImage. Needs $work (guest_lock).
guest_kernel() {
  local src=$1 dest=$2 offset notes tmp=$work/kernel-unpack
  kernel_kind="bzImage (no xz payload with a PVH entry found)"
  cp -- "$src" "$dest"
  # (No pipes into head or grep -q here: pipefail would see their SIGPIPE.)
  offset=$(LC_ALL=C grep -obUaP -m 1 '\xfd7zXZ\x00' "$src" | cut -d: -f1 || true)
  offset=${offset%%$'\n'*}
  [[ $offset =~ ^[0-9]+$ ]] || return 0
  tail -c "+$((offset + 1))" "$src" > "$tmp.xz"
  if xz -dc --single-stream "$tmp.xz" > "$tmp" 2> /dev/null; then
    notes=$(readelf -n "$tmp" 2> /dev/null || true)
    if [[ $notes =~ PHYS32_ENTRY|\(0x00000012\) ]]; then
      mv -f -- "$tmp" "$dest"
      kernel_kind="ELF vmlinux with a PVH entry, unpacked from the bzImage"
    fi
  fi
  rm -f -- "$tmp.xz" "$tmp"
}
