"""The dual-stack lab's configuration, without root: IPv6 defaults and their checks."""

from __future__ import annotations

import pytest

from rawtcp.lab.errors import LabError
from rawtcp.lab.topology import LabConfig, _validate, fresh_lab


def test_lab_defaults_are_dual_stack_in_the_documentation_prefix() -> None:
    cfg = LabConfig()
    assert (cfg.client_ip6, cfg.server_ip6, cfg.prefix6) == ("2001:db8::1", "2001:db8::2", 64)
    assert cfg.dual_stack
    assert fresh_lab("rtt-lab6").client_ip6 == "2001:db8::1"
    assert not LabConfig(client_ip6=None, server_ip6=None).dual_stack


def test_old_state_records_still_load() -> None:
    # a state file written before IPv6 has no IPv6 keys: the defaults fill them in
    old = {"client_ns": "a", "server_ns": "b", "client_if": "veth-c", "server_if": "veth-s",
           "client_ip": "198.18.0.1", "server_ip": "198.18.0.2", "prefix": 24, "port": 8080, "listener": "echo"}
    assert LabConfig(**old).server_ip6 == "2001:db8::2"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"client_ip6": "2001:db8::1::2"}, "not an IPv6 address"),
    ({"server_ip6": "198.18.0.2"}, "not an IPv6 address"),
    ({"server_ip6": "2001:db8:0::1"}, "must differ"),
    ({"server_ip6": None}, "both IPv6 addresses or neither"),
    ({"prefix6": 128}, "outside 1-127"),
])
def test_ipv6_settings_checked(overrides: dict, message: str) -> None:
    with pytest.raises(LabError, match=message):
        _validate(LabConfig(**overrides))
    _validate(LabConfig())
