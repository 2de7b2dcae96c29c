"""``struct tcp_info`` (include/uapi/linux/tcp.h) as the dict of ``tcpi_*`` names packetdrill's
``%{ }%`` blocks see.

The kernel copies ``min(optlen, sizeof(struct tcp_info))`` bytes, so an older kernel returns a
shorter struct: fields past the end are simply absent. Layout is the C one with natural alignment
(every u64 lands on an 8-byte boundary without padding, as the kernel header is laid out).
"""

from __future__ import annotations

import struct

# (name, struct code) in declaration order after the first eight u8 fields.
_FIELDS: list[tuple[str, str]] = [
    ("tcpi_rto", "I"), ("tcpi_ato", "I"), ("tcpi_snd_mss", "I"), ("tcpi_rcv_mss", "I"),
    ("tcpi_unacked", "I"), ("tcpi_sacked", "I"), ("tcpi_lost", "I"), ("tcpi_retrans", "I"),
    ("tcpi_fackets", "I"),
    ("tcpi_last_data_sent", "I"), ("tcpi_last_ack_sent", "I"), ("tcpi_last_data_recv", "I"),
    ("tcpi_last_ack_recv", "I"),
    ("tcpi_pmtu", "I"), ("tcpi_rcv_ssthresh", "I"), ("tcpi_rtt", "I"), ("tcpi_rttvar", "I"),
    ("tcpi_snd_ssthresh", "I"), ("tcpi_snd_cwnd", "I"), ("tcpi_advmss", "I"), ("tcpi_reordering", "I"),
    ("tcpi_rcv_rtt", "I"), ("tcpi_rcv_space", "I"),
    ("tcpi_total_retrans", "I"),
    ("tcpi_pacing_rate", "Q"), ("tcpi_max_pacing_rate", "Q"), ("tcpi_bytes_acked", "Q"),
    ("tcpi_bytes_received", "Q"), ("tcpi_segs_out", "I"), ("tcpi_segs_in", "I"),
    ("tcpi_notsent_bytes", "I"), ("tcpi_min_rtt", "I"), ("tcpi_data_segs_in", "I"),
    ("tcpi_data_segs_out", "I"),
    ("tcpi_delivery_rate", "Q"),
    ("tcpi_busy_time", "Q"), ("tcpi_rwnd_limited", "Q"), ("tcpi_sndbuf_limited", "Q"),
    ("tcpi_delivered", "I"), ("tcpi_delivered_ce", "I"),
    ("tcpi_bytes_sent", "Q"), ("tcpi_bytes_retrans", "Q"), ("tcpi_dsack_dups", "I"),
    ("tcpi_reord_seen", "I"),
    ("tcpi_rcv_ooopack", "I"),
    ("tcpi_snd_wnd", "I"), ("tcpi_rcv_wnd", "I"), ("tcpi_rehash", "I"),
    ("tcpi_total_rto", "H"), ("tcpi_total_rto_recoveries", "H"), ("tcpi_total_rto_time", "I"),
]
TCP_INFO_SIZE = 512  # ask for more than any kernel fills: it reports what it copied


def parse_tcp_info(buf: bytes) -> dict[str, int]:
    """The ``tcpi_*`` fields present in ``buf`` (a getsockopt(TCP_INFO) result)."""
    out: dict[str, int] = {}
    if len(buf) < 8:
        return out
    (state, ca_state, retransmits, probes, backoff, options, wscale, app_limited) = struct.unpack_from("8B", buf)
    out.update(tcpi_state=state, tcpi_ca_state=ca_state, tcpi_retransmits=retransmits, tcpi_probes=probes,
               tcpi_backoff=backoff, tcpi_options=options,
               # C bitfields on little-endian Linux: the first declared field is the low bits
               tcpi_snd_wscale=wscale & 0x0F, tcpi_rcv_wscale=wscale >> 4,
               tcpi_delivery_rate_app_limited=app_limited & 1,
               tcpi_fastopen_client_fail=(app_limited >> 1) & 3)
    offset = 8
    for name, code in _FIELDS:
        size = struct.calcsize(code)
        offset += -offset % size  # natural alignment
        if offset + size > len(buf):
            break
        out[name] = struct.unpack_from("=" + code, buf, offset)[0]
        offset += size
    return out


# Values for tcpi_state (include/net/tcp_states.h), exported to %{ }% code as packetdrill does.
TCP_STATES = {
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4, "TCP_FIN_WAIT2": 5,
    "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9, "TCP_LISTEN": 10,
    "TCP_CLOSING": 11,
}
# tcpi_ca_state (include/uapi/linux/tcp.h)
TCP_CA_STATES = {"TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3,
                 "TCP_CA_Loss": 4}
