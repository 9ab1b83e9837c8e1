#!/usr/bin/env bash
# Installs the Debian packages Crest's build and tests need, only when missing.
# Used by both README commands (run and test) and by .ci/run.
#   cmake       - builds libopus for the media plane (opus crate)
#   sip-tester  - sipp, the SIP peer of the integration tests and benchmarks
#   libpocketsphinx-dev, libsphinxbase-dev, pocketsphinx-en-us - the IVR's speech recogniser
#                 (Debian's CMU PocketSphinx and its en-us model; nothing is downloaded at run time)
#   espeak-ng, sox - the IVR's TTS, and telephone speech for the IVR tests
#   prometheus  - a real Prometheus scraping crest in the metrics test (Debian 2.42; not run as a service)
#   chromium, chromium-driver - headless Chromium driven over WebDriver for the wallboard and
#                 agent desktop tests
#   firefox-esr - headless Firefox (WebDriver BiDi, no geckodriver) for the agent desktop test
#   curl        - the HTTPS admin listener's test client
# and makes sure PostgreSQL answers on 127.0.0.1:5432 (the recording index's tests run against
# it as well as SQLite): it is started when installed but stopped, installed when missing.
set -euo pipefail
PKGS=(cmake sip-tester libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us espeak-ng sox prometheus chromium chromium-driver firefox-esr curl)
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

# PostgreSQL for the recording index tests (CREST_TEST_POSTGRES overrides the address).
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if [[ -z "${CREST_TEST_POSTGRES:-}" ]] && ! pg_up; then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "setup: installing postgresql" >&2
    $SUDO timeout 300 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO timeout 600 apt-get install -y -qq --no-install-recommends postgresql
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    # A throw-away test server: local connections without a password, as on the dev machines.
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "/etc/postgresql/$ver/main/pg_hba.conf"
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  echo "setup: starting PostgreSQL $ver" >&2
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
  pg_up || { echo "setup: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi
