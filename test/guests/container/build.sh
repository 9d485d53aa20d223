#!/usr/bin/env bash
# Builds the "container" test guest: the systemd guest's Debian rootfs
# (test/guests/systemd, reused, so nothing is downloaded twice) unpacked from
# its ext4 image into a directory that systemd-nspawn boots, adapted to a
# container: bash as /bin/sh (nixpkgs' command prelude sources /etc/profile
# under `set -o pipefail`, as NixOS' /bin/sh allows), no kernel, no gettys or
# udev, the network set from /etc/ntt/network instead of the kernel command
# line (which a container shares with the host).
#
# Result: ${NIXOS_TEST_TS_CACHE:-~/.cache/nixos-test-ts}/guests/container-<hash>/
#   rootfs/   the root; start scripts copy everything but /usr into each
#             container's state directory and bind /usr read-only
#   done      written last
# <hash> covers this recipe, ../lib.sh and the systemd guest's directory
# (lib.sh's guest_inputs). Needs root (the rootfs has root-owned files) and
# debugfs (e2fsprogs). Last stdout line: the directory.
set -euo pipefail

source "$(dirname -- "${BASH_SOURCE[0]}")/../lib.sh"
guest_start container # builds the systemd guest first if needed
systemd_guest=${inputs[systemd]}
((EUID == 0)) || die "run as root: the rootfs holds root-owned files (and systemd-nspawn needs root anyway)"
command -v debugfs > /dev/null || die "install e2fsprogs (apt-get install e2fsprogs) for debugfs"
guest_lock

result=$work/result
root=$result/rootfs
mkdir -p "$root"
# rdump keeps modes and owners (not set-uid bits, which root's commands do not need).
debugfs -R "rdump / $root" "$systemd_guest/root.img" > /dev/null 2>&1 || die "debugfs rdump of $systemd_guest/root.img failed"
[[ -e $root/usr/lib/systemd/systemd ]] || die "no systemd in the unpacked rootfs"

# A container has no kernel, initrd or firmware of its own.
rm -rf -- "$root"/boot/* "$root"/usr/lib/modules "$root"/usr/lib/firmware "$root"/initrd.img* "$root"/vmlinuz*
rm -rf -- "$root"/lost+found

# bash as /bin/sh, as on NixOS.
ln -sfn bash "$root/usr/bin/sh"

cp -r --preserve=mode --no-preserve=ownership -T -- "$recipe_dir/rootfs" "$root"
# Units that only make sense on a VM: the backdoor (commands come through
# nsenter), the X session, udev and the gettys (nspawn's console is the driver's).
for unit in backdoor.service ntt-x11.service ntt-hello-window.service ntt-graphical-session.target \
  console-getty.service container-getty@.service getty@.service getty-static.service \
  systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
  systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-remount-fs.service \
  systemd-networkd-wait-online.service; do
  ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
chmod 0755 "$root/usr/local/libexec/ntt/network"
# No lingering user manager: under a host with hybrid cgroups user@1000 does
# not stop cleanly in a container, and no container test needs `systemctl --user`.
rm -f -- "$root/var/lib/systemd/linger/alice"

log "$(du -sh --exclude=usr "$root" | cut -f1) outside /usr"
guest_finish "$result"
