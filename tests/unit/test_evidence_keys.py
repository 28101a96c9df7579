"""sld.evidence.keys against OpenSSL (through cryptography): the same keys load, the same signatures
verify, and every corruption of a signature, digest or key is refused by both."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.errors import ConfigError
from sld.evidence.keys import EcKey, RsaKey, key_from_der, load_pem

RSA_KEY = rsa.generate_private_key(65537, 2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def der(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def openssl_accepts_rsa(digest: bytes, sig: bytes) -> bool:
    try:
        RSA_KEY.public_key().verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def openssl_accepts_ecdsa(digest: bytes, r: int, s: int) -> bool:
    try:
        EC_KEY.public_key().verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True


def test_keys_load_as_openssl_reads_them() -> None:
    key = key_from_der(der(RSA_KEY))
    assert isinstance(key, RsaKey) and (key.n, key.e) == (RSA_KEY.public_key().public_numbers().n, 65537)
    point = key_from_der(der(EC_KEY))
    numbers = EC_KEY.public_key().public_numbers()
    assert isinstance(point, EcKey) and (point.x, point.y) == (numbers.x, numbers.y)


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=200), flip=st.integers(0, 255 * 8))
def test_rsa_pkcs1v15_agrees_with_openssl(message: bytes, flip: int) -> None:
    key = key_from_der(der(RSA_KEY))
    assert isinstance(key, RsaKey)
    sig = RSA_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    digest = hashlib.sha256(message).digest()
    assert key.verify_pkcs1v15_sha256(digest, sig) and openssl_accepts_rsa(digest, sig)
    bad = bytearray(sig)
    bad[flip // 8] ^= 1 << (flip % 8)
    assert not key.verify_pkcs1v15_sha256(digest, bytes(bad)) and not openssl_accepts_rsa(digest, bytes(bad))
    other = hashlib.sha256(message + b"x").digest()
    assert not key.verify_pkcs1v15_sha256(other, sig)
    assert not key.verify_pkcs1v15_sha256(digest, sig[1:]) and not key.verify_pkcs1v15_sha256(digest, b"\0" + sig)


def test_rsa_signature_at_or_above_the_modulus_is_refused() -> None:
    """s and s + n open to the same encoding; RFC 8017 §8.2.2 step 2a refuses the second (s >= n)."""
    key = key_from_der(der(RSA_KEY))
    assert isinstance(key, RsaKey)
    for i in range(200):
        message = b"m%d" % i
        s = int.from_bytes(RSA_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256()), "big")
        if s + key.n < 1 << 2048:
            break
    digest = hashlib.sha256(message).digest()
    assert key.verify_pkcs1v15_sha256(digest, s.to_bytes(256, "big"))
    assert not key.verify_pkcs1v15_sha256(digest, (s + key.n).to_bytes(256, "big"))
    assert not openssl_accepts_rsa(digest, (s + key.n).to_bytes(256, "big"))
    assert not key.verify_pkcs1v15_sha256(digest, key.n.to_bytes(256, "big"))


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=200), delta=st.integers(1, 2**16))
def test_ecdsa_p256_agrees_with_openssl(message: bytes, delta: int) -> None:
    key = key_from_der(der(EC_KEY))
    assert isinstance(key, EcKey)
    r, s = utils.decode_dss_signature(EC_KEY.sign(message, ec.ECDSA(hashes.SHA256())))
    digest = hashlib.sha256(message).digest()
    assert key.verify_ecdsa_sha256(digest, r, s) and openssl_accepts_ecdsa(digest, r, s)
    for bad_r, bad_s in ((r + delta, s), (r, s + delta), (r, key_n() - s + delta)):
        assert key.verify_ecdsa_sha256(digest, bad_r, bad_s) == openssl_accepts_ecdsa(digest, bad_r, bad_s)
    assert not key.verify_ecdsa_sha256(hashlib.sha256(message + b"x").digest(), r, s)


def key_n() -> int:
    from sld.evidence.keys import N

    return N


def test_ecdsa_out_of_range_values_are_refused() -> None:
    key = key_from_der(der(EC_KEY))
    assert isinstance(key, EcKey)
    digest = hashlib.sha256(b"m").digest()
    r, s = utils.decode_dss_signature(EC_KEY.sign(b"m", ec.ECDSA(hashes.SHA256())))
    assert key.verify_ecdsa_sha256(digest, r, key_n() - s)  # (r, n - s) is the other valid signature
    for bad in ((0, s), (r, 0), (r + key_n(), s), (r, s + key_n())):
        assert not key.verify_ecdsa_sha256(digest, *bad)


def test_a_point_off_the_curve_is_no_key() -> None:
    data = bytearray(der(EC_KEY))
    data[-1] ^= 1
    with pytest.raises(ValueError, match="not on NIST P-256"):
        key_from_der(bytes(data))


@pytest.mark.parametrize(("text", "message"), [
    ("hello", "not a PEM file with a PUBLIC KEY block"),
    ("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "not a usable public key"),
    ("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n", "not a usable public key"),
])
def test_bad_pem_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ak.pem"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_pem(str(path))
    assert err.value.key == "--ak" and err.value.exit_code == 2


def test_other_curves_and_algorithms_are_named(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="only the NIST P-256 curve"):
        key_from_der(der(p384))
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="neither rsaEncryption nor id-ecPublicKey"):
        key_from_der(ed)
