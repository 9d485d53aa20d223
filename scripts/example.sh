#!/usr/bin/env bash
# The main job: set up, then run examples/tiny/test.mjs on two tiny Debian
# guests through the real driver CLI, as nixpkgs would run a NixOS test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/nixos-test-ts-example.XXXXXX")
mapfile -t scripts < <(node dist/test/guests/cli.js --out "$work" client server | cut -f2)
node dist/runtime/cli.js --start-scripts "${scripts[@]}" -o "$work/out" examples/tiny/test.mjs
echo "example: passed; log and copied files in $work/out" >&2
