#!/usr/bin/env bash
# Stops the strict test backends started by start.sh (only the processes it recorded) and removes their state.
# --keep-logs leaves $STRICT_DIR/log for a look at why a start failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/strict/lib.sh
. "$here/lib.sh"
[ -d "$STRICT_DIR" ] || exit 0
pids=()
for pidfile in "$STRICT_DIR"/pids/*; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid" 2>/dev/null; pids+=("$pid"); }
done
for _ in $(seq 1 40); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" -eq 0 ] && break
  sleep 0.25
done
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
if [ "${1:-}" = "--keep-logs" ]; then
  find "$STRICT_DIR" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
else
  rm -rf "$STRICT_DIR"
fi
