"""Control messages (``msg_control=[{cmsg_level=..., cmsg_type=..., cmsg_data=...}]``) for sendmsg and
recvmsg, built and compared the way packetdrill's run_system_call.c does (cmsg_new, cmsg_expect_eq).

``cmsg_data`` takes one of these shapes:

* an integer: 4 bytes (TCP_CM_INQ, IP_TOS ...), compared byte for byte;
* ``{scm_sec=S, scm_nsec=N}``: a struct scm_timestamping whose first timestamp is a script time; a
  received one must be within the tolerance of that time on the live clock (0/0 means "don't check");
* ``{ee_errno=..., ee_origin=..., ee_type=..., ee_code=..., ee_info=..., ee_data=...}``: a struct
  sock_extended_err followed by the offender's sockaddr (sockaddr_in at SOL_IP, sockaddr_in6 otherwise);
  the six fields are compared, the address is not;
* ``{TCP_NLA_X=value, ...}``: SCM_TIMESTAMPING_OPT_STATS netlink attributes (``...`` for "any value";
  the time-valued ones within the tolerance).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from rawtcp.script.callexpr import CallScriptError, int_value, is_tag, s32_value, struct_fields, u8_value
from rawtcp.script.symbols import CONSTANTS

SOL_IP, SOL_IPV6, SOL_SOCKET = 0, 41, 1
IP_RECVERR, IPV6_RECVERR = 11, 25
SCM_TIMESTAMPING, SCM_TIMESTAMPING_OPT_STATS = 37, 54

_HDR = 16  # CMSG_ALIGN(sizeof(struct cmsghdr)) on 64-bit Linux
_EE = struct.Struct("=IBBBBII")  # struct sock_extended_err
_TIMESPECS = struct.Struct("=6q")  # struct scm_timestamping: three struct timespec
_SOCKADDR_IN, _SOCKADDR_IN6 = 16, 28
_IGNORE = 0xFFFFFFFFFFFFFFFF  # packetdrill's OPT_NLA_IGNORE_VAL: "any value" for an attribute

# The attribute sizes packetdrill knows (tcp_nla[]), by attribute number.
_NLA_SIZES = {0: 4, 1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8, 7: 8, 8: 4, 9: 4, 10: 4, 11: 1, 12: 1, 13: 4, 14: 1,
              15: 4, 16: 4, 17: 4, 18: 8, 19: 8, 20: 4, 21: 4, 22: 4}
_NLA_NAMES = {value: name for name, value in CONSTANTS.items() if name.startswith("TCP_NLA_")}
_NLA_TIMES = (1, 2, 3)  # BUSY, RWND_LIMITED, SNDBUF_LIMITED: microseconds, compared within the tolerance


def cmsg_len(data_len: int) -> int:
    return _HDR + data_len


def cmsg_space(data_len: int) -> int:
    return _HDR + ((data_len + 7) & ~7)


@dataclass(frozen=True)
class Cmsg:
    """One control message as packetdrill builds it from the script: level, type and data bytes."""

    level: int
    type: int
    data: bytes
    kind: str = "raw"  # raw | timestamping | ee | stats


@dataclass(frozen=True)
class TimeBase:
    """What a scm_timestamping check needs: where script time 0 is on CLOCK_REALTIME, and the tolerance."""

    start_usecs: int
    tolerance_usecs: int


def parse_control(expr: Any) -> list[Cmsg]:
    """``msg_control=[...]`` (the list) as Cmsg values; CallScriptError for a bad shape."""
    if expr is None or is_tag(expr, "ell"):
        return []
    if not is_tag(expr, "list"):
        raise CallScriptError("msg_control must be a list [{cmsg_level=..., cmsg_type=..., cmsg_data=...}, ...]")
    return [_cmsg(item) for item in expr["list"]]


def _cmsg(item: Any) -> Cmsg:
    fields = struct_fields(item) if is_tag(item, "struct") else {}
    if set(fields) != {"cmsg_level", "cmsg_type", "cmsg_data"}:
        raise CallScriptError("a control message must be {cmsg_level=..., cmsg_type=..., cmsg_data=...}")
    level = s32_value(fields["cmsg_level"]["value"], "cmsg_level")
    ctype = s32_value(fields["cmsg_type"]["value"], "cmsg_type")
    data = fields["cmsg_data"]["value"]
    if not is_tag(data, "struct"):
        return Cmsg(level, ctype, struct.pack("=i", s32_value(data, "cmsg_data")))
    members = struct_fields(data)
    names = list(members)
    if names == ["scm_sec", "scm_nsec"]:
        sec = int_value(members["scm_sec"]["value"], "scm_sec")
        nsec = int_value(members["scm_nsec"]["value"], "scm_nsec")
        return Cmsg(level, ctype, _TIMESPECS.pack(sec, nsec, 0, 0, 0, 0), "timestamping")
    if names == ["ee_errno", "ee_origin", "ee_type", "ee_code", "ee_info", "ee_data"]:
        ee = _EE.pack(s32_value(members["ee_errno"]["value"], "ee_errno") & 0xFFFFFFFF,
                      u8_value(members["ee_origin"]["value"], "ee_origin"),
                      u8_value(members["ee_type"]["value"], "ee_type"),
                      u8_value(members["ee_code"]["value"], "ee_code"), 0,
                      s32_value(members["ee_info"]["value"], "ee_info") & 0xFFFFFFFF,
                      s32_value(members["ee_data"]["value"], "ee_data") & 0xFFFFFFFF)
        # ip(v6)_recv_error() appends the offender's address to the struct
        pad = _SOCKADDR_IN if level == SOL_IP else _SOCKADDR_IN6
        return Cmsg(level, ctype, ee + b"\0" * pad, "ee")
    if names and len(names) == len(data["struct"]):
        return Cmsg(level, ctype, _nla_bytes(data["struct"]), "stats")
    raise CallScriptError("cmsg_data must be an integer, {scm_sec=..., scm_nsec=...}, "
                          "{ee_errno=..., ee_origin=..., ee_type=..., ee_code=..., ee_info=..., ee_data=...} "
                          "or {TCP_NLA_...=..., ...}")


def _nla_bytes(items: list[Any]) -> bytes:
    out = bytearray()
    for item in items:
        key = CONSTANTS.get(item["assign"])
        if key is None:
            raise CallScriptError(f"unknown symbol '{item['assign']}' for a netlink attribute")
        if key not in _NLA_SIZES:
            raise CallScriptError(f"bad NLA type {key}")
        size = _NLA_SIZES[key]
        value_expr = item["value"]
        if is_tag(value_expr, "ell"):
            value = _IGNORE
        elif is_tag(value_expr, "int") or is_tag(value_expr, "word") or is_tag(value_expr, "or"):
            value = int_value(value_expr, item["assign"])
            if value < 0 or value >= 1 << (8 * size):
                raise CallScriptError(f"out of bound u{8 * size} value specified")
        else:
            raise CallScriptError("values must be numeric or ellipsis")
        body = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        out += struct.pack("=HH", 4 + size, key) + body + b"\0" * (-(4 + size) % 4)
    return bytes(out)


def control_space(cmsgs: list[Cmsg]) -> int:
    """The msg_controllen packetdrill offers recvmsg: exactly the space of the expected messages (so a
    message the script did not expect sets MSG_CTRUNC)."""
    return sum(cmsg_space(len(c.data)) for c in cmsgs)


def ancillary(cmsgs: list[Cmsg]) -> list[tuple[int, int, bytes]]:
    """sendmsg's ancillary data."""
    return [(c.level, c.type, c.data) for c in cmsgs]


def compare(expected: list[Cmsg], actual: list[tuple[int, int, bytes]], timebase: TimeBase | None) -> str | None:
    """packetdrill's cmsg_expect_eq(): the first difference, in its words, or None."""
    for index, (want, (level, ctype, data)) in enumerate(zip(expected, actual, strict=False)):
        if level != want.level:
            return f"Bad level in cmsg {index}: expected={want.level} actual={level}"
        if ctype != want.type:
            return f"Bad type in cmsg {index}: expected={want.type} actual={ctype}"
        if len(data) != len(want.data):
            return f"Bad len in cmsg {index}: expected={cmsg_len(len(want.data))} actual={cmsg_len(len(data))}"
        if (level, ctype) in ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)):
            error = _compare_ee(want.data, data, index)
        elif (level, ctype) == (SOL_SOCKET, SCM_TIMESTAMPING):
            error = _compare_timestamping(want.data, data, index, timebase)
        elif (level, ctype) == (SOL_SOCKET, SCM_TIMESTAMPING_OPT_STATS):
            error = _compare_stats(want.data, data, index, timebase)
        elif data != want.data:
            error = f"Bad data in cmsg {index}: expected={_show(want.data)} actual={_show(data)}"
        else:
            error = None
        if error is not None:
            return error
    matched = min(len(expected), len(actual))
    if len(actual) > len(expected):
        return f"received more than {matched} cmsgs"
    if len(actual) < len(expected):
        return f"received only {matched} cmsgs"
    return None


def _show(data: bytes) -> str:
    if len(data) == 4:
        return str(struct.unpack("=i", data)[0])
    return data.hex()


_EE_FIELDS = (("errno", 0), ("origin", 1), ("type", 2), ("code", 3), ("info", 5), ("data", 6))


def _compare_ee(want: bytes, got: bytes, index: int) -> str | None:
    expected, actual = _EE.unpack_from(want), _EE.unpack_from(got)
    for name, pos in _EE_FIELDS:
        if expected[pos] != actual[pos]:
            return f"Bad {name} in extended err {index}: expected={expected[pos]} actual={actual[pos]}"
    return None


def _compare_timestamping(want: bytes, got: bytes, index: int, timebase: TimeBase | None) -> str | None:
    expected, actual = _TIMESPECS.unpack_from(want), _TIMESPECS.unpack_from(got)
    for i in range(3):
        sec, nsec = expected[2 * i], expected[2 * i + 1]
        if not sec and not nsec:  # packetdrill: a zero timestamp is not checked
            continue
        if timebase is None:
            raise CallScriptError("a scm_timestamping check needs the script's start time")
        exp_usecs = timebase.start_usecs + sec * 1_000_000 + nsec // 1000
        act_usecs = actual[2 * i] * 1_000_000 + actual[2 * i + 1] // 1000
        if abs(exp_usecs - act_usecs) > timebase.tolerance_usecs:
            start = timebase.start_usecs
            return (f"Bad timestamp {i} in scm_timestamping {index}: expected={exp_usecs} ({exp_usecs - start}) "
                    f"actual={act_usecs} ({act_usecs - start}) start={start}")
    return None


def _compare_stats(want: bytes, got: bytes, index: int, timebase: TimeBase | None) -> str | None:
    tolerance = timebase.tolerance_usecs if timebase is not None else 0
    offset = 0
    while offset + 4 <= len(want):
        elen, etype = struct.unpack_from("=HH", want, offset)
        alen, atype = struct.unpack_from("=HH", got, offset)
        if etype != atype:
            return f"Bad nla_type {index}: expected={etype} actual={atype}"
        if elen != alen:
            return f"Bad nla_len {index}: expected={elen} actual={alen}"
        size = elen - 4
        expected = int.from_bytes(want[offset + 4:offset + 4 + size], "little")
        actual = int.from_bytes(got[offset + 4:offset + 4 + size], "little")
        ignore = (1 << (8 * size)) - 1
        name = _NLA_NAMES.get(etype, str(etype))
        if etype in _NLA_TIMES:
            close = abs(expected - actual) <= tolerance if expected else not actual  # be exact about zeros
            ok = expected == ignore or close
        else:
            ok = expected in (actual, ignore)
        if not ok:
            return f"Bad {name}: expected={expected} actual={actual}"
        offset += (elen + 3) & ~3
    return None
