#!/usr/bin/env bash
# Whether a test guest is built for its current recipe, without building it
# (the test runner's prerequisite check): exit 0 and print its directory, or
# exit 1 saying what is missing. The hash is lib.sh's, the one every build.sh
# uses; this is a separate script rather than a build.sh flag so that checking
# never takes a build's lock or starts one.
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
guest_built "${1:?usage: built.sh tiny|systemd|container}"
