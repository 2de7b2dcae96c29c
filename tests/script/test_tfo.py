"""TFO cookies computed as Linux computes them (checked against the cookies packetdrill's run_all.py
passes for its own addresses, which the kernel produced), and the script <-> lab cookie map."""

from rawtcp.script.tfo import DEFAULTS_SH_KEY, CookieMap, parse_key, server_cookie, siphash24


def test_siphash24_reference_vectors() -> None:
    # SipHash paper, Appendix A: key 00..0f; messages b"" and 00..0e.
    k0 = int.from_bytes(bytes(range(8)), "little")
    k1 = int.from_bytes(bytes(range(8, 16)), "little")
    assert siphash24(k0, k1, b"") == 0x726FDB47DD0E0E31
    assert siphash24(k0, k1, bytes(range(15))) == 0xA129CA6149BE45E5


def test_cookie_for_packetdrills_ipv4_addresses() -> None:
    # run_all.py: -D TFO_COOKIE=3021b9d889017eeb for 192.0.2.1 -> 192.168.0.1 under defaults.sh's key
    assert server_cookie(DEFAULTS_SH_KEY, "192.0.2.1", "192.168.0.1").hex() == "3021b9d889017eeb"


def test_cookie_for_packetdrills_ipv6_addresses() -> None:
    assert server_cookie(DEFAULTS_SH_KEY, "fd3d:fa7b:d17d::1", "fd3d:0a0b:17d6::1").hex() == "c1d1e9742a47a9bc"


def test_mapped_addresses_count_as_ipv4() -> None:
    assert server_cookie(DEFAULTS_SH_KEY, "::ffff:192.0.2.1", "::ffff:192.168.0.1") == \
        server_cookie(DEFAULTS_SH_KEY, "192.0.2.1", "192.168.0.1")


def test_key_words_are_little_endian_halves() -> None:
    assert parse_key("00000001-00000002-00000003-00000004") == (2 << 32 | 1, 4 << 32 | 3)
    assert parse_key("00000001-00000002-00000003-00000004,ffffffff-ffffffff-ffffffff-ffffffff")[0] == 2 << 32 | 1


def test_cookie_map_swaps_only_address_cookies() -> None:
    cmap = CookieMap(DEFAULTS_SH_KEY, [("192.0.2.1", "192.168.0.1")], "198.18.0.1", "198.18.0.2")
    script_cookie = bytes.fromhex("3021b9d889017eeb")
    live = server_cookie(DEFAULTS_SH_KEY, "198.18.0.1", "198.18.0.2")
    assert live != script_cookie
    assert cmap.live(script_cookie) == live
    assert cmap.script(live) == script_cookie
    invented = bytes.fromhex("abcd1234")
    assert cmap.live(invented) == invented and cmap.script(invented) == invented
