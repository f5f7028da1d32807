"""The complaint ids a run has kept, to drop a complaint that appears twice."""

from __future__ import annotations

import sys


class SeenIds:
    """Complaint ids already kept, in memory bounded by the number of ids, not their values.

    Real ids are dense, counting up from 1 (the bundled sample's reach 2.4 million), so a bitmap
    holds them in a few MB. It may grow only to 2 MiB or 8 bytes per id added (what an array
    of the ids would take), whichever is more: a single huge id cannot blow it up. Ids beyond
    it go to a set (~70 bytes each).
    """

    MIN_BITMAP_BYTES = 2 << 20

    def __init__(self) -> None:
        self._bits = bytearray()
        self._others: set[int | str] = set()
        self._added = 0

    def add(self, complaint_id: str) -> bool:
        """Record an id of ASCII digits; False if it was seen before."""
        digits = complaint_id.lstrip("0") or "0"
        # int() of thousands of digits is slow or refused: such ids stay strings.
        key: int | str = int(digits) if len(digits) <= 18 else digits
        self._added += 1
        if key in self._others:  # it may have come before the bitmap grew to cover it
            return False
        limit = max(self.MIN_BITMAP_BYTES, 8 * self._added)
        if isinstance(key, str) or key >= 8 * limit:
            self._others.add(key)
            return True
        byte, bit = divmod(key, 8)
        if byte >= len(self._bits):
            size = min(max(byte + 1, 2 * len(self._bits)), limit)
            self._bits.extend(bytes(size - len(self._bits)))
        if self._bits[byte] >> bit & 1:
            return False
        self._bits[byte] |= 1 << bit
        return True

    def nbytes(self) -> int:
        """Memory held, roughly."""
        return len(self._bits) + sys.getsizeof(self._others) + 36 * len(self._others)
