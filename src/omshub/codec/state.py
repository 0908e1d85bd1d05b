"""What the layers of the telegram decoder hand each other (docs/protocol.md §1).

:class:`Telegram` is one telegram on its way through the layers: each layer reads what the ones
below it found and adds its own part. :class:`Security` is the security state reported in the
result. Kept apart from the layer modules so that each of them can import it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from omshub.codec.afl import Afl
from omshub.codec.drivers.plan import Plan
from omshub.codec.frame import Frame
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
        return {"mode": mode, "encrypted": encrypted, "decrypted": decrypted, "authenticated": authenticated,
                "decrypted_before_receipt": before}


PLAIN = Security(0, False, False, False, False)


class Telegram:
    """One telegram being decoded. Attributes are set by the layer that finds them (the class
    attributes are the defaults: the decoder's hot path sets only what a telegram has)."""

    # the caller's arguments
    key: bytes | None = None
    keys: KeyLookup | None = None
    formats: FormatCache | None = None
    proof: list[bool] | None = None   # receives True when a check covering the L-counted bytes verified
    # link layer (and ELL, which may replace data/end with the decrypted frame)
    frame: Frame
    data: bytes = b""
    end: int = 0
    pos: int = 0                      # offset of the current CI
    ci: int = 0
    frame_info: Result
    meter: Result
    dll: Result | None = None         # the link layer's address (wireless only)
    memo: list[Any] | None = None     # the meter memo entry [meter dict, driver plan] (see telegram.meter_at)
    transmitter: Result | None = None
    acc: int | None = None
    security: Security = PLAIN
    afl: Afl | None = None
    # transport layer
    tpl_start: int = 0
    mode: int = 0
    blocks: int = 0
    sts: int | None = None
    status: Result | None = None
    payload: int = 0                  # offset of the first APL byte after the TPL header
    content: str = "full"             # "full" | "compact" | "none"
    counter: bytes = b""              # mode 10 message counter
    address8: bytes | None = None     # the meter address in link-layer order (IV / nonce)
    ident: bytes | None = None        # the meter identification number (key derivation)
    plan: Plan | None = None
    # security layer: where the APL is (in data or in the decrypted copy)
    apl_data: bytes = b""
    apl_start: int = 0
    apl_end: int = 0
    enc_end: int = 0                  # end of the decrypted region (record errors there may mean a wrong key)
    failure: str | None = None        # why decryption failed

    def partial(self, security: Security | None = None, transmitter: bool = True) -> Result:
        """What an error can tell about the telegram so far (``DecodeError.partial``)."""
        state = self.security if security is None else security
        return {"meter": self.meter, "transmitter": self.transmitter if transmitter else None,
                "access_number": self.acc, "security": state.as_dict(), "frame": self.frame_info}
