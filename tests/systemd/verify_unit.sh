#!/usr/bin/env bash
# Lints the shipped unit with systemd-analyze verify. ExecStart must name an
# existing binary, so the unit is checked with the freshly built one put in
# its place; everything else is verified as shipped.
set -euo pipefail
src=$1; bin=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing: install the systemd package"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed -e "s#/usr/bin/iblsyncd#$bin#g" "$src/iblsyncd.service" > "$tmp/iblsyncd.service"
out=$(systemd-analyze verify "$tmp/iblsyncd.service" 2>&1) || { echo "$out"; exit 1; }
# verify exits 0 on some warnings; treat any line about our unit as a failure.
if echo "$out" | grep -q "iblsyncd.service"; then echo "$out"; exit 1; fi
echo "systemd-analyze verify: ok"
# The security score, for docs/operations.md.
systemd-analyze security --offline=true "$tmp/iblsyncd.service" 2>/dev/null | tail -1 || true
