#!/usr/bin/env bash
# Makes Debian's nix-bin usable for root on a machine that never had Nix:
# nix defaults to `build-users-group = nixbld` and refuses to build when that
# group does not exist. Debian creates it only in nix-setup-systemd, which
# needs a systemd host (libpam-systemd, sysusers); this machine may not be one.
#
# We create what Nix's own multi-user installer creates — the `nixbld` group
# and build users nixbld1..N (no home, no login) — rather than switching to a
# single-user configuration (`build-users-group =` in nix.conf): builds then
# run as unprivileged users in the sandbox, as on any NixOS or Nix-installer
# machine, which is what our Nix tests claim to reproduce. Idempotent.
set -euo pipefail

users=${NTT_NIX_BUILD_USERS:-8}
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"

command -v nix >/dev/null || { echo "setup-nix: nix is not installed (apt-get install nix-bin)" >&2; exit 1; }
group=$(nix --extra-experimental-features nix-command show-config 2>/dev/null | sed -n 's/^build-users-group = //p')
if [[ -z "$group" ]]; then
  echo "setup-nix: build-users-group is empty: builds run as root, nothing to create" >&2
  exit 0
fi

if ! getent group "$group" >/dev/null; then
  echo "setup-nix: creating group $group" >&2
  $sudo groupadd --system "$group"
fi
nologin=$(command -v nologin || echo /usr/sbin/nologin)
for i in $(seq 1 "$users"); do
  user="$group$i"
  getent passwd "$user" >/dev/null && continue
  $sudo useradd --system --no-create-home --home-dir /var/empty --shell "$nologin" \
    --gid "$group" --groups "$group" --comment "Nix build user $i" "$user"
done
# Nix wants its store and state directories owned by root; it creates them on first use as root.
$sudo mkdir -p /nix/store /nix/var/nix
echo "setup-nix: group $group with $(getent group "$group" | awk -F: '{ n = split($4, m, ","); print n }') build users" >&2
