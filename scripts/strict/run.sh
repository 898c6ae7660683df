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
  # A test file added since files.txt was written is not run here until someone decides: say so.
  for file in test/*.test.ts; do
    grep -qE "^[+-] +$file( |$)" "$here/files.txt" || echo "strict tier: $file is not in scripts/strict/files.txt (add it with + or - and a reason)" >&2
  done
  for index in "${!files[@]}"; do
    [ -f "${files[$index]}" ] || { echo "strict tier: ${files[$index]} (files.txt) does not exist; skipped" >&2; unset "files[$index]"; }
  done
fi
# Coverage is the embedded tier's job (its thresholds are for the whole suite). One file at a time: the backends
# (three Ceph daemons and a JVM) share the two cores, and the timing-bound tests (leases, 50 contending writers,
# commit deadlines) missed their bounds when two files ran at once (STRICT_JOBS=2 to try).
npx tap --disable-coverage --jobs="${STRICT_JOBS:-1}" --timeout="${STRICT_TIMEOUT:-600}" "$@" "${files[@]}"
status=$?
echo "strict tier: backends up in $((started - began)) s, tests $((SECONDS - started)) s, total $((SECONDS - began)) s" >&2
exit "$status"
