#!/usr/bin/env bash
# Runs every test of the project (the README's test command): prepares the machine with
# scripts/bootstrap.sh, then `just test`.
set -euo pipefail
VP_SCRIPT=test
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(vp_repo_root)"

bash scripts/bootstrap.sh
vp_use_just
exec just test "$@"
