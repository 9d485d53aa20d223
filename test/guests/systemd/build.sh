#!/usr/bin/env bash
# Builds the "systemd" test guest from Debian packages: a bookworm rootfs
# (mmdebstrap, minbase + systemd) in an ext4 image, booted with Debian's
# generic kernel and its initramfs-tools initrd, running nixpkgs' backdoor
# as backdoor.service. No Nix, no loop mounts; root only for mmdebstrap's
# chroot (as non-root it uses --mode=unshare, which needs subuids).
#
# Result: ${NIXOS_TEST_TS_CACHE:-~/.cache/nixos-test-ts}/guests/systemd-<hash>/
#   kernel      the kernel from the rootfs' /boot, unpacked to an ELF vmlinux
#               that QEMU boots through its PVH entry (2 s faster under TCG)
#   initrd.img  initramfs-tools' initrd (virtio modules only, see initramfs-tools/)
#   root.img    raw ext4 image of the root fs (sparse, read-only: VMs boot a
#               qcow2 overlay of it that their start script creates)
#   manifest    kernel, image sizes, installed packages (for humans)
#   done        written last; its presence means the directory is complete
# <hash> covers every file next to this script and ../lib.sh (the prologue
# every guest shares), so editing the recipe rebuilds.
# The .debs are kept in <cache>/debs-systemd, so a rebuild downloads nothing.
# The last line on stdout is the directory; everything else goes to stderr.
set -euo pipefail

source "$(dirname -- "${BASH_SOURCE[0]}")/../lib.sh"
guest_start systemd
guest_lock

# ---------------------------------------------------------------- host tools

missing=()
command -v mmdebstrap > /dev/null || missing+=(mmdebstrap)
command -v mkfs.ext4 > /dev/null || missing+=(e2fsprogs)
command -v xz > /dev/null || missing+=(xz-utils)
command -v readelf > /dev/null || missing+=(binutils)
if ((${#missing[@]} > 0)); then
  ((EUID == 0)) || die "install ${missing[*]} (apt-get install ${missing[*]})"
  log "installing ${missing[*]}"
  apt-get install -y -q "${missing[@]}" >&2 \
    || { apt-get -q update >&2 && apt-get install -y -q "${missing[@]}" >&2; } \
    || die "cannot install ${missing[*]}"
fi

if ((EUID == 0)); then
  mode=root
  as_root() { "$@"; }
else
  # Files in an unshare-mode chroot belong to subuids; only a process in the
  # same user namespace sees them as root's, so mkfs and rm run in one.
  mode=unshare
  as_root() { mmdebstrap --unshare-helper "$@"; }
fi
# Stale directories of older builds may hold subuid-owned files too.
guest_remove() { as_root rm -rf -- "$@"; }

# What mmdebstrap and the as_root commands write goes to $ns. In unshare mode
# they run as the namespace's root, which is a subuid outside and may write
# only where anyone may: $work must be traversable, $ns world-writable.
ns=$work
if [[ $mode == unshare ]]; then
  chmod 0711 "$work"
  ns=$work/ns
  mkdir -m 1777 "$ns"
fi
rootfs=$ns/rootfs
# (The rest is ours: sync-out's .debs, and files in $ns, a directory we own.)
guest_cleanup() {
  if [[ -e ${rootfs-} ]]; then as_root rm -rf -- "$rootfs" || true; fi
  rm -rf -- "$work"
}

# ---------------------------------------------------------------- rootfs

deb_cache=$cache_base/debs-systemd
mkdir -p "$deb_cache"

packages=(
  systemd systemd-sysv udev dbus libpam-systemd dbus-user-session
  iproute2 iputils-ping netcat-openbsd procps kmod busybox-static coreutils bash
  linux-image-amd64 initramfs-tools
  xvfb x11-utils # an X server for graphical.target (boot with systemd.unit=graphical.target)
)
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security

# Docs, man pages and translations are a third of a minbase system and
# nothing in a test VM reads them.
dpkg_excludes=()
for path in /usr/share/doc/ /usr/share/man/ /usr/share/info/ /usr/share/locale/ \
  /usr/share/lintian/ /usr/share/bug/; do
  dpkg_excludes+=(--dpkgopt="path-exclude=$path*")
done
dpkg_excludes+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')

apt_opts=()
# As root, apt drops to the _apt user, which cannot read the chroot's lists
# directory (it warns and carries on unsandboxed); say so up front instead.
if ((EUID == 0)); then apt_opts+=(--aptopt='APT::Sandbox::User "root"'); fi

# sync-in/sync-out keep /var/cache/apt/archives in $deb_cache (mmdebstrap's
# documented recipe); the essential-hook places the initramfs-tools config
# before the kernel's postinst generates the initrd, so it is generated once.
# shellcheck disable=SC2016 # mmdebstrap runs the hooks with sh, $1 = the chroot
NTT_RECIPE_DIR=$recipe_dir NTT_MACHINE_ID=$(printf '%s' "$hash" | sha256sum | cut -c1-32) \
  mmdebstrap --mode="$mode" --variant=minbase --format=directory \
  "${apt_opts[@]}" \
  --include="$(IFS=,; echo "${packages[*]}")" \
  "${dpkg_excludes[@]}" \
  --skip=essential/unlink \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $deb_cache /var/cache/apt/archives/" \
  --essential-hook='mkdir -p "$1"/etc/initramfs-tools && cp -r --preserve=mode --no-preserve=ownership -T -- "$NTT_RECIPE_DIR"/initramfs-tools "$1"/etc/initramfs-tools' \
  --customize-hook="sync-out /var/cache/apt/archives $ns/debs" \
  --customize-hook='chroot "$1" dpkg-query -W -f "\${Package} \${Version} \${Architecture}\n" > "$1"/.ntt-packages' \
  --customize-hook="$recipe_dir/customize.sh" \
  bookworm "$rootfs" \
  "deb $mirror bookworm main" \
  "deb $mirror bookworm-updates main" \
  "deb $security bookworm-security main" \
  || die "mmdebstrap failed"
log "rootfs done after $((SECONDS - started)) s"

# The cache keeps exactly this build's packages: new ones added, superseded
# versions dropped. (cp of a file mmdebstrap's namespace wrote is fine: it is
# ours outside, and .debs are world-readable.)
for deb in "$ns"/debs/*.deb; do
  [[ -e $deb ]] || continue
  [[ -e $deb_cache/${deb##*/} ]] || cp -- "$deb" "$deb_cache/"
done
for deb in "$deb_cache"/*.deb; do
  [[ -e $deb && ! -e $ns/debs/${deb##*/} ]] || continue
  rm -f -- "$deb"
done

# ---------------------------------------------------------------- kernel

result=$work/result
mkdir "$result"
kernels=("$rootfs"/boot/vmlinuz-*)
kver=${kernels[0]##*/vmlinuz-}
as_root cat "$rootfs/boot/vmlinuz-$kver" > "$work/vmlinuz"
as_root cat "$rootfs/boot/initrd.img-$kver" > "$result/initrd.img"

guest_kernel "$work/vmlinuz" "$result/kernel"
kernel_kind="$kernel_kind ($kver)"
log "kernel: $kernel_kind"
as_root cat "$rootfs/.ntt-packages" > "$work/packages"
# /boot is read by nobody in the guest: QEMU boots the files above directly.
as_root rm -f -- "$rootfs/boot/vmlinuz-$kver" "$rootfs/boot/initrd.img-$kver" "$rootfs/.ntt-packages"

# ---------------------------------------------------------------- ext4 image

# Free space for tests: writes land in each VM's overlay, and the raw image
# is sparse, so headroom costs no disk.
used_mib=$(as_root du -s -BM --apparent-size "$rootfs" | cut -f1)
used_mib=${used_mib%M}
size_mib=$(((used_mib * 5 / 4 + 1024 + 255) / 256 * 256))
fs_uuid=$(printf '%s' "$hash" | sha256sum | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
# lazy_*_init=0: inode tables and journal are zeroed now, not by the guest's
# ext4lazyinit thread writing into every VM's overlay during the test.
as_root mkfs.ext4 -q -F -L nixos -U "$fs_uuid" -m 0 \
  -E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
  -d "$rootfs" "$ns/root.img" "${size_mib}M" || die "mkfs.ext4 -d failed"
as_root rm -rf -- "$rootfs"
if [[ $ns == "$work" ]]; then
  mv -- "$ns/root.img" "$result/root.img"
else
  cp --sparse=always -- "$ns/root.img" "$result/root.img"
fi
chmod 0444 "$result/root.img"
log "image done after $((SECONDS - started)) s"

{
  echo "systemd guest $hash"
  echo "kernel: $kernel_kind"
  echo "root fs: ${used_mib} MiB in an ext4 image of ${size_mib} MiB ($(du -BM "$result/root.img" | cut -f1) allocated)"
  echo "kernel: $(stat -c %s "$result/kernel") bytes (vmlinuz: $(stat -c %s "$work/vmlinuz") bytes)"
  echo "initrd.img: $(stat -c %s "$result/initrd.img") bytes"
  echo "build: $((SECONDS - started)) s"
  echo "packages ($(wc -l < "$work/packages")):"
  sed 's/^/  /' "$work/packages"
} > "$result/manifest"
head -n 6 "$result/manifest" | sed 's/^/systemd build: /' >&2
guest_finish "$result"
