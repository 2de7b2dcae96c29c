"""``struct tcp_info`` (include/uapi/linux/tcp.h) as the dict of ``tcpi_*`` names packetdrill's
``%{ }%`` blocks see.

The kernel copies ``min(optlen, sizeof(struct tcp_info))`` bytes, so an older kernel returns a
shorter struct: fields past the end are simply absent. Layout is the C one with natural alignment
(every u64 lands on an 8-byte boundary without padding, as the kernel header is laid out).
"""

from __future__ import annotations

import struct

from rawtcp.core.state_names import LINUX_STATES

_ECN_BITS = "_ecn_bits"  # tcpi_ecn_mode:2, tcpi_accecn_opt_seen:2, tcpi_accecn_fail_mode:4, tcpi_options2:24

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
    # Accurate ECN (Linux 6.18): CE counters, then one u32 of bitfields (decoded in parse_tcp_info)
    ("tcpi_received_ce", "I"), ("tcpi_delivered_e1_bytes", "I"), ("tcpi_delivered_e0_bytes", "I"),
    ("tcpi_delivered_ce_bytes", "I"), ("tcpi_received_e1_bytes", "I"), ("tcpi_received_e0_bytes", "I"),
    ("tcpi_received_ce_bytes", "I"), (_ECN_BITS, "I"),
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
        value = struct.unpack_from("=" + code, buf, offset)[0]
        offset += size
        if name == _ECN_BITS:  # C bitfields, first declared in the low bits
            out.update(tcpi_ecn_mode=value & 0x3, tcpi_accecn_opt_seen=(value >> 2) & 0x3,
                       tcpi_accecn_fail_mode=(value >> 4) & 0xF, tcpi_options2=value >> 8)
        else:
            out[name] = value
    return out


# Values for tcpi_state, exported to %{ }% code as packetdrill does (its code.c stops at TCP_CLOSING).
TCP_STATES = {name: number for name, (number, _state) in LINUX_STATES.items() if number <= 11}
# tcpi_ca_state (include/uapi/linux/tcp.h)
TCP_CA_STATES = {"TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3,
                 "TCP_CA_Loss": 4}

# tcpi_options bits (include/uapi/linux/tcp.h), exported to %{ }% code as packetdrill's code.c does.
TCPI_OPTS = {"TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4, "TCPI_OPT_ECN": 8,
             "TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32, "TCPI_OPT_USEC_TS": 64, "TCPI_OPT_TFO_CHILD": 128}

# getsockopt(TCP_CC_INFO) and getsockopt(SO_MEMINFO): packetdrill's code.c exports them next to tcp_info.
TCP_CC_INFO = 26
SO_MEMINFO = 55
TCP_CC_INFO_SIZE = 20  # union tcp_cc_info: its largest member, struct tcp_bbr_info
_SK_MEMINFO = ["SK_MEMINFO_RMEM_ALLOC", "SK_MEMINFO_RCVBUF", "SK_MEMINFO_WMEM_ALLOC", "SK_MEMINFO_SNDBUF",
               "SK_MEMINFO_FWD_ALLOC", "SK_MEMINFO_WMEM_QUEUED", "SK_MEMINFO_OPTMEM", "SK_MEMINFO_BACKLOG",
               "SK_MEMINFO_DROPS"]
SO_MEMINFO_SIZE = 4 * len(_SK_MEMINFO)


def parse_cc_info(buf: bytes) -> dict[str, int]:
    """The names code.c's write_tcp_cc_info() emits for a TCP_CC_INFO result.

    The kernel does not say which congestion control filled the union, so packetdrill reads it as each of
    BBR, DCTCP and Vegas in turn, whenever the returned length covers that struct; so do we (a cubic
    socket returns 0 bytes and defines nothing).
    """
    out: dict[str, int] = {}
    if len(buf) >= 20:
        lo, hi, min_rtt, pacing_gain, cwnd_gain = struct.unpack_from("=5I", buf)
        out.update(bbr_bw_lo=lo, bbr_bw_hi=hi, bbr_bw=(hi << 32) + lo, bbr_min_rtt=min_rtt,
                   bbr_pacing_gain=pacing_gain, bbr_cwnd_gain=cwnd_gain)
    if len(buf) >= 16:
        enabled, ce_state, alpha, ab_ecn, ab_tot = struct.unpack_from("=HH3I", buf)
        out.update(dctcp_enabled=enabled, dctcp_ce_state=ce_state, dctcp_alpha=alpha, dctcp_ab_ecn=ab_ecn,
                   dctcp_ab_tot=ab_tot)
        v_enabled, rttcnt, rtt, minrtt = struct.unpack_from("=4I", buf)
        # code.c's own spellings for the last two: tcp_rtt and tcp_minrtt
        out.update(tcpv_enabled=v_enabled, tcpv_rttcnt=rttcnt, tcp_rtt=rtt, tcp_minrtt=minrtt)
    return out


def parse_meminfo(buf: bytes) -> dict[str, int]:
    """``SK_MEMINFO_*`` from a getsockopt(SO_MEMINFO) result (only the entries the kernel filled)."""
    count = min(len(buf) // 4, len(_SK_MEMINFO))
    return dict(zip(_SK_MEMINFO, struct.unpack_from(f"={count}I", buf), strict=False))
