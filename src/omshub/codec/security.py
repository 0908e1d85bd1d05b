"""Cryptographic primitives of the TPL/ELL/AFL security (docs/protocol.md §4.2, §5, §6.3).

A :class:`KeyContext` wraps one AES key and keeps its ECB encryptor/decryptor, so decoding many
telegrams of the same meter creates no cipher objects: CBC is done as one ECB call plus an XOR of
big integers, CTR as one ECB call over the counter blocks plus an XOR. Callers that decode
many telegrams keep KeyContexts (see :class:`omshub.codec.keys.KeyRing`); nothing here is global.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.cmac import CMAC

from .errors import DecodeError

try:  # DES moved to the "decrepit" module in cryptography 43; the project allows 42
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

_ZERO_BLOCK = bytes(16)


def check_key(key: bytes, what: str = "key") -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
        size = len(key) if isinstance(key, (bytes, bytearray)) else type(key).__name__
        raise DecodeError("wrong_key", f"{what} must be 16 bytes (AES-128), got {size}", layer="security")
    return bytes(key)


def _dbl(block: int) -> int:
    """Doubling in GF(2^128) for the CMAC subkeys (RFC 4493)."""
    block <<= 1
    if block >> 128:
        block = (block ^ 0x87) & ((1 << 128) - 1)
    return block


class KeyContext:
    """One AES-128 key with reusable ECB contexts."""

    __slots__ = ("key", "_enc", "_dec", "_k1")

    def __init__(self, key: bytes) -> None:
        self.key = check_key(key)
        self._enc: CipherContext | None = None
        self._dec: CipherContext | None = None
        self._k1: int | None = None

    def encrypt_ecb(self, data: bytes) -> bytes:
        enc = self._enc
        if enc is None:
            enc = self._enc = Cipher(algorithms.AES(self.key), modes.ECB()).encryptor()
        return enc.update(data)

    def decrypt_ecb(self, data: bytes) -> bytes:
        dec = self._dec
        if dec is None:
            dec = self._dec = Cipher(algorithms.AES(self.key), modes.ECB()).decryptor()
        return dec.update(data)

    def cmac_block(self, block: bytes) -> bytes:
        """AES-CMAC of exactly one complete 16-byte block (the KDF input): E(K, M xor K1)."""
        k1 = self._k1
        if k1 is None:
            k1 = self._k1 = _dbl(int.from_bytes(self.encrypt_ecb(_ZERO_BLOCK), "big"))
        return self.encrypt_ecb((int.from_bytes(block, "big") ^ k1).to_bytes(16, "big"))


def cbc_decrypt(ctx: KeyContext, iv: bytes, data: bytes) -> bytes:
    """AES-CBC decryption of whole blocks: D(C_i) xor C_{i-1} for all blocks in one integer XOR."""
    size = len(data)
    plain = ctx.decrypt_ecb(data)
    return (int.from_bytes(plain, "big") ^ int.from_bytes(iv + data[: size - 16], "big")).to_bytes(size, "big")


def cbc_decrypt_once(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC decryption with a key used only once (mode 7's per-message Kenc)."""
    return Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor().update(data)


def cbc_encrypt(ctx: KeyContext, iv: bytes, data: bytes) -> bytes:
    out = bytearray()
    prev = iv
    for i in range(0, len(data), 16):
        prev = ctx.encrypt_ecb(bytes(a ^ b for a, b in zip(data[i : i + 16], prev, strict=False)))
        out += prev
    return bytes(out)


def ctr_xcrypt(ctx: KeyContext, counter_block: bytes, data: bytes) -> bytes:
    """AES-CTR with the whole 16-byte counter block incremented as a big-endian integer."""
    size = len(data)
    if not size:
        return b""
    blocks = (size + 15) // 16
    if counter_block[15] == 0 and blocks <= 256:
        # the usual ELL case (BC = 0): only the last byte counts up, so all counter blocks are
        # the ICB repeated with 0, 1, 2, … XOR-ed into their last byte
        counters = (int.from_bytes(counter_block * blocks, "big") ^ _CTR_STEPS[blocks]).to_bytes(16 * blocks, "big")
    else:
        start = int.from_bytes(counter_block, "big")
        mask = (1 << 128) - 1
        counters = b"".join(((start + i) & mask).to_bytes(16, "big") for i in range(blocks))
    stream = ctx.encrypt_ecb(counters)[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")


def _ctr_steps(blocks: int) -> int:
    return int.from_bytes(b"".join(bytes(15) + bytes((i,)) for i in range(blocks)), "big")


class _Steps(dict[int, int]):
    """blocks -> _ctr_steps(blocks), made on first use (a few sizes in practice; not at start-up)."""

    def __missing__(self, blocks: int) -> int:
        value = self[blocks] = _ctr_steps(blocks)
        return value


_CTR_STEPS = _Steps()


def cmac(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def kdf(ctx: KeyContext, constant: int, counter: bytes, ident: bytes) -> bytes:
    """OMS KDF-A: CMAC(master, DC | C(4, as transmitted) | ID(4, as transmitted) | 07×7)."""
    return ctx.cmac_block(bytes((constant,)) + counter + ident + b"\x07\x07\x07\x07\x07\x07\x07")


def mode5_iv(address8: bytes, acc: int) -> bytes:
    """IV = M(2) ID(4) VER TYPE | ACC×8 (the meter's address, as transmitted)."""
    return address8 + bytes((acc,)) * 8


def ccm_decrypt(kenc: bytes, nonce: bytes, data: bytes, aad: bytes, tag_length: int = 8) -> bytes | None:
    """AES-CCM decryption; None when the tag does not verify."""
    try:
        return AESCCM(kenc, tag_length=tag_length).decrypt(nonce, data, aad)
    except InvalidTag:
        return None


def ccm_encrypt(kenc: bytes, nonce: bytes, data: bytes, aad: bytes, tag_length: int = 8) -> bytes:
    return AESCCM(kenc, tag_length=tag_length).encrypt(nonce, data, aad)


def des_cbc_decrypt(key: bytes, data: bytes) -> bytes:
    """Deprecated mode 2: single DES-CBC with IV 0 (TripleDES with K1 = K2 = K3)."""
    if len(key) == 16:
        key = key[:8]  # a DES key padded into a 16-byte slot
    if len(key) != 8:
        raise DecodeError("wrong_key", f"mode 2 (DES) needs an 8-byte key, got {len(key)} bytes", layer="security")
    dec = Cipher(TripleDES(key * 3), modes.CBC(bytes(8))).decryptor()
    return dec.update(data) + dec.finalize()
