"""The hand-driven endpoint's profile: Linux's behaviour by default, SEED.md's bare SYN on request.

Pure tests (no root): the spec the CLI and rawtcp.api build, the EndpointConfig the keeper makes from
it, and the SYN that config sends.
"""

from __future__ import annotations

import pytest

from rawtcp import errors
from rawtcp.commands.engine import active_spec, passive_spec
from rawtcp.core import Endpoint
from rawtcp.core.rto import RTO_MIN, RTO_MIN_LINUX
from rawtcp.session.connection import ConnectionSpec


@pytest.fixture(autouse=True)
def private_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("RAWTCP_RUNTIME_DIR", str(tmp_path / "run"))  # session names come from here


def _config(spec: ConnectionSpec):
    return spec.endpoint_config(local_port=40000, remote_port=8080, isn=1000, mss=1460)


def _syn_options(spec: ConnectionSpec) -> list[str]:
    ep = Endpoint(_config(spec))
    ep.open_active(0.0)
    (syn,) = ep.segments_to_send(0.0)
    return [key for key, _value in syn.options]


def _spec(**fields) -> ConnectionSpec:
    return ConnectionSpec(remote_ip="198.18.0.2", remote_port=8080, **fields)


def test_default_profile_is_linux():
    cfg = _config(_spec())
    assert (cfg.sack, cfg.timestamps, cfg.wscale, cfg.nagle, cfg.delayed_ack) == (True, True, 7, True, True)
    assert cfg.rto_min == RTO_MIN_LINUX and cfg.challenge_ack_interval is not None
    # Linux's own SYN: mss,sackOK,TS,nop,wscale
    assert _syn_options(_spec()) == ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"]


def test_bare_profile_is_the_seed_syn_and_rfc_plain():
    cfg = _config(_spec(profile="bare"))
    assert (cfg.sack, cfg.timestamps, cfg.wscale, cfg.nagle, cfg.delayed_ack) == (False, False, None, False, False)
    assert cfg.rto_min == RTO_MIN and cfg.challenge_ack_interval is None  # RFC 6298 §2.4: 1 s
    assert _syn_options(_spec(profile="bare")) == ["MSS"]


def test_single_options_override_either_profile():
    cfg = _config(_spec(sack=False, no_wscale=True, nagle=False, delayed_ack=False, rto_min=0.5, keepalive=30.0))
    assert (cfg.sack, cfg.timestamps, cfg.wscale, cfg.nagle, cfg.delayed_ack) == (False, True, None, False, False)
    assert cfg.rto_min == 0.5 and cfg.keepalive == 30.0
    assert _syn_options(_spec(sack=False, no_wscale=True)) == ["MSS", "NOP", "NOP", "Timestamp"]
    bare = _config(_spec(profile="bare", timestamps=True, wscale=5))
    assert (bare.sack, bare.timestamps, bare.wscale, bare.nagle) == (False, True, 5, False)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="profile"):
        _spec(profile="bsd")


def test_cli_specs_carry_the_profile_to_the_keeper():
    default = active_spec("198.18.0.2", 8080, iface="eth0").connection
    assert default.profile == "linux" and default.rto_min is None and default.timestamps is None
    bare = active_spec("198.18.0.2", 8080, iface="eth0", bare=True, sack=True).connection
    assert bare.profile == "bare" and bare.sack is True
    off = active_spec("198.18.0.2", 8080, iface="eth0", timestamps=False, nagle=False,
                      delayed_ack=False, no_wscale=True, keepalive=10.0).connection
    assert (off.timestamps, off.nagle, off.delayed_ack, off.no_wscale, off.keepalive) == (False, False, False,
                                                                                           True, 10.0)
    passive = passive_spec(9000, iface="eth0", bare=True, wscale=3).connection
    assert passive.profile == "bare" and passive.wscale == 3 and passive.passive


def test_wscale_and_no_wscale_together_are_bad_input():
    with pytest.raises(errors.RawtcpError) as info:
        active_spec("198.18.0.2", 8080, iface="eth0", wscale=7, no_wscale=True)
    assert info.value.exit_code == errors.BAD_INPUT
