#!/usr/bin/env bash
# Keeps the host ports the compose files publish (ingress 8080/28080/.../58080, admin
# 9070/29070/.../59070) out of the kernel's ephemeral range, so that an outgoing connection
# of some other program never holds one when `docker compose up` binds it ("bind: address
# already in use"; 28080 and up lie inside Linux's default 32768-60999). Adds them to
# net.ipv4.ip_local_reserved_ports, keeping what is there. Needs root; without it, says so
# and changes nothing (the drills may then meet a taken port by chance).
#
#   scripts/compose/reserve-ports.sh
set -euo pipefail

PORTS=(8080 9070 9080 28080 29070 38080 39070 48080 49070 58080 59070)
FILE=/proc/sys/net/ipv4/ip_local_reserved_ports

if [[ ! -w $FILE ]]; then
  echo "compose: cannot write $FILE (not root?); the quickstart's host ports stay in the ephemeral range" >&2
  exit 0
fi
current=$(cat "$FILE")
wanted=$(printf '%s\n' ${current//,/ } "${PORTS[@]}" | sed '/^$/d' | sort -un | paste -sd, -)
if [[ $wanted != "$current" ]]; then
  echo "$wanted" > "$FILE"
  echo "compose: reserved host ports ${PORTS[*]} (net.ipv4.ip_local_reserved_ports=$(cat "$FILE"))" >&2
fi
