"""Sequence-number arithmetic modulo 2**32 (RFC 9293 §3.4, RFC 1982 serial comparison)."""

MOD = 1 << 32
MASK = MOD - 1  # x & MASK is x modulo 2**32
HALF = 1 << 31


def add(a: int, n: int) -> int:
    """a + n modulo 2**32."""
    return (a + n) % MOD


def sub(a: int, b: int) -> int:
    """Distance from b forward to a, in [0, 2**32)."""
    return (a - b) % MOD


def lt(a: int, b: int) -> bool:
    """a comes strictly before b in sequence space."""
    return a != b and (b - a) % MOD < HALF


def le(a: int, b: int) -> bool:
    return a == b or lt(a, b)


def gt(a: int, b: int) -> bool:
    return lt(b, a)


def ge(a: int, b: int) -> bool:
    return le(b, a)


def in_window(x: int, start: int, size: int) -> bool:
    """start <= x < start + size, modulo 2**32."""
    return sub(x, start) < size


def diff(a: int, b: int) -> int:
    """Signed distance from b to a, in [-2**31, 2**31): how far a lies ahead of (or behind) b."""
    d = (a - b) % MOD
    return d - MOD if d >= HALF else d
