#!/bin/sh
# Entry point of the compose `listener` service: prepare this container's network namespace, then run
# the command (the kernel TCP listener).
set -eu
addr="${RAWTCP_LISTENER_ADDR:-198.18.10.2}"
dev="$(ip -o -4 addr show to "$addr/32" | awk '{print $2; exit}')"
# A kernel sending over veth leaves the TCP checksum partial (offload); have it filled in software so
# rawtcp's packet socket and every pcap see valid checksums.
if [ -z "$dev" ] || ! ethtool -K "$dev" tx off >/dev/null 2>&1; then
    echo "listener: could not turn tx checksum offload off on ${dev:-the interface of $addr}" >&2
fi
exec "$@"
