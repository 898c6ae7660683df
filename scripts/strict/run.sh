#!/usr/bin/env bash
# npm run test:strict: starts the strict backends once (installing what is missing), runs the test files listed with
# `+` in files.txt and test/strict/*.test.ts against them in AWS mode, stops the backends, and exits with tap's status.
# Extra arguments go to tap (e.g. a single file: npm run test:strict -- test/strict/presign.test.ts).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
began=$SECONDS
env_file=$(bash "$here/start.sh") || { echo "strict backends did not start" >&2; exit 1; }
trap 'bash "$here/stop.sh"' EXIT
# shellcheck disable=SC1090
. "$env_file"
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
started=$SECONDS
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
  files=("$@"); shift $#
else
  mapfile -t files < <(sed -nE 's/^\+ +([^ ]+).*/\1/p' "$here/files.txt"; ls test/strict/*.test.ts)
fi
# Coverage is the embedded tier's job (its thresholds are for the whole suite); one job per core, as npm test.
npx tap --disable-coverage --jobs="${STRICT_JOBS:-2}" --timeout="${STRICT_TIMEOUT:-600}" "$@" "${files[@]}"
status=$?
echo "strict tier: backends up in $((started - began)) s, tests $((SECONDS - started)) s, total $((SECONDS - began)) s" >&2
exit "$status"
