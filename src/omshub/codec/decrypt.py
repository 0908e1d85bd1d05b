"""The security layer of the telegram decoder: the TPL's security modes 2, 5, 7 and 10
(docs/protocol.md §6) and the ELL's AES-CTR (§4.2).

Each function works on a :class:`omshub.codec.state.Telegram` the lower layers have filled in.
"""

from __future__ import annotations

from omshub.codec import afl as _afl
from omshub.codec import ell as _ell
from omshub.codec import tpl as _tpl
from omshub.codec.errors import DecodeError
from omshub.codec.security import (
    KeyContext,
    cbc_decrypt,
    cbc_decrypt_once,
    ccm_decrypt,
    cmac,
    ctr_xcrypt,
    des_cbc_decrypt,
    kdf,
)
from omshub.codec.state import PLAIN, KeyLookup, Security, Telegram

FILLER2 = b"\x2f\x2f"
_ZERO_IV = bytes(16)
_ACC8 = tuple(bytes((acc,)) * 8 for acc in range(256))  # mode 5 IV tail: the access number 8 times
_CI_TABLE = _tpl.CI_TABLE

# the security states a telegram can end up in, made once (the result reports them as dicts)
_MODES = (0, 2, 5, 7, 10)
ENCRYPTED = {mode: Security(mode, True, False, False, False) for mode in _MODES}  # not decrypted
_DECRYPTED = {(mode, auth): Security(mode, True, True, auth, False) for mode in _MODES for auth in (False, True)}
PLAIN_ALREADY = {mode: Security(mode, True, False, False, True) for mode in _MODES}  # decrypted before receipt


def find_key(key: bytes | None, keys: KeyLookup | None, manufacturer: str, meter_id: str) -> bytes | None:
    """The meter's key: ``keys(manufacturer, meter_id)``, else the fixed ``key``."""
    if keys is not None:
        try:
            found = keys(manufacturer, meter_id)
        except DecodeError:
            raise
        except Exception as exc:  # a caller's lookup failing must not look like a codec bug
            raise DecodeError(
                "no_key", f"key lookup for {manufacturer} {meter_id} failed: {exc}", layer="security"
            ) from None
        if found is not None:
            return found
    return key


def context(keys: KeyLookup | None, key: bytes) -> KeyContext:
    """The key's AES context: the key ring's reusable one when the caller passes a ring (or any
    lookup with a ``context`` method: callers may pass any function)."""
    ring = getattr(keys, "context", None)
    return ring(key) if ring is not None else KeyContext(key)


# ----------------------------------------------------------------------------- ELL (AES-CTR)


def open_ell(t: Telegram) -> None:
    """The extended link layer at ``t.pos``: decrypts an AES-CTR payload (PayloadCRC as key check),
    puts the plaintext in place in ``t.data`` and moves ``t.pos`` to the next CI."""
    data, end, dll = t.data, t.end, t.dll
    assert dll is not None
    ell = _ell.parse(data, t.pos, end)
    t.frame_info["ell"] = ell.to_dict()
    t.acc = ell.acc
    pos = ell.payload
    if ell.encrypted:
        payload = data[pos:end]
        ell_key = find_key(t.key, t.keys, dll["manufacturer"], dll["id"])
        plain = None
        if ell_key is not None and len(ell_key) == 16:
            candidate = ctr_xcrypt(context(t.keys, ell_key), _ell.counter_block(data, ell), payload)
            if _ell.check_payload_crc(candidate):
                plain = candidate
                t.security = _DECRYPTED[0, False]
                if t.proof is not None:
                    t.proof.append(True)
        if plain is None:
            if _ell.check_payload_crc(payload) and len(payload) > 2 and payload[2] in _CI_TABLE:
                plain = payload
                t.security = PLAIN_ALREADY[0]
            else:
                partial = {
                    "meter": dll,
                    "transmitter": None,
                    "access_number": ell.acc,
                    "security": ENCRYPTED[0].as_dict(),
                    "frame": t.frame_info,
                }
                if ell_key is None:
                    raise DecodeError(
                        "no_key",
                        f"ELL-encrypted telegram of {dll['manufacturer']} {dll['id']} and no key known",
                        layer="ell",
                        partial=partial,
                    )
                raise DecodeError(
                    "wrong_key",
                    "ELL payload CRC failed after AES-CTR decryption (wrong key or corrupted telegram)",
                    layer="ell",
                    offset=pos,
                    partial=partial,
                )
        data = t.data = data[:pos] + plain
        end = t.end = len(data)
    if ell.sn is not None:
        pos += 2  # PayloadCRC
    if pos >= end:
        raise DecodeError("too_short", "no CI after the extended link layer", layer="ell", offset=pos)
    t.pos = pos


# ----------------------------------------------------------------------------- TPL security modes
#
# Each mode's function decrypts into the telegram (:func:`_decrypted`) and returns None, or
# returns why it failed; NOT_TRIED when it could not try (no usable key).

NOT_TRIED = ""


def decrypt_tpl(t: Telegram) -> tuple[bytes | None, str | None]:
    """Decrypt the payload after the TPL header (``t.mode`` is not 0). On success the APL is the
    plaintext (``t.apl_data``…) and ``t.security`` says how it was protected. Returns the key
    used (None when none is known) and why decryption failed (None when it did not).
    ``DecodeError`` when the mode or the frame rules decryption out; a payload that could not be
    decrypted is left to :func:`omshub.codec.assemble.plain_already`."""
    mode = t.mode
    if t.address8 is None:
        raise DecodeError("invalid_frame", "encrypted TPL without a meter address", layer="tpl", offset=t.tpl_start)
    if mode not in _tpl.SUPPORTED_MODES:
        raise DecodeError(
            "unsupported_security_mode",
            f"unsupported security mode {mode}",
            layer="security",
            offset=t.tpl_start,
            partial=t.partial(Security(mode, True, False, False, False)),
        )
    meter_key = find_key(t.key, t.keys, t.meter["manufacturer"], t.meter["id"])
    failure = None
    if meter_key is not None and len(meter_key) != 16 and mode != 2:
        failure = f"the key has {len(meter_key)} bytes; security mode {mode} needs a 16-byte AES key"
    if mode == 5:
        outcome = _mode5(t, meter_key)
    elif mode == 7:
        outcome = _mode7(t, meter_key, failure)
    elif mode == 10:
        outcome = _mode10(t, meter_key)
    else:  # mode 2, deprecated DES-CBC
        outcome = _mode2(t, meter_key)
    if outcome is None:
        return meter_key, None
    return meter_key, outcome or failure or "decryption failed"


def _decrypted(t: Telegram, plain: bytes, size: int, authenticated: bool) -> None:
    """The APL is now ``plain`` (its first ``size`` bytes were encrypted)."""
    t.apl_data = plain
    t.apl_start = 0
    t.apl_end = len(plain)
    t.enc_end = size
    t.security = _DECRYPTED[t.mode, authenticated]
    if t.proof is not None and (authenticated or t.payload + size == t.end):
        t.proof.append(True)


def _encrypted_end(t: Telegram, size: int, message: str) -> int:
    """End of ``size`` encrypted bytes after the TPL header; ``too_short`` when the frame is shorter."""
    enc_end = t.payload + size
    if enc_end > len(t.data):
        raise DecodeError(
            "too_short", message, layer="security", offset=t.payload, partial=t.partial(ENCRYPTED[t.mode])
        )
    return enc_end


def _mode5(t: Telegram, key: bytes | None) -> str | None:
    """AES-CBC with the IV from address and access number; 2F2F confirms the key."""
    data, payload, end = t.data, t.payload, t.end
    size = t.blocks * 16 or (end - payload) // 16 * 16
    enc_end = payload + size
    if enc_end > len(data):
        _encrypted_end(
            t,
            size,
            f"{t.blocks} encrypted blocks need {size} bytes after the TPL header, {len(data) - payload} present",
        )
    if key is None or len(key) != 16 or not size:
        return NOT_TRIED
    # IV = the meter's address (8 bytes) | access number ×8 (mode5_iv, without a call)
    iv = t.address8 + _ACC8[t.acc]  # type: ignore[operator,index]  # both set by the TPL layer
    plain = cbc_decrypt(context(t.keys, key), iv, data[payload:enc_end])
    if plain[:2] != FILLER2:
        return "decrypted data does not start with 2F2F"
    _decrypted(t, plain if enc_end >= end else plain + data[enc_end:end], size, False)
    return None


def _mode7(t: Telegram, key: bytes | None, failure: str | None) -> str | None:
    """AES-CBC with a key derived from the AFL message counter, after the AFL MAC verified."""
    afl = t.afl
    if afl is None or afl.mcr is None or not afl.mac:
        failure = "mode 7 needs an AFL with message counter and MAC"
        if key is not None:
            raise DecodeError(
                "invalid_frame", failure, layer="afl", offset=t.tpl_start, partial=t.partial(ENCRYPTED[7])
            )
    size = t.blocks * 16
    enc_end = _encrypted_end(t, size, f"{t.blocks} encrypted blocks need {size} bytes after the TPL header")
    if key is None or len(key) != 16 or failure is not None:
        return failure or NOT_TRIED
    assert afl is not None and afl.mcr_bytes is not None and t.ident is not None
    master = context(t.keys, key)
    kmac = kdf(master, 1, afl.mcr_bytes, t.ident)
    mac = cmac(kmac, _afl.mac_input(afl, t.data, t.tpl_start, t.end))[: len(afl.mac)]
    if mac != afl.mac:
        return "AFL MAC check failed"
    kenc = kdf(master, 0, afl.mcr_bytes, t.ident)
    plain = cbc_decrypt_once(kenc, _ZERO_IV, t.data[t.payload : enc_end])
    if plain[:2] != FILLER2:
        raise DecodeError(
            "wrong_key",
            "AFL MAC verified but the decrypted data does not start with 2F2F",
            layer="security",
            offset=t.payload,
            partial=t.partial(Security(7, True, False, True, False)),
        )
    _decrypted(t, plain if enc_end >= t.end else plain + t.data[enc_end : t.end], size, True)
    return None


def _mode10(t: Telegram, key: bytes | None) -> str | None:
    """AES-CCM: the tag authenticates the payload and the TPL header."""
    if key is None or len(key) != 16:
        return NOT_TRIED
    if t.end - t.payload < 8:
        raise DecodeError(
            "too_short",
            "mode 10 telegram shorter than its 8-byte CCM tag",
            layer="security",
            offset=t.payload,
            partial=t.partial(ENCRYPTED[10]),
        )
    assert t.address8 is not None and t.ident is not None
    kenc = kdf(context(t.keys, key), 0, t.counter, t.ident)
    nonce = bytes(t.address8) + b"\x00" + t.counter[::-1]
    plain = ccm_decrypt(kenc, nonce, t.data[t.payload : t.end], t.data[t.tpl_start : t.payload - 4])
    if plain is None:
        return "CCM tag check failed"
    _decrypted(t, plain, len(plain), True)
    return None


def _mode2(t: Telegram, key: bytes | None) -> str | None:
    """DES-CBC (deprecated)."""
    size = t.blocks * 16 or (t.end - t.payload) // 8 * 8
    enc_end = t.payload + size
    if key is None or enc_end > len(t.data) or size % 8 or not size or len(key) not in (8, 16):
        return NOT_TRIED
    plain = des_cbc_decrypt(key, t.data[t.payload : enc_end])
    if plain[:2] != FILLER2:
        return "decrypted data does not start with 2F2F"
    _decrypted(t, plain + t.data[enc_end : t.end], size, False)
    return None


__all__ = ["FILLER2", "ENCRYPTED", "PLAIN", "PLAIN_ALREADY", "context", "decrypt_tpl", "find_key", "open_ell"]
