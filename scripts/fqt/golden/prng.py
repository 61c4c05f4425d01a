"""xorshift32 (Marsaglia 2003, shifts 13, 17, 5): the one random source of training.

    state = seed ^ 0x9E3779B9 (uint32); state == 0 -> 0x9E3779B9
    next(): x ^= x << 13; x ^= x >> 17; x ^= x << 5  (uint32); return x

The draw order is fixed by docs/training-semantics.md (section 7).
"""

from __future__ import annotations

SEED_MIX = 0x9E3779B9
MASK32 = 0xFFFFFFFF


class Xorshift32:
    def __init__(self, seed: int):
        s = (int(seed) ^ SEED_MIX) & MASK32
        self.state = s if s else SEED_MIX

    def next(self) -> int:
        x = self.state
        x ^= (x << 13) & MASK32
        x ^= x >> 17
        x ^= (x << 5) & MASK32
        self.state = x
        return x

    def draws(self, n: int) -> list[int]:
        return [self.next() for _ in range(n)]
