#!/bin/sh
# Entry point of the compose `listener` service: prepare this container's network namespace, start the
# system-call helper (`rawtcp run --lab docker` executes a script's calls through it), then run the
# command (the kernel TCP listener).
set -eu
addr="${RAWTCP_LISTENER_ADDR:-198.18.10.2}"
dev="$(ip -o -4 addr show to "$addr/32" | awk '{print $2; exit}')"
# A kernel sending over veth leaves the TCP checksum partial (offload); have it filled in software so
# rawtcp's packet socket and every pcap see valid checksums.
if [ -z "$dev" ] || ! ethtool -K "$dev" tx off >/dev/null 2>&1; then
    echo "listener: could not turn tx checksum offload off on ${dev:-the interface of $addr}" >&2
fi
# packetdrill's tun0 path: MTU 1500, so the kernel advertises MSS 1460 and sizes its segments for a
# 1500-byte path even on a bigger-MTU lab network (as rawtcp/script/runner.py setup_links does).
if [ -n "$dev" ]; then
    net="$(ip -o -4 route show dev "$dev" scope link proto kernel | awk '{print $1; exit}')"
    [ -z "$net" ] || ip route replace "$net" dev "$dev" proto kernel scope link src "$addr" \
        mtu lock 1500 advmss 1460 || echo "listener: could not set the 1500-byte path MTU" >&2
fi
# Serves one script run at a time; the first line of each must carry RAWTCP_HELPER_TOKEN.
if [ -n "${RAWTCP_HELPER_LISTEN:-}" ]; then
    python -m rawtcp.script.syscall_helper --serve "$RAWTCP_HELPER_LISTEN" &
fi
exec "$@"
