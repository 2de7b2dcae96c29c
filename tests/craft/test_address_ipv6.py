"""Address arguments over IPv6 (no root): literals in every spelling, refusals, the lab's two families."""

from __future__ import annotations

import pytest

from rawtcp import errors
from rawtcp.commands.common import resolve_host, same_address


@pytest.mark.parametrize(("text", "canonical"), [
    ("2001:db8::2", "2001:db8::2"),
    ("2001:0db8:0000:0000:0000:0000:0000:0002", "2001:db8::2"),  # RFC 5952: one spelling
    ("[2001:db8::2]", "2001:db8::2"),
    ("2001:DB8::A", "2001:db8::a"),
    ("198.18.0.2", "198.18.0.2"),
])
def test_literals_resolve_to_their_canonical_spelling(text: str, canonical: str) -> None:
    assert resolve_host(text) == canonical


@pytest.mark.parametrize("text", ["fe80::1", "fe80::1%veth-c"])
def test_link_local_is_bad_input(text: str) -> None:
    with pytest.raises(errors.RawtcpError) as info:
        resolve_host(text)
    assert info.value.exit_code == errors.BAD_INPUT and "link-local" in str(info.value)


def test_unresolvable_name_is_bad_input() -> None:
    with pytest.raises(errors.RawtcpError) as info:
        resolve_host("no-such-host.invalid")  # RFC 6761: .invalid never resolves
    assert info.value.exit_code == errors.BAD_INPUT


def test_same_address_compares_values_not_text() -> None:
    assert same_address("2001:db8::2", "2001:0db8::0:2")
    assert not same_address("2001:db8::2", "2001:db8::1")
    assert not same_address("198.18.0.2", "::ffff:198.18.0.2")
    assert not same_address("2001:db8::2", None)
    assert not same_address("junk", "junk")
