"""The AK's public key and the two signatures an AK makes over a quote, verified with integers alone.

A verifier's whole job on a quote is two public-key operations, so this module does them itself
rather than import ``cryptography`` (whose import alone costs three times a cold ``sld verify
--evidence``). Nothing here is secret, so nothing needs to be constant-time; what must hold is that
only a correct signature verifies, and tests/unit/test_evidence_keys.py holds both functions to
OpenSSL (through ``cryptography``) on random keys, messages and corrupted signatures.

- RSASSA-PKCS1-v1_5 (RFC 8017 §8.2.2): the signature is opened with the public exponent and compared
  with the whole encoding EMSA-PKCS1-v1_5 builds from the digest (§9.2), never parsed, so there is no
  padding or DigestInfo parser to fool.
- ECDSA over NIST P-256 (SEC 1 v2 §4.1.4; FIPS 186-5 §6.4.2; curve from SP 800-186 §3.2.1.3).

Keys come as PEM SubjectPublicKeyInfo (RFC 5280 §4.1.2.7; RSA per RFC 8017 App. A.1.1 / RFC 3279,
EC per RFC 5480), what ``tpm2_readpublic -f pem`` and ``openssl pkey -pubout`` write.
"""

from __future__ import annotations

import binascii

from sld.errors import ConfigError

# SHA-256's DigestInfo prefix (RFC 8017 §9.2 note 1)
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
PRIME256V1 = bytes.fromhex("2a8648ce3d030107")  # 1.2.840.10045.3.1.7

# NIST P-256: y^2 = x^3 - 3x + b over GF(p), base point G of prime order n (cofactor 1)
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
     0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


class RsaKey:
    """An RSA public key (n, e)."""

    __slots__ = ("n", "e")
    kind = "rsa"

    def __init__(self, n: int, e: int) -> None:
        self.n = n
        self.e = e

    def verify_pkcs1v15_sha256(self, digest: bytes, signature: bytes) -> bool:
        """RSASSA-PKCS1-V1_5-VERIFY (RFC 8017 §8.2.2) of a SHA-256 digest."""
        k = (self.n.bit_length() + 7) // 8
        s = int.from_bytes(signature, "big")
        if len(signature) != k or s >= self.n or len(digest) != 32:
            return False
        encoded = pow(s, self.e, self.n).to_bytes(k, "big")
        t = SHA256_DIGEST_INFO + digest
        return k >= len(t) + 11 and encoded == b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t


class EcKey:
    """A NIST P-256 public point Q = (x, y), checked to lie on the curve when it is made."""

    __slots__ = ("x", "y")
    kind = "ecc"

    def __init__(self, x: int, y: int) -> None:
        if not (0 <= x < P and 0 <= y < P) or (y * y - x * x * x + 3 * x - B) % P:
            raise ValueError("the point is not on NIST P-256")
        self.x = x
        self.y = y

    def verify_ecdsa_sha256(self, digest: bytes, r: int, s: int) -> bool:
        """ECDSA verification (SEC 1 v2 §4.1.4) of a SHA-256 digest (its 256 bits are e, step 3)."""
        if not (0 < r < N and 0 < s < N) or len(digest) != 32:
            return False
        w = pow(s, -1, N)
        e = int.from_bytes(digest, "big")
        point = _affine(_linear(e * w % N, G, r * w % N, (self.x, self.y)))
        return point is not None and point[0] % N == r


Point = tuple[int, int] | None  # affine; None is the point at infinity
_Jacobian = tuple[int, int, int]  # (X, Y, Z) for x = X/Z^2, y = Y/Z^3; Z = 0 is infinity


def _double(p: _Jacobian) -> _Jacobian:
    x, y, z = p
    if not y or not z:
        return (1, 1, 0)
    yy = y * y % P
    s = 4 * x * yy % P
    zz = z * z % P
    m = 3 * (x - zz) * (x + zz) % P  # a = -3
    x3 = (m * m - 2 * s) % P
    return x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P


def _add_jacobian(p: _Jacobian, q: _Jacobian) -> _Jacobian:
    if not p[2]:
        return q
    if not q[2]:
        return p
    z1z1, z2z2 = p[2] * p[2] % P, q[2] * q[2] % P
    u1, u2 = p[0] * z2z2 % P, q[0] * z1z1 % P
    s1, s2 = p[1] * q[2] * z2z2 % P, q[1] * p[2] * z1z1 % P
    h, r = (u2 - u1) % P, (s2 - s1) % P
    if not h:
        return _double(p) if not r else (1, 1, 0)
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    return x3, (r * (v - x3) - s1 * hhh) % P, h * p[2] * q[2] % P


def _affine(p: _Jacobian) -> Point:
    if not p[2]:
        return None
    zinv = pow(p[2], -1, P)
    zz = zinv * zinv % P
    return p[0] * zz % P, p[1] * zz * zinv % P


def _linear(k1: int, p1: tuple[int, int], k2: int, p2: tuple[int, int]) -> _Jacobian:
    """k1*P1 + k2*P2 in one pass of doublings over both scalars' bits (Shamir's trick)."""
    j1, j2 = (p1[0], p1[1], 1), (p2[0], p2[1], 1)
    addends = {1: j1, 2: j2, 3: _add_jacobian(j1, j2)}
    result: _Jacobian = (1, 1, 0)
    for bit in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        result = _double(result)
        pick = (k1 >> bit & 1) | (k2 >> bit & 1) << 1
        if pick:
            result = _add_jacobian(result, addends[pick])
    return result


# ---- PEM / DER ----------------------------------------------------------------------------------


def _tlv(der: bytes, at: int, tag: int, what: str) -> tuple[bytes, int]:
    """One DER element of ``tag`` at ``at``: its contents and the offset after it (X.690 §8.1)."""
    if at + 2 > len(der) or der[at] != tag:
        raise ValueError(f"{what}: expected DER tag 0x{tag:02x} at offset {at}")
    length, at = der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or at + count > len(der):
            raise ValueError(f"{what}: bad DER length at offset {at - 1}")
        length, at = int.from_bytes(der[at : at + count], "big"), at + count
    if at + length > len(der):
        raise ValueError(f"{what}: {length} bytes of contents run past the end")
    return der[at : at + length], at + length


def _integer(der: bytes, at: int, what: str) -> tuple[int, int]:
    body, end = _tlv(der, at, 0x02, what)
    if not body or body[0] & 0x80:
        raise ValueError(f"{what}: not a positive INTEGER")
    return int.from_bytes(body, "big"), end


def key_from_der(der: bytes) -> RsaKey | EcKey:
    """SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }."""
    spki, end = _tlv(der, 0, 0x30, "SubjectPublicKeyInfo")
    if end != len(der):
        raise ValueError("bytes after the SubjectPublicKeyInfo")
    algorithm, at = _tlv(spki, 0, 0x30, "algorithm")
    oid, after_oid = _tlv(algorithm, 0, 0x06, "algorithm.algorithm")
    bits, _ = _tlv(spki, at, 0x03, "subjectPublicKey")
    if not bits or bits[0]:
        raise ValueError("subjectPublicKey: unused bits in the BIT STRING")
    key = bits[1:]
    if oid == RSA_ENCRYPTION:
        rsa, _ = _tlv(key, 0, 0x30, "RSAPublicKey")
        n, at = _integer(rsa, 0, "RSAPublicKey.modulus")
        e, _ = _integer(rsa, at, "RSAPublicKey.publicExponent")
        return RsaKey(n, e)
    if oid == EC_PUBLIC_KEY:
        curve, _ = _tlv(algorithm, after_oid, 0x06, "ECParameters.namedCurve")
        if curve != PRIME256V1:
            raise ValueError("only the NIST P-256 curve (prime256v1) is supported")
        if len(key) != 65 or key[0] != 4:
            raise ValueError("the EC point is not an uncompressed P-256 point")
        return EcKey(int.from_bytes(key[1:33], "big"), int.from_bytes(key[33:], "big"))
    raise ValueError(f"key algorithm {oid.hex()} is neither rsaEncryption nor id-ecPublicKey")


def load_pem(path: str) -> RsaKey | EcKey:
    """The AK a verifier trusts, from a PEM ``PUBLIC KEY`` file; any defect is a usage error naming the file."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
        body = text.split("-----BEGIN PUBLIC KEY-----", 1)[1].split("-----END PUBLIC KEY-----", 1)[0]
        return key_from_der(binascii.a2b_base64("".join(body.split()), strict_mode=True))
    except OSError as err:
        raise ConfigError(f"cannot read the AK: {err.strerror}", key="--ak", file=path) from None
    except (UnicodeDecodeError, IndexError):
        raise ConfigError("not a PEM file with a PUBLIC KEY block", key="--ak", file=path) from None
    except (binascii.Error, ValueError) as err:
        raise ConfigError(f"not a usable public key: {err}", key="--ak", file=path) from None
