#!/usr/bin/env bash
# Whether a test guest is built for its current recipe, without building it
# (the test runner's prerequisite check): exit 0 and print its directory, or
# exit 1 saying what is missing. The hash is the one each build.sh computes;
# it lives here rather than as a build.sh flag because any edit of a recipe
# directory rebuilds that guest.
set -euo pipefail
guest=${1:?usage: built.sh tiny|systemd|...}
recipe_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/$guest" && pwd)
if [[ $guest == container ]]; then
  # The container guest is made from the systemd guest, whose directory is part of its hash.
  systemd_guest=$("$0" systemd)
  hash=$( (cd -- "$recipe_dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; echo "$systemd_guest") | sha256sum)
else
  hash=$(cd -- "$recipe_dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
fi
out=${NIXOS_TEST_TS_CACHE:-$HOME/.cache/nixos-test-ts}/guests/$guest-${hash:0:16}
if [[ -e $out/done ]]; then
  printf '%s\n' "$out"
else
  echo "the $guest guest is not built for its current recipe: $out is missing" >&2
  exit 1
fi
