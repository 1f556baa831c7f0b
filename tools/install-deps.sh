#!/usr/bin/env bash
# Installs, from Debian 12's own archive, everything egress needs to build, run its
# demo and run its tests. Safe to run again: apt skips what is already there.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  libdpdk-dev dpdk-dev libipsec-mb-dev libsodium-dev libjansson-dev libcriterion-dev
  iproute2 iputils-ping ethtool jq python3 python3-cryptography python3-scapy tshark wireguard-go wireguard-tools
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
