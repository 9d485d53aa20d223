#!/usr/bin/env bash
# Runs .ci/run on a fresh clone of this repository's main branch as a machine
# that never had Nix's build users would: inside a private mount namespace
# whose /etc is a copy with the `nixbld` group and its users removed. The
# machine's own /etc is never touched; everything made in the copy (the group
# setup.sh creates) is gone when the namespace ends.
#
#   scripts/ci-as-fresh.sh [branch]      (as root)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
branch=${1:-main}
[[ $(id -u) -eq 0 ]] || { echo "ci-as-fresh: needs root (a mount namespace and a copy of /etc)" >&2; exit 1; }

work=$(mktemp -d /tmp/ntt-ci-fresh.XXXXXX)
trap 'rm -rf -- "$work"' EXIT
git clone -q --branch "$branch" "$repo" "$work/clone"
cp -a /etc "$work/etc"
for f in group gshadow passwd shadow; do
  [[ -e $work/etc/$f ]] && sed -i '/^nixbld[0-9]*:/d' "$work/etc/$f"
done

echo "ci-as-fresh: $work/clone, /etc without nixbld; running .ci/run" >&2
# A whole-directory bind: useradd/groupadd rename files inside /etc, which a bind of single files would refuse.
unshare --mount --propagation private -- bash -c '
  set -euo pipefail
  mount --bind "$1/etc" /etc
  if getent group nixbld >/dev/null; then echo "ci-as-fresh: nixbld still visible" >&2; exit 1; fi
  cd "$1/clone"
  time bash .ci/run
' ci-as-fresh "$work"
