#!/usr/bin/env bash
# Makes the secrets of the compose stack in deploy/compose/secrets/, once: files that exist
# are kept (delete one to make it anew). Run as root (sudo): each file is chowned to the one
# uid that reads it and set to mode 0400, since the Vigie services refuse a secret file that
# their group or others can read. Without root the files stay yours (the containers then
# cannot read them: set VIGIE_UID/VIGIE_GID in .env to your ids, for a trial only).
#
#   sudo deploy/compose/secrets.sh [-n]      -n: say what would be made, make nothing
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)/secrets
dry=false
[ "${1:-}" = "-n" ] && dry=true
vigie_uid=${VIGIE_UID:-65532}
vigie_gid=${VIGIE_GID:-65532}
clickhouse_uid=101
grafana_uid=472

umask 077
mkdir -p "$dir"

rand_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# put FILE UID: FILE's content comes from stdin; owner UID, mode 0400.
put() {
  local f="$dir/$1" owner=$2
  if [ -e "$f" ]; then
    echo "keep  $1"
    cat >/dev/null
    return
  fi
  echo "make  $1 (uid $owner, 0400)"
  if $dry; then cat >/dev/null; return; fi
  cat >"$f.tmp"
  chmod 0400 "$f.tmp"
  if [ "$(id -u)" = 0 ]; then chown "$owner:$owner" "$f.tmp"; fi
  mv "$f.tmp" "$f"
}

readpw() { # the password in FILE (as root, or as its owner)
  cat "$dir/$1"
}

printf 'active: k1\ndefault_country_code: "33"\nblock_key: %s\nkeys:\n  k1: %s\n' "$(rand_hex 32)" "$(rand_hex 32)" | put pseudonym_keys.yaml "$vigie_uid"
for u in vigie admin grafana analyst; do
  case $u in grafana) owner=$grafana_uid ;; analyst) owner=0 ;; *) owner=$vigie_uid ;; esac
  rand_hex 24 | put "clickhouse_${u}_password" "$owner"
done
rand_hex 24 | put grafana_admin_password "$grafana_uid"

if ! $dry && [ ! -e "$dir/clickhouse_include.xml" ]; then
  {
    echo '<clickhouse>'
    echo "  <vigie_password_sha256>$(sha256 "$(readpw clickhouse_vigie_password)")</vigie_password_sha256>"
    echo "  <admin_password_sha256>$(sha256 "$(readpw clickhouse_admin_password)")</admin_password_sha256>"
    echo "  <grafana_password_sha256>$(sha256 "$(readpw clickhouse_grafana_password)")</grafana_password_sha256>"
    echo "  <analyst_password_sha256>$(sha256 "$(readpw clickhouse_analyst_password)")</analyst_password_sha256>"
    echo "  <interserver_secret>$(rand_hex 24)</interserver_secret>"
    echo "  <interserver_password>$(rand_hex 24)</interserver_password>"
    echo '</clickhouse>'
  } | put clickhouse_include.xml "$clickhouse_uid"
fi

# Sensor credentials: the placeholder has no sensor (ingest refuses to start on an empty file:
# add sensors with `docker compose run --rm --entrypoint ingest-credentials ingest ...` into a
# copy, or for the demo profile with the simulator's `credentials` command).
if [ ! -e "$dir/ingest_credentials.yaml" ]; then
  if command -v go >/dev/null && [ -d "$dir/../../../services/simulator" ] && ! $dry; then
    tmp=$(mktemp -d)
    (cd "$dir/../../.." && go run ./services/simulator/cmd/simulator credentials \
      -credentials_file "$tmp/ingest_credentials.yaml" -tokens_file "$tmp/sensor_tokens.yaml") >/dev/null
    put ingest_credentials.yaml "$vigie_uid" <"$tmp/ingest_credentials.yaml"
    put sensor_tokens.yaml "$vigie_uid" <"$tmp/sensor_tokens.yaml"
    rm -rf "$tmp"
  else
    echo "ingest_credentials.yaml: not made (needs Go and the source tree): make it with ingest-credentials" >&2
  fi
fi
