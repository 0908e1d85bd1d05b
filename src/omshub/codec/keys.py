"""Key lookup and compact-frame format memory: the two caches a caller passes into ``decode``.

Both are plain in-memory objects (the codec itself keeps no state between telegrams). The cloud
subclasses :class:`FormatCache` (and may implement its own key callable) with database storage.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from .security import KeyContext


def _parse_key(text: str) -> bytes:
    cleaned = text.strip().replace(" ", "")
    try:
        key = bytes.fromhex(cleaned)
    except ValueError:  # (the key itself is never part of a message, not even a mistyped one)
        raise ValueError(f"the key ({len(cleaned)} characters) is not hex: 32 hex digits expected") from None
    if len(key) not in (16, 8):
        raise ValueError(f"the key has {len(key)} bytes; AES keys have 16 (DES keys 8)")
    return key


def iter_key_csv(text: str) -> Iterator[tuple[int, str, str, str | None]]:
    """Rows of a key file: CSV with a header row naming ``id``, ``key`` and optionally
    ``manufacturer`` (blank and ``#`` lines skipped) -> ``(line, id, key_text, manufacturer|None)``.
    Values are stripped, not validated (callers differ: the decoder accepts DES keys, the key
    store only AES). Raises ValueError naming the line; a key's value is never echoed."""
    reader = csv.reader(io.StringIO(text))
    header = None
    try:
        for row in reader:
            if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in row]
                missing = {"id", "key"} - set(header)
                if missing:
                    raise ValueError(
                        f"line {reader.line_num}: key file header must name the columns id and key "
                        f"(missing {', '.join(sorted(missing))})"
                    )
                id_col, key_col = header.index("id"), header.index("key")
                man_col = header.index("manufacturer") if "manufacturer" in header else None
                continue
            if len(row) <= max(id_col, key_col):
                raise ValueError(f"line {reader.line_num}: expected {len(header)} columns, got {len(row)}")
            manufacturer = row[man_col].strip() if man_col is not None and man_col < len(row) else ""
            yield reader.line_num, row[id_col].strip(), row[key_col].strip().replace(" ", ""), manufacturer or None
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    if header is None:
        raise ValueError("key file is empty (a header row id,key[,manufacturer] is needed)")


class KeyRing:
    """Meter keys: ``ring(manufacturer, meter_id) -> key | None``.

    Keys are stored per meter id, optionally bound to a manufacturer; ``default`` (if given) is
    returned for every meter without its own key. The ring also keeps one :class:`KeyContext`
    per key so AES contexts are reused across telegrams.
    """

    MAX_KEYS = 1_000_000

    def __init__(self, default: bytes | None = None) -> None:
        self._by_id: dict[str, bytes] = {}
        self._by_meter: dict[tuple[str, str], bytes] = {}
        self.default = default
        self._contexts: dict[bytes, KeyContext] = {}

    def __len__(self) -> int:
        return len(self._by_id) + len(self._by_meter)

    def add(self, meter_id: str, key: bytes | str, manufacturer: str | None = None) -> None:
        if isinstance(key, str):
            key = _parse_key(key)
        elif len(key) not in (16, 8):
            raise ValueError(f"key for {meter_id} has {len(key)} bytes; AES keys have 16")
        meter_id = meter_id.strip().upper()
        if not meter_id:
            raise ValueError("meter id is empty")
        if len(self) >= self.MAX_KEYS:
            raise ValueError(f"more than {self.MAX_KEYS} keys")
        if manufacturer:
            self._by_meter[(manufacturer.strip().upper(), meter_id)] = bytes(key)
        else:
            self._by_id[meter_id] = bytes(key)

    def __call__(self, manufacturer: str, meter_id: str) -> bytes | None:
        if self._by_meter:
            key = self._by_meter.get((manufacturer, meter_id))
            if key is not None:
                return key
        key = self._by_id.get(meter_id)
        return key if key is not None else self.default

    def context(self, key: bytes) -> KeyContext:
        """The reusable AES context of ``key`` (created on first use)."""
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = KeyContext(key)
        return ctx

    def entries(self) -> list[tuple[str, str | None, bytes]]:
        """(meter_id, manufacturer, key) triples, e.g. to send a ring to worker processes."""
        out: list[tuple[str, str | None, bytes]] = [(mid, None, key) for mid, key in self._by_id.items()]
        out += [(mid, man, key) for (man, mid), key in self._by_meter.items()]
        return out

    @classmethod
    def from_csv(cls, text: str, default: bytes | None = None) -> KeyRing:
        """Keys from CSV text with a header row naming the columns ``id``, ``key`` and optionally
        ``manufacturer``. Raises ValueError naming the line of the first bad row."""
        ring = cls(default)
        for line, meter_id, key_text, manufacturer in iter_key_csv(text):
            try:
                if manufacturer and (len(manufacturer) != 3 or not manufacturer.isalpha()):
                    raise ValueError(f"manufacturer {manufacturer!r} is not a 3-letter code")
                ring.add(meter_id, key_text, manufacturer)
            except ValueError as exc:
                raise ValueError(f"line {line}: {exc}") from None
        return ring


class FormatCache:
    """Compact-frame formats learned from full frames: (manufacturer, meter id, signature) -> format bytes.

    In memory and bounded; subclasses (the cloud's database-backed cache) override get/put.
    """

    MAX_ENTRIES = 100_000

    def __init__(self) -> None:
        self._formats: dict[tuple[str, str, int], bytes] = {}
        # memo for the decoder: format as hex text -> (format bytes, signature); bounded by the decoder
        self.signatures: dict[str, tuple[bytes, int]] = {}

    def __len__(self) -> int:
        return len(self._formats)

    def get(self, manufacturer: str, meter_id: str, signature: int) -> bytes | None:
        return self._formats.get((manufacturer, meter_id, signature))

    def put(self, manufacturer: str, meter_id: str, signature: int, fmt: bytes) -> None:
        formats = self._formats
        key = (manufacturer, meter_id, signature)
        if key not in formats and len(formats) >= self.MAX_ENTRIES:
            del formats[next(iter(formats))]  # oldest first: dicts keep insertion order
        formats[key] = bytes(fmt)

    def items(self) -> list[tuple[tuple[str, str, int], bytes]]:
        return list(self._formats.items())
