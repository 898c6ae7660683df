# Shared by the strict-tier scripts (sourced, not run).
STRICT_DIR=${STRICT_DIR:-/tmp/render-store-strict-$(id -u)}
STRICT_CACHE=${STRICT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/render-store}
DYNAMODB_LOCAL_DIR="$STRICT_CACHE/dynamodb-local/emulator"
DYNAMODB_LOCAL_PACKAGE=${DYNAMODB_LOCAL_PACKAGE:-amplify-dynamodb-simulator@2.9.30}
# Test-only keys: DynamoDB Local wants alphanumeric ones; the gateway takes any.
STRICT_ACCESS_KEY=${STRICT_ACCESS_KEY:-STRICTTESTKEY0000001}
STRICT_SECRET_KEY=${STRICT_SECRET_KEY:-strictTestSecret000000000000000000000001}
export STRICT_DIR

say () { echo "strict: $*" >&2; }

free_port () {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# Runs a daemon in its own session (so it outlives this script) and records its pid in $STRICT_DIR/pids/NAME.
spawn () {
  local name=$1; shift
  mkdir -p "$STRICT_DIR/pids" "$STRICT_DIR/log"
  setsid "$@" >"$STRICT_DIR/log/$name.out.log" 2>&1 </dev/null &
  echo $! >"$STRICT_DIR/pids/$name"
}

# Seconds a step may take before the start counts as failed: measured ~25 s on an idle 2-core machine, so 60 s per
# unit of (1-minute load + 1) / cores, at least 60 s and at most 600 s. STRICT_READY_SECONDS overrides it.
ready_budget () {
  if [ -n "${STRICT_READY_SECONDS:-}" ]; then echo "$STRICT_READY_SECONDS"; return; fi
  local cores load
  cores=$(nproc 2>/dev/null || echo 1)
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
  awk -v c="$cores" -v l="$load" 'BEGIN { f = (l + 1) / c; if (f < 1) f = 1; s = int(60 * f + 0.5); if (s > 600) s = 600; print s }'
}

# wait_for WHAT SECONDS COMMAND...: runs COMMAND every half second until it succeeds; fails after SECONDS, or at once
# when a daemon we spawned has died.
wait_for () {
  local what=$1 budget=$2; shift 2
  local deadline=$((SECONDS + budget))
  until "$@" >/dev/null 2>&1; do
    for pidfile in "$STRICT_DIR"/pids/*; do
      [ -f "$pidfile" ] || continue
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { say "$(basename "$pidfile") exited while waiting for $what"; return 1; }
    done
    if [ "$SECONDS" -ge "$deadline" ]; then say "$what: not ready after ${budget}s"; return 1; fi
    sleep 0.5
  done
}

as_root () { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian's Ceph (Pacific on bookworm) and a Java runtime; nothing is installed when all are there.
install_packages () {
  local missing=()
  command -v radosgw >/dev/null || missing+=(radosgw)
  command -v ceph-mon >/dev/null || missing+=(ceph-mon)
  command -v ceph-osd >/dev/null || missing+=(ceph-osd)
  command -v uuidgen >/dev/null || missing+=(uuid-runtime)
  command -v curl >/dev/null || missing+=(curl)
  command -v java >/dev/null || missing+=(default-jre-headless)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} (apt-get)"
  as_root apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# DynamoDB Local ships inside amplify-dynamodb-simulator's npm tarball: only its emulator/ folder is kept.
install_dynamodb_local () {
  [ -f "$DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar" ] && return 0
  say "fetching DynamoDB Local ($DYNAMODB_LOCAL_PACKAGE, npm pack)"
  local scratch
  scratch=$(mktemp -d)
  (cd "$scratch" && npm pack "$DYNAMODB_LOCAL_PACKAGE" --silent >/dev/null)
  mkdir -p "$STRICT_CACHE/dynamodb-local.partial"
  tar -xzf "$scratch"/*.tgz -C "$STRICT_CACHE/dynamodb-local.partial" --strip-components=1 package/emulator
  rm -rf "$scratch" "$STRICT_CACHE/dynamodb-local"
  mv "$STRICT_CACHE/dynamodb-local.partial" "$STRICT_CACHE/dynamodb-local"
}
