"""What the layers of the telegram decoder hand each other (docs/protocol.md §1).

:class:`Telegram` is one telegram on its way through the layers: each layer reads what the ones
below it found and adds its own part. :class:`Security` is the security state reported in the
result. Kept apart from the layer modules so that each of them can import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from omshub.codec.afl import Afl
from omshub.codec.drivers.plan import Plan
from omshub.codec.keys import FormatCache

KeyLookup = Callable[[str, str], "bytes | None"]
Result = dict[str, Any]


class Security(NamedTuple):
    """The security state of a telegram (``result["security"]``)."""

    mode: int
    encrypted: bool
    decrypted: bool
    authenticated: bool
    decrypted_before_receipt: bool  # an "encrypted" payload that is plaintext already

    def as_dict(self) -> dict[str, Any]:
        mode, encrypted, decrypted, authenticated, before = self
        return {
            "mode": mode,
            "encrypted": encrypted,
            "decrypted": decrypted,
            "authenticated": authenticated,
            "decrypted_before_receipt": before,
        }


PLAIN = Security(0, False, False, False, False)


class Telegram:
    """One telegram being decoded: each layer sets what it finds (the link layer the address and
    frame info, the TPL the access number, status, security configuration and APL bounds, ...)."""

    __slots__ = (
        "key",
        "keys",
        "formats",
        "proof",
        "data",
        "end",
        "pos",
        "ci",
        "frame_info",
        "meter",
        "dll",
        "memo",
        "transmitter",
        "acc",
        "security",
        "afl",
        "tpl_start",
        "mode",
        "blocks",
        "status",
        "payload",
        "content",
        "counter",
        "address8",
        "ident",
        "plan",
        "apl_data",
        "apl_start",
        "apl_end",
        "enc_end",
    )

    def __init__(
        self,
        key: bytes | None,
        keys: KeyLookup | None,
        formats: FormatCache | None,
        proof: list[bool] | None,
        data: bytes,
        end: int,
    ) -> None:
        # Only what a layer may read before another sets it is set here (this runs per telegram):
        # the link layer sets pos, ci, frame_info and meter, the TPL layer the rest.
        self.key = key
        self.keys = keys
        self.formats = formats
        self.proof = proof  # receives True when a check covering the L-counted bytes verified
        self.data = data  # the frame (the ELL may replace it with the decrypted one)
        self.end = end
        self.dll: Result | None = None  # the link layer's address (wireless only)
        self.memo: list[Any] | None = None  # the meter memo entry [meter dict, driver plan] (telegram._meter_at)
        self.transmitter: Result | None = None
        self.acc: int | None = None
        self.security = PLAIN
        self.afl: Afl | None = None

    # set by the link layer
    pos: int  # offset of the current CI
    ci: int
    frame_info: Result
    meter: Result
    # set by the TPL layer
    tpl_start: int
    mode: int
    blocks: int
    status: Result | None
    payload: int  # offset of the first APL byte after the TPL header
    content: str  # "full" | "compact" | "none"
    counter: bytes  # mode 10 message counter
    address8: bytes | None  # the meter address in link-layer order (IV / nonce)
    ident: bytes | None  # the meter identification number (key derivation)
    plan: Plan | None
    # where the APL is (in data, or in the decrypted copy the security layer makes)
    apl_data: bytes
    apl_start: int
    apl_end: int
    enc_end: int  # end of the decrypted region (record errors there may mean a wrong key)

    def partial(self, security: Security | None = None, transmitter: bool = True) -> Result:
        """What an error can tell about the telegram so far (``DecodeError.partial``)."""
        state = self.security if security is None else security
        return {
            "meter": self.meter,
            "transmitter": self.transmitter if transmitter else None,
            "access_number": self.acc,
            "security": state.as_dict(),
            "frame": self.frame_info,
        }
