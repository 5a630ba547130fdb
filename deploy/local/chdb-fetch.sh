#!/usr/bin/env bash
# Fetches libchdb.so (the chDB engine, ClickHouse compiled as a library) from the npm registry
# into .cache/chdb/. Idempotent: does nothing when the library is already there.
# Prints the path; export CHDB_LIB_PATH to it for the local ClickHouse server (chserver).
set -euo pipefail

CHDB_NPM_PACKAGE="@chdb/lib-linux-x64-gnu"
CHDB_VERSION="26.5.3"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${root}/.cache/chdb"
lib="${dest}/libchdb.so"
stamp="${dest}/VERSION"

if [[ -s "${lib}" && -f "${stamp}" && "$(cat "${stamp}")" == "${CHDB_VERSION}" ]]; then
  echo "chdb ${CHDB_VERSION} already present: ${lib} ($(du -h "${lib}" | cut -f1))"
  echo "CHDB_LIB_PATH=${lib}"
  exit 0
fi

command -v npm >/dev/null || { echo "npm is required to fetch chDB (apt-get install -y npm)" >&2; exit 1; }

mkdir -p "${dest}"
tmp="$(mktemp -d "${dest}/.fetch.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

echo "fetching ${CHDB_NPM_PACKAGE}@${CHDB_VERSION} (about 166 MB)"
(cd "${tmp}" && npm pack --silent "${CHDB_NPM_PACKAGE}@${CHDB_VERSION}" >/dev/null)
tarball="$(ls "${tmp}"/*.tgz)"
echo "downloaded $(basename "${tarball}") ($(du -h "${tarball}" | cut -f1))"
tar -xzf "${tarball}" -C "${tmp}"
so="$(find "${tmp}/package" -name 'libchdb.so' -type f | head -n1)"
[[ -n "${so}" ]] || { echo "libchdb.so not found in ${tarball}" >&2; exit 1; }
if [[ -f "$(dirname "${so}")/chdb.h" ]]; then cp "$(dirname "${so}")/chdb.h" "${dest}/chdb.h"; fi
mv -f "${so}" "${lib}.tmp" && mv -f "${lib}.tmp" "${lib}"
echo "${CHDB_VERSION}" > "${stamp}"
echo "installed ${lib} ($(du -h "${lib}" | cut -f1))"
echo "CHDB_LIB_PATH=${lib}"
