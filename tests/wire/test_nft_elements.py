"""RstGuard's element encoding without root: the fast path (an address pair checked once) writes the same
text and key bytes as the checked, one-by-one spelling."""

from __future__ import annotations

import socket

import pytest

from rawtcp.wire import nft
from rawtcp.wire.errors import WireError
from rawtcp.wire.nft import RstGuard


@pytest.mark.parametrize(("local", "lport", "remote", "rport"), [
    ("198.18.0.1", 40000, "198.18.0.2", 8080),
    ("2001:db8::1", 1, "2001:db8:0::2", 65535),  # a non-canonical spelling prints canonically
])
def test_the_cached_element_is_the_checked_one(local, lport, remote, rport):
    set_name, text, key = nft._conn_element(local, lport, remote, rport)
    assert set_name == RstGuard.conn_set(local, remote)
    assert text == RstGuard.conn_key(local, lport, remote, rport)
    assert key == nft._conn_key(local, lport, remote, rport)


@pytest.mark.parametrize("args", [
    ("198.18.0.1", 0, "198.18.0.2", 8080),
    ("198.18.0.1", 1, "2001:db8::2", 8080),
    ("198.18.0.999", 1, "198.18.0.2", 8080),
])
def test_bad_elements_are_refused(args):
    with pytest.raises(WireError):
        nft._conn_element(*args)


@pytest.mark.parametrize("add", [True, False])
@pytest.mark.parametrize("comment", ["rawtcp pid 123", None])
@pytest.mark.parametrize(("local", "remote"), [("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "2001:db8::2")])
def test_the_precompiled_update_is_the_general_encoding(add, comment, local, remote):
    # A one-element update is packed from a layout cut once per set; it must be the very batch the
    # general encoder builds, sequence numbers included. (Nothing reaches the kernel: the element socket
    # talks to one end of a datagram pair, and the test plays nf_tables's ack at the other.)
    set_name, _text, key = nft._conn_element(local, 40000, remote, 8080)
    sock = nft._ElementSocket()
    netlink = sock._sock
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    sock._sock = ours
    try:
        for _ in range(2):  # the second update comes from the cached layout
            start = sock._seq
            want = (start + 2) & 0xFFFFFFFF  # the element message's sequence number: begin, element, end
            kernel.send(sock._NLMSG_ERR.pack(36, sock.NLMSG_ERROR, 0, want, 0, 0))
            assert sock.update(set_name, key, comment, add) == 0
            sent = kernel.recv(65536)
            after = sock._seq
            sock._seq = start
            kind, flags = sock._kind(add)
            general = (sock._msg(sock.NFNL_MSG_BATCH_BEGIN, sock.NLM_F_REQUEST, sock._begin_payload)
                       + sock._msg(kind, flags, sock._head(set_name) + sock._elements([key], comment))
                       + sock._msg(sock.NFNL_MSG_BATCH_END, sock.NLM_F_REQUEST, sock._begin_payload))
            assert sent == general and sock._seq == after
    finally:
        netlink.close()
        ours.close()
        kernel.close()
