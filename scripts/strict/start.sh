#!/usr/bin/env bash
# Starts the strict test backends once: a one-node Ceph cluster (one monitor, one memstore OSD, one RADOS Gateway)
# and AWS's DynamoDB Local, both on loopback ports chosen here. Installs what is missing first (idempotent).
# Writes $STRICT_DIR/env (shell `export` lines the tests read) and prints its path. scripts/strict/stop.sh ends it.
# Recipe and measurements: ../shared/notes/strict-backends.md and ../shared/notes/local-aws.md.
#
# Variables: STRICT_DIR (state, default /tmp/render-store-strict-$UID), STRICT_CACHE (DynamoDB Local, default
# ~/.cache/render-store), STRICT_MEMSTORE_BYTES (OSD RAM, default 4 GiB), STRICT_READY_SECONDS (readiness budget;
# default 60 s per core-load unit, see ready_budget).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/strict/lib.sh
. "$here/lib.sh"

mkdir -p "$STRICT_DIR"
if [ -f "$STRICT_DIR/env" ] && "$here/ready.sh" >/dev/null 2>&1; then
  echo "strict backends already running: $STRICT_DIR/env" >&2
  echo "$STRICT_DIR/env"
  exit 0
fi
# Anything left from an earlier, partial start goes first.
"$here/stop.sh" >/dev/null 2>&1 || true
mkdir -p "$STRICT_DIR"/{run,log,mon/a,osd/0,rgw}
started=0
# A start that fails half way stops whatever it had started, so no daemon is left holding RAM or ports.
cleanup_partial () {
  if [ "$started" -ne 1 ]; then
    echo "strict backends: start failed; logs in $STRICT_DIR/log (tails below), stopping what had started" >&2
    for log in "$STRICT_DIR"/log/*.log; do [ -f "$log" ] && { echo "== $log" >&2; tail -n 15 "$log" >&2; }; done
    "$here/stop.sh" --keep-logs >&2 || true
  fi
}
trap cleanup_partial EXIT

install_packages
install_dynamodb_local

budget=$(ready_budget)
mon_v2=$(free_port); mon_v1=$(free_port); rgw_port=$(free_port); ddb_port=$(free_port)
fsid=$(uuidgen)
conf="$STRICT_DIR/ceph.conf"
rgw_name=client.rgw.strict
cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 2000
mon data avail warn = 1
mon warn on pool no redundancy = false
run dir = $STRICT_DIR/run
admin socket = $STRICT_DIR/run/\$name.asok
pid file = $STRICT_DIR/run/\$name.pid
log file = $STRICT_DIR/log/\$name.log
keyring = $STRICT_DIR/admin.keyring
[mon.a]
mon data = $STRICT_DIR/mon/a
[osd.0]
osd data = $STRICT_DIR/osd/0
osd objectstore = memstore
memstore device bytes = ${STRICT_MEMSTORE_BYTES:-4294967296}
osd class load list = *
osd class default list = *
[$rgw_name]
keyring = $STRICT_DIR/rgw.keyring
rgw data = $STRICT_DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
# The default refuses every request with x-amz-server-side-encryption over plain HTTP (400 InvalidRequest).
rgw crypt require ssl = false
EOF

say "ceph monitor (127.0.0.1:$mon_v2)"
ceph-authtool --create-keyring "$STRICT_DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$STRICT_DIR/admin.keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$STRICT_DIR/mon.keyring" --import-keyring "$STRICT_DIR/admin.keyring" >/dev/null
monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]" "$STRICT_DIR/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$STRICT_DIR/monmap" --keyring "$STRICT_DIR/mon.keyring"
spawn mon ceph-mon -c "$conf" -i a -f
wait_for "monitor" "$budget" ceph -c "$conf" --connect-timeout 5 mon stat

say "ceph OSD (memstore, ${STRICT_MEMSTORE_BYTES:-4294967296} bytes of RAM)"
osd_uuid=$(uuidgen)
ceph -c "$conf" osd new "$osd_uuid" >/dev/null
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
spawn osd ceph-osd -c "$conf" -i 0 -f
wait_for "OSD up" "$budget" bash -c "ceph -c '$conf' osd stat -f json | grep -q '\"num_up_osds\":1'"

say "RADOS Gateway (127.0.0.1:$rgw_port)"
ceph -c "$conf" auth get-or-create "$rgw_name" osd 'allow rwx' mon 'allow rw' -o "$STRICT_DIR/rgw.keyring"
spawn rgw radosgw -c "$conf" -n "$rgw_name" -f
wait_for "gateway port" "$budget" bash -c "curl -fsS -o /dev/null http://127.0.0.1:$rgw_port/"
# Access keys must be alphanumeric for DynamoDB Local; both backends get the same pair.
radosgw-admin -c "$conf" -n "$rgw_name" user create --uid=strict --display-name=strict \
  --access-key="$STRICT_ACCESS_KEY" --secret-key="$STRICT_SECRET_KEY" >/dev/null 2>"$STRICT_DIR/log/user-create.log" ||
  radosgw-admin -c "$conf" -n "$rgw_name" user info --uid=strict >/dev/null

say "DynamoDB Local (port $ddb_port; it has no host option and listens on every interface)"
(cd "$DYNAMODB_LOCAL_DIR" && spawn ddb java -Xmx512m -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
  -sharedDb -inMemory -port "$ddb_port" -disableTelemetry)

cat >"$STRICT_DIR/env" <<EOF
export RENDER_STORE_TEST_BACKEND=strict
export RENDER_STORE_STRICT_S3_ENDPOINT=http://127.0.0.1:$rgw_port
export RENDER_STORE_STRICT_DYNAMODB_ENDPOINT=http://127.0.0.1:$ddb_port
export RENDER_STORE_STRICT_ACCESS_KEY=$STRICT_ACCESS_KEY
export RENDER_STORE_STRICT_SECRET_KEY=$STRICT_SECRET_KEY
export RENDER_STORE_STRICT_CEPH_CONF=$conf
EOF
STRICT_READY_SECONDS=$budget "$here/ready.sh"
started=1
say "ready in ${SECONDS}s: $STRICT_DIR/env"
echo "$STRICT_DIR/env"
