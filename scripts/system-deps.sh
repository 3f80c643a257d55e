#!/usr/bin/env bash
# Install the Debian packages the test suite talks to: PostgreSQL (throwaway
# clusters), Prometheus (the real server the signals are checked against),
# Alertmanager (the real server alerts are polled from), the blackbox
# exporter (benchmark peer) and tmux (screen checks).
# Installs with apt-get when missing and running as root; otherwise says what to install.
set -euo pipefail

missing=()
have_pg() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_pg || missing+=(postgresql)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ "${1:-}" = "--bench" ]; then
  # The probing benchmark measures the blackbox exporter side by side.
  command -v prometheus-blackbox-exporter >/dev/null 2>&1 || missing+=(prometheus-blackbox-exporter)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "The tests need these Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages the tests need: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The postgresql package starts a cluster of its own; the tests start their own on free ports.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
