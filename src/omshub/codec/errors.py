"""The one exception type the codec raises.

Every parser in :mod:`omshub.codec` turns bad input into a :class:`DecodeError` with a
machine-readable ``code`` and a message that says what, where and why. Any other exception
escaping the codec is a bug (the fuzz tests check this).
"""

from __future__ import annotations

from typing import Any

# The error codes the codec uses; the CLI and the head-end report them as-is.
ERROR_CODES = frozenset(
    {
        "invalid_hex",  # input text is not hex
        "too_short",  # fewer bytes than the layer needs
        "too_long",  # over the size bound for the layer
        "crc_error",  # a frame block CRC / wired M-Bus checksum failed
        "length_mismatch",  # L-field disagrees with the bytes present
        "unknown_ci",  # CI field not known / not supported
        "unsupported_security_mode",
        "no_key",  # encrypted and no key known
        "wrong_key",  # decryption produced no valid plaintext (2F2F / CRC / MAC)
        "mac_error",  # AFL CMAC / CCM tag failed with a key that decrypts? (reported as wrong_key when ambiguous)
        "invalid_record",  # APL record grammar violated
        "unknown_format",  # compact frame whose format has not been learned yet
        "invalid_frame",  # anything else structurally wrong with the frame
    }
)


class DecodeError(ValueError):
    """A telegram could not be decoded.

    ``code`` is one of :data:`ERROR_CODES`; ``layer`` names the layer that failed
    (``frame``, ``link``, ``ell``, ``afl``, ``tpl``, ``security``, ``apl``); ``offset`` is the
    byte offset in the layer's input where it failed, when known. ``partial`` may carry the
    header information decoded before the failure (meter address etc.) so callers can still
    file the telegram under its meter.
    """

    __slots__ = ("code", "layer", "offset", "partial")

    def __init__(
        self,
        code: str,
        message: str,
        *,
        layer: str | None = None,
        offset: int | None = None,
        partial: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.layer = layer
        self.offset = offset
        self.partial = partial

    @property
    def message(self) -> str:
        return str(self.args[0])

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}
