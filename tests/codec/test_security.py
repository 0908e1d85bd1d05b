import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from omshub.codec.security import (
    KeyContext,
    cbc_decrypt,
    cbc_encrypt,
    ccm_decrypt,
    ccm_encrypt,
    cmac,
    ctr_xcrypt,
    des_cbc_decrypt,
    kdf,
    mode5_iv,
)

from ._stack import vector

KEY = bytes(range(16))


def test_kdf_published_keys():
    master = KeyContext(KEY)
    counter, ident = bytes.fromhex("B30A0000"), bytes.fromhex("78563412")
    assert kdf(master, 0, counter, ident).hex().upper() == "ECCF39D475D730B8284FDFDC1995D52F"
    assert kdf(master, 1, counter, ident).hex().upper() == "C9CD19FF5A9AAD5A6BBDA13BD2C4C7AD"
    # the single-block shortcut equals a full CMAC
    block = bytes([0]) + counter + ident + b"\x07" * 7
    assert kdf(master, 0, counter, ident) == cmac(KEY, block)


def test_mode5_vector_iv_and_plaintext():
    item = vector("oms-annexN-N2.1-profileA")
    frame = bytes.fromhex(item["frame_no_crc"])
    iv = mode5_iv(frame[2:10], frame[11])
    assert iv.hex().upper() == item["checks"]["iv"]
    plain = cbc_decrypt(KeyContext(bytes.fromhex(item["key"])), iv, frame[15:47])
    assert plain.hex().upper() == item["plaintext_hex"]


@given(st.binary(min_size=16, max_size=16), st.integers(min_value=1, max_value=15), st.binary(min_size=16, max_size=16))
def test_cbc_matches_library(key, blocks, iv):
    data = os.urandom(16 * blocks)
    ctx = KeyContext(key)
    reference = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(data)
    assert cbc_encrypt(ctx, iv, data) == reference
    assert cbc_decrypt(ctx, iv, reference) == data


@given(st.binary(min_size=1, max_size=200), st.binary(min_size=16, max_size=16))
def test_ctr_matches_library_and_inverts(data, icb):
    ctx = KeyContext(KEY)
    reference = Cipher(algorithms.AES(KEY), modes.CTR(icb)).encryptor().update(data)
    assert ctr_xcrypt(ctx, icb, data) == reference
    assert ctr_xcrypt(ctx, icb, reference) == data


def test_ccm_round_trip_and_tag():
    nonce = bytes(13)
    sealed = ccm_encrypt(KEY, nonce, b"records", b"aad")
    assert ccm_decrypt(KEY, nonce, sealed, b"aad") == b"records"
    assert ccm_decrypt(KEY, nonce, sealed, b"aae") is None


def test_des_vector():
    item = vector("wmbusmeters-actislink-DES-mode2")
    frame = bytes.fromhex(item["telegram"])
    plain = des_cbc_decrypt(bytes.fromhex(item["key"]), frame[15:31])
    assert plain.hex().upper() == item["plaintext_hex"].upper()
