#!/usr/bin/env bash
# Debian packages some tests use, installed when missing and we are root:
#   kcat      an independent Kafka client (tests/test_kcat.py)
#   chromium  headless browser: renders `distillguard report` (tests/test_report.py) and drives the
#             analyst console through Playwright (tests/test_console_browser.py)
#   openssl   self-signed certificates for the SASL/TLS broker test (tests/test_kafka_security.py)
# Without root or apt-get, the tests that need them skip with a reason.
set -u
missing=()
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || missing+=(kcat)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${missing[*]} not installed (needs root and apt-get); the tests that use them will skip"
  exit 0
fi
echo "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1
} || echo "note: could not install ${missing[*]}; the tests that use them will skip"
exit 0
