"""RstGuard's element encoding without root: the fast path (an address pair checked once) writes the same
text and key bytes as the checked, one-by-one spelling."""

from __future__ import annotations

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
