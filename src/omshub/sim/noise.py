"""Deterministic, random-access pseudo-random numbers for the simulator.

Every random quantity in a simulated fleet (weather anomalies, transmit jitter, fading, corruption)
is a pure function of the fleet seed and the indices that name it (meter, transmission, hour ...),
so any time window can be generated without replaying the fleet from its epoch, and two runs with
the same seed give the same bytes. splitmix64 is fast in pure Python and mixes well enough for this.
"""

from __future__ import annotations

import hashlib
import math

_MASK = 0xFFFF_FFFF_FFFF_FFFF


def mix64(x: int) -> int:
    """splitmix64 finaliser: a well-mixed 64-bit value from any 64-bit input."""
    x = (x + 0x9E37_79B9_7F4A_7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58_476D_1CE4_E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D0_49BB_1331_11EB) & _MASK
    return x ^ (x >> 31)


def hash_ints(*values: int) -> int:
    """64-bit hash of a sequence of integers (order matters)."""
    h = 0x2545_F491_4F6C_DD1D
    for v in values:
        h = mix64(h ^ (v & _MASK))
    return h


def uniform(*values: int) -> float:
    """Uniform float in [0, 1) named by the integers."""
    return (hash_ints(*values) >> 11) * (1.0 / 9007199254740992.0)


def uniform_at(base: int, index: int) -> float:
    """``uniform`` of a stream: ``base = hash_ints(...)`` names the stream, ``index`` the draw
    (one mix instead of one per name part, for the hot paths)."""
    return (mix64(base ^ index) >> 11) * (1.0 / 9007199254740992.0)


def gaussian_at(base: int, index: int) -> float:
    """``gaussian`` of a stream (see :func:`uniform_at`)."""
    return _box_muller(mix64(base ^ index))


def gaussian(*values: int) -> float:
    """Standard normal variate named by the integers (Box-Muller on two hashed uniforms)."""
    return _box_muller(hash_ints(*values))


def _box_muller(h: int) -> float:
    u1 = ((h >> 32) + 1) * (1.0 / 4294967297.0)  # (0, 1): log() stays finite
    u2 = (h & 0xFFFF_FFFF) * (1.0 / 4294967296.0)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def text_id(text: str) -> int:
    """Stable 64-bit integer for a string (names, serials) — Python's hash() is salted per process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
