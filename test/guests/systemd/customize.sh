#!/usr/bin/env bash
# mmdebstrap --customize-hook for the systemd guest: runs after every package
# is installed, outside the chroot, with the chroot directory as $1 (in
# unshare mode inside mmdebstrap's user namespace, so chroot(8) works and
# ownership comes out right). Environment: NTT_RECIPE_DIR (this directory),
# NTT_MACHINE_ID (32 hex digits).
set -euo pipefail

root=$1
log() { printf 'systemd build: %s\n' "$*" >&2; }
in_root() { chroot "$root" "$@"; }

# ------------------------------------------------------------ our files

# Modes as committed (scripts 0755), owner root whoever runs the build.
cp -r --preserve=mode --no-preserve=ownership -T -- "$NTT_RECIPE_DIR/rootfs" "$root"

# Interfaces keep the kernel's names (eth0 = user net, eth1... = vlans), as
# NixOS tests have them (usePredictableInterfaceNames = false).
mkdir -p "$root/etc/systemd/network"
ln -sfn /dev/null "$root/etc/systemd/network/99-default.link"

# ------------------------------------------------------------ identity

# A fixed id keeps systemd from treating every boot as the first one
# (ConditionFirstBoot units, systemd-firstboot prompting on the console); the
# start scripts give each node its own with systemd.machine_id=.
printf '%s\n' "$NTT_MACHINE_ID" > "$root/etc/machine-id"
echo nixos > "$root/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"
# No name servers, as in NixOS tests (names come from /etc/hosts).
: > "$root/etc/resolv.conf"

# root and alice log in with an empty password (getty on tty1, su).
in_root passwd --delete root > /dev/null
in_root useradd --create-home --uid 1000 --user-group --shell /bin/bash alice
in_root passwd --delete alice > /dev/null
# Lingering: logind starts user@1000.service at boot, so systemctl --user
# works for alice without a login.
mkdir -p "$root/var/lib/systemd/linger"
: > "$root/var/lib/systemd/linger/alice"

# ------------------------------------------------------------ units

in_root systemctl enable --quiet backdoor.service ntt-network.service www.service broken.service
# Only when booted into graphical.target (QEMU_KERNEL_PARAMS=systemd.unit=graphical.target).
in_root systemctl enable --quiet ntt-x11.service ntt-hello-window.service ntt-graphical-session.target
in_root systemctl set-default --quiet multi-user.target

# Each line: units masked, and why. Under TCG every exec costs tens of
# milliseconds, so anything a test VM does not need goes.
masked=(
  # nixpkgs' instrumentation disables the serial gettys: the backdoor and the
  # journal own ttyS0 and hvc0 (the getty generator would add both).
  serial-getty@ttyS0.service serial-getty@hvc0.service
  # Disk housekeeping and the utmp/wtmp records of a throwaway disk.
  e2scrub_reap.service e2scrub_all.timer fstrim.timer
  systemd-update-utmp.service systemd-update-utmp-runlevel.service
  # The journal is volatile (journald.conf.d/ntt.conf): nothing to flush.
  systemd-journal-flush.service
  # modprobe@{configfs,drm,efi_pstore,fuse,loop}: one process each, for
  # modules nothing here uses (udev still loads drivers for devices).
  modprobe@.service
  sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount
  sys-fs-fuse-connections.mount dev-hugepages.mount
  proc-sys-fs-binfmt_misc.automount systemd-binfmt.service
  systemd-pstore.service
  # virtio-rng feeds the pool; a saved seed on a per-VM overlay is pointless.
  systemd-random-seed.service
  # Users and groups are all in the image already.
  systemd-sysusers.service
  # ConditionNeedsUpdate/ConditionFirstBoot work: the image is complete as built.
  systemd-hwdb-update.service ldconfig.service systemd-journal-catalog-update.service
  systemd-update-done.service systemd-firstboot.service systemd-machine-id-commit.service
  # Timers that would wake up during a test.
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer systemd-tmpfiles-clean.timer
)
in_root systemctl mask --quiet "${masked[@]}"

# Generators run at every boot before any unit; these ones look for things
# a test VM does not have (GPT auto-mounts, LUKS/verity/integrity volumes,
# SysV scripts, rc.local, hibernation, boot counting, offline updates, XDG
# autostart). fstab, debug (systemd.mask=... on the kernel command line),
# getty and run stay.
mkdir -p "$root/etc/systemd/system-generators" "$root/etc/systemd/user-generators"
for generator in gpt-auto cryptsetup veritysetup integritysetup sysv rc-local \
  hibernate-resume bless-boot system-update; do
  ln -sfn /dev/null "$root/etc/systemd/system-generators/systemd-$generator-generator"
done
ln -sfn /dev/null "$root/etc/systemd/user-generators/systemd-xdg-autostart-generator"

# ------------------------------------------------------------ trimming

# The initrd was generated when the kernel was installed (hooks/ntt); check it.
kernels=("$root"/boot/vmlinuz-*)
((${#kernels[@]} == 1)) || { log "expected one kernel in /boot, got: ${kernels[*]}"; exit 1; }
kver=${kernels[0]##*/vmlinuz-}
[[ -s $root/boot/initrd.img-$kver ]] || { log "no /boot/initrd.img-$kver"; exit 1; }

# Hardware QEMU does not emulate. What is left is still the whole generic
# kernel for the devices a test might add (disks, NICs, USB, input, sound is
# gone); depmod below keeps modules.dep consistent.
mods=$root/lib/modules/$kver/kernel
pruned=(
  sound drivers/media drivers/net/wireless drivers/infiniband drivers/staging
  drivers/gpu/drm/amd drivers/gpu/drm/nouveau drivers/gpu/drm/radeon drivers/gpu/drm/i915
  drivers/bluetooth net/bluetooth net/wireless net/mac80211 drivers/isdn drivers/iio
)
for dir in "${pruned[@]}"; do rm -rf -- "${mods:?}/$dir"; done
in_root depmod -a "$kver"

# What the mkfs step copies in must not include build-time state.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
  "$root"/var/log/apt/* "$root"/var/log/dpkg.log "$root"/var/log/alternatives.log
log "customized: kernel $kver, $(du -sx -BM --apparent-size "$root" | cut -f1) unpacked"
