#!/usr/bin/env bash
# Builds the "tiny" test guest from Debian packages: the distribution's generic
# kernel plus an initramfs holding busybox, bash, coreutils and nc, whose PID 1
# runs nixpkgs' backdoor shell on /dev/hvc0. No Nix, no disk image.
#
# Result: ${NIXOS_TEST_TS_CACHE:-~/.cache/nixos-test-ts}/guests/tiny-<hash>/
#   kernel      the kernel: an ELF vmlinux QEMU boots through its PVH entry
#               (lib.sh guest_kernel), or the bzImage
#   vmlinuz     the bzImage, for a VGA text console (StartScriptOptions.vgaText)
#   initrd.gz   gzip'd newc cpio, the whole root filesystem
#   manifest    kernel version, packages, module load order (for humans)
#   done        written last; its presence means the directory is complete
# <hash> covers every file next to this script and ../lib.sh (the prologue
# every guest shares), so editing the recipe rebuilds.
# The last line on stdout is the directory; everything else goes to stderr.
set -euo pipefail

source "$(dirname -- "${BASH_SOURCE[0]}")/../lib.sh"
guest_start tiny
guest_lock

# ---------------------------------------------------------------- packages

# The .debs are kept across recipe changes: the kernel alone is ~70 MB.
deb_cache=$cache_base/debs
mkdir -p "$deb_cache"

apt_opts=(-q)
# As root, apt drops to the _apt user and then cannot write into a private
# cache dir (it warns and carries on unsandboxed); say so up front instead.
if ((EUID == 0)); then apt_opts+=(-o APT::Sandbox::User=root); fi

# Shared libraries are listed by hand, but the NEEDED check further down is
# what guarantees completeness: a missing one fails the build, not the boot.
base_packages=(busybox-static bash coreutils netcat-openbsd
  libc6 libtinfo6 libselinux1 libpcre2-8-0 libacl1 libattr1 libgmp10 libbsd0 libmd0)
packages=()
deb_files=()

# linux-image-amd64 is a metapackage; the image with the modules is the
# versioned package it depends on (the generic flavour, not -cloud-amd64,
# which lacks drivers QEMU's default machine needs).
resolve_kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null \
    | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1 || true
}

# Downloads whatever is not yet in $deb_cache with the right checksum.
# Returns non-zero on any failure, so the caller can apt-get update and retry.
fetch_debs() {
  local kernel_package uris name sum pending=() partial
  kernel_package=$(resolve_kernel_package)
  [[ $kernel_package =~ ^linux-image-[0-9.]+-[0-9]+-amd64$ ]] || {
    log "cannot resolve linux-image-amd64 to a kernel package (got '${kernel_package}')"
    return 1
  }
  packages=("$kernel_package" "${base_packages[@]}")
  uris=$(apt-get "${apt_opts[@]}" download --print-uris "${packages[@]}") || return 1
  deb_files=()
  while read -r _ name _ sum; do
    [[ -n $name ]] || continue
    deb_files+=("$name")
    if [[ -f $deb_cache/$name && $sum == SHA256:* ]] &&
      [[ $(sha256sum < "$deb_cache/$name") == "${sum#SHA256:}  -" ]]; then
      continue
    fi
    pending+=("${name%%_*}")
  done <<< "$uris"
  ((${#deb_files[@]} == ${#packages[@]})) || {
    log "apt-get --print-uris returned ${#deb_files[@]} files for ${#packages[@]} packages"
    return 1
  }
  ((${#pending[@]} > 0)) || return 0
  log "downloading ${pending[*]}"
  partial=$(mktemp -d "$deb_cache/.partial.XXXXXX") || return 1
  if ! (cd -- "$partial" && apt-get "${apt_opts[@]}" download "${pending[@]}" >&2); then
    rm -rf -- "$partial"
    return 1
  fi
  mv -f -- "$partial"/*.deb "$deb_cache"/ && rm -rf -- "$partial"
}

if ! fetch_debs; then
  # Missing or outdated package lists (a superseded version 404s) look alike.
  log "download failed; running apt-get update and retrying"
  apt-get -q update >&2 || die "apt-get update failed (it needs root); run it by hand"
  fetch_debs || die "cannot download ${base_packages[*]} and the kernel"
fi

root=$work/root
kernel_root=$work/kernel
mkdir -p "$root" "$kernel_root"
for deb in "${deb_files[@]}"; do
  case $deb in
    linux-image-*) dpkg-deb -x "$deb_cache/$deb" "$kernel_root" ;;
    *) dpkg-deb -x "$deb_cache/$deb" "$root" ;;
  esac
done

# Docs, locales and iconv modules are most of the unpacked bytes and nothing
# in the guest reads them; a smaller initrd also unpacks faster under TCG.
rm -rf "${root:?}/usr/share" "${root:?}/usr/lib/x86_64-linux-gnu/gconv"

kernel_versions=("$kernel_root"/lib/modules/*)
((${#kernel_versions[@]} == 1)) || die "expected one kernel in the image package, got ${kernel_versions[*]}"
kver=${kernel_versions[0]##*/}
[[ -f $kernel_root/boot/vmlinuz-$kver ]] || die "no /boot/vmlinuz-$kver in the kernel package"
log "kernel $kver"

# ---------------------------------------------------------------- modules

kmods=$kernel_root/lib/modules/$kver

# busybox depmod and insmod only read plain .ko files; decompressing on the
# host costs nothing at boot, since the initrd is compressed as a whole anyway.
compressed=$(find "$kmods" -name '*.ko.*' | wc -l)
if ((compressed > 0)); then
  log "decompressing $compressed kernel modules"
  find "$kmods" -name '*.ko.xz' -print0 | xargs -0 -r -P "$(nproc)" -n 64 xz -d
  find "$kmods" -name '*.ko.zst' -print0 | xargs -0 -r -P "$(nproc)" -n 64 zstd -q -d --rm
  find "$kmods" -name '*.ko.gz' -print0 | xargs -0 -r -P "$(nproc)" -n 64 gzip -d
fi

# Debian ships no modules.dep (its postinst runs depmod); the busybox we are
# about to install is static, so it can generate one here.
"$root/bin/busybox" depmod -b "$kernel_root" "$kver"

declare -A module_path=() module_deps=() builtin=() visit_state=()
while IFS= read -r line; do
  path=${line%%:*}
  name=${path##*/}
  name=${name%.ko}
  name=${name//-/_}
  module_path[$name]=$path
  module_deps[$name]=${line#*:}
done < "$kmods/modules.dep"
while IFS= read -r path; do
  name=${path##*/}
  name=${name%.ko}
  builtin[${name//-/_}]=1
done < "$kmods/modules.builtin"

load_order=()
skipped_builtin=()
# Depth-first, dependencies before dependants: the order insmod needs.
visit() {
  local name=$1 dep dep_name
  case ${visit_state[$name]-} in
    done) return 0 ;;
    active) die "module dependency cycle through $name" ;;
  esac
  if [[ -n ${builtin[$name]-} ]]; then
    visit_state[$name]="done"
    skipped_builtin+=("$name")
    return 0
  fi
  [[ -n ${module_path[$name]-} ]] || die "module $name is neither in modules.dep nor built in"
  visit_state[$name]=active
  for dep in ${module_deps[$name]}; do
    dep_name=${dep##*/}
    dep_name=${dep_name%.ko}
    visit "${dep_name//-/_}"
  done
  visit_state[$name]="done"
  load_order+=("$name")
}
while read -r name _; do
  [[ -n $name && $name != \#* ]] || continue
  visit "${name//-/_}"
done < "$recipe_dir/modules.list"

: > "$work/modules-load.order"
for name in "${load_order[@]}"; do
  path=${module_path[$name]}
  mkdir -p "$root/lib/modules/$kver/${path%/*}"
  cp "$kmods/$path" "$root/lib/modules/$kver/$path"
  echo "/lib/modules/$kver/$path" >> "$work/modules-load.order"
done
log "modules (load order): ${load_order[*]}"
((${#skipped_builtin[@]} == 0)) || log "built in, skipped: ${skipped_builtin[*]}"

# ---------------------------------------------------------------- root fs

cp -a "$recipe_dir/rootfs/." "$root/"
chmod 0755 "$root"/etc/init.d/*
cp "$work/modules-load.order" "$root/etc/modules-load.order"
mkdir -p "$root"/{dev,proc,sys,tmp,run,root,mnt,var/tmp,bin,sbin}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
printf 'tiny-%s kernel=%s\n' "$hash" "$kver" > "$root/etc/tiny-guest"

# Real binaries win over busybox applets of the same name, wherever they live:
# tests are written against coreutils/bash semantics (base64 -w, timeout, ...).
# busybox nc lacks -z, which the driver's waitForOpenPort uses: ship OpenBSD nc.
ln -s nc.openbsd "$root/bin/nc"
ln -s bash "$root/bin/sh"
ln -s bin/busybox "$root/init"
applets=0
while IFS= read -r applet; do
  name=${applet##*/}
  dir=${applet#usr/}
  dir=${dir%/*}
  [[ $dir == bin || $dir == sbin ]] || continue
  for d in bin sbin usr/bin usr/sbin; do
    [[ -e $root/$d/$name || -L $root/$d/$name ]] && continue 2
  done
  if [[ $dir == bin ]]; then
    ln -s busybox "$root/bin/$name"
  else
    ln -s ../bin/busybox "$root/sbin/$name"
  fi
  applets=$((applets + 1))
done < <("$root/bin/busybox" --list-full)
log "$applets busybox applets linked"

# Resolves a path inside $root, following symlinks (absolute ones relative to
# $root, as the guest will); prints the host path or fails.
resolve_in_root() {
  local path=$1 target _
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if [[ -L $root$path ]]; then
      target=$(readlink "$root$path")
      [[ $target == /* ]] || target=${path%/*}/$target
      path=$target
    elif [[ -e $root$path ]]; then
      printf '%s\n' "$root$path"
      return 0
    else
      return 1
    fi
  done
  return 1
}

for cmd in bash sh base64 timeout cat cp mkdir stat sleep stty nc; do
  found=
  for d in /usr/bin /bin; do
    if resolved=$(resolve_in_root "$d/$cmd"); then found=$resolved; break; fi
  done
  [[ -n $found && $found != */busybox ]] || die "$cmd in the guest's PATH is busybox or missing"
done

# Every NEEDED library and the ELF interpreter of every binary must exist in
# the guest. Without an ld.so.cache the loader searches exactly these dirs.
# (The extra non-ELF argument keeps readelf printing "File:" headers even
# when xargs hands it a single file.)
lib_dirs=(/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib /usr/lib)
missing=()
checked=0
current=
while IFS= read -r line; do
  case $line in
    File:\ *) current=${line#File: }; current=${current#"$root"}; checked=$((checked + 1)) ;;
    *'(NEEDED)'*)
      lib=${line##*[}
      lib=${lib%]}
      ok=
      for d in "${lib_dirs[@]}"; do
        if resolve_in_root "$d/$lib" > /dev/null; then ok=1; break; fi
      done
      [[ -n $ok ]] || missing+=("$current needs $lib")
      ;;
    *'Requesting program interpreter:'*)
      interp=${line##*: }
      interp=${interp%]}
      resolve_in_root "$interp" > /dev/null || missing+=("$current needs interpreter $interp")
      ;;
  esac
done < <(find "$root" -path "$root/lib/modules" -prune -o -type f \
  \( -perm -u+x -o -name '*.so*' \) -print0 |
  xargs -0 readelf -W -d -l "$root/etc/passwd" 2> /dev/null | grep -E '^File: |\(NEEDED\)|program interpreter')
((${#missing[@]} == 0)) || die "missing shared libraries: ${missing[*]}"
log "NEEDED check passed for $checked ELF files"

# ---------------------------------------------------------------- initramfs

# A newc entry for a device node. The kernel opens /dev/console before /init
# runs (before devtmpfs is mounted), so the node must be in the archive, and
# writing it by hand avoids needing root (mknod) to build.
newc_entry() {
  local name=$1 mode=$2 major=$3 minor=$4
  local namesize=$((${#name} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    0 "$mode" 0 0 1 0 0 0 0 "$major" "$minor" "$namesize" 0
  printf '%s\0' "$name"
  head -c $(((4 - (110 + namesize) % 4) % 4)) /dev/zero
}

result=$work/result
mkdir "$result"
guest_kernel "$kernel_root/boot/vmlinuz-$kver" "$result/kernel"
# Kept for the screen: only the bzImage's real-mode setup hands the VGA text mode to the kernel (vgacon).
cp -- "$kernel_root/boot/vmlinuz-$kver" "$result/vmlinuz"
{
  (cd -- "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --quiet -0 -o -H newc --reproducible -R 0:0)
  # A second archive in the same stream: the kernel unpacks them in turn.
  newc_entry dev/console $((8#020600)) 5 1
  newc_entry dev/null $((8#020666)) 1 3
  newc_entry 'TRAILER!!!' 0 0 0
} | gzip -9n > "$result/initrd.gz"

{
  echo "tiny guest $hash"
  echo "kernel: $kver, $kernel_kind"
  echo "packages:"
  printf '  %s\n' "${deb_files[@]}"
  echo "modules (load order): ${load_order[*]}"
  echo "built-in, skipped: ${skipped_builtin[*]}"
  echo "root fs: $(du -sh --apparent-size "$root" | cut -f1) unpacked, $(find "$root" | wc -l) entries"
  echo "kernel: $(stat -c %s "$result/kernel") bytes"
  echo "initrd.gz: $(stat -c %s "$result/initrd.gz") bytes"
} > "$result/manifest"
sed 's/^/tiny build: /' "$result/manifest" >&2
for deb in "$deb_cache"/*.deb; do
  keep=
  for name in "${deb_files[@]}"; do [[ ${deb##*/} == "$name" ]] && keep=1 && break; done
  [[ -n $keep ]] || rm -f -- "$deb"
done

guest_finish "$result"
