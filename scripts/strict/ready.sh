#!/usr/bin/env bash
# Exits 0 once both strict backends answer signed requests (S3 ListBuckets, DynamoDB ListTables), within
# STRICT_READY_SECONDS (default: lib.sh's ready_budget).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/strict/lib.sh
. "$here/lib.sh"
[ -f "$STRICT_DIR/env" ] || { say "no $STRICT_DIR/env: run scripts/strict/start.sh"; exit 1; }
# shellcheck disable=SC1091
. "$STRICT_DIR/env"
AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true STRICT_READY_SECONDS=${STRICT_READY_SECONDS:-$(ready_budget)} exec node "$here/ready.mjs"
