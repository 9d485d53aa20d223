#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for nixos-test-ts: system packages (as root,
# or with sudo), npm dependencies, the build, and the tiny test guest (built
# from Debian packages, cached in ~/.cache/nixos-test-ts).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(qemu-system-x86 qemu-utils vde2 busybox-static cpio ca-certificates tesseract-ocr tesseract-ocr-eng imagemagick chromium)
packages+=(mmdebstrap e2fsprogs xz-utils binutils) # test/guests: the systemd image; xz and readelf unpack the kernels (lib.sh)
packages+=(systemd-container util-linux) # containers: systemd-nspawn, nsenter (vde2's vde_plug2tap: above)
packages+=(nix-bin) # test/nix: real nix builds (Debian's nix 2.8; flakes with --extra-experimental-features)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
# The guest build downloads .debs with apt-get download, which needs package lists.
$sudo apt-get update -q
if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# nix-bin builds as the nixbld group, which Debian creates only on systemd hosts.
bash scripts/setup-nix.sh

command -v node >/dev/null || { echo "setup: Node.js ≥ 20 is required (apt-get install nodejs npm, or nodesource)" >&2; exit 1; }
npm ci --no-audit --no-fund
npm run build
bash test/guests/tiny/build.sh >/dev/null
bash test/guests/systemd/build.sh >/dev/null
# The container guest holds root-owned files, and containers need root to run anyway.
if [[ $(id -u) -eq 0 ]]; then bash test/guests/container/build.sh >/dev/null; else echo "setup: skipped the container guest (build it as root: bash test/guests/container/build.sh)" >&2; fi
echo "setup: ready" >&2
