#!/usr/bin/env bash
# Installs the Debian packages Crest's build and tests need, only when missing.
# Used by both README commands (run and test) and by .ci/run.
#   cmake       - builds libopus for the media plane (opus crate)
#   sip-tester  - sipp, the SIP peer of the integration tests and benchmarks
set -euo pipefail
PKGS=(cmake sip-tester)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
