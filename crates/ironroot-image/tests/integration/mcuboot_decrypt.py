"""Independent oracle for MCUboot image decryption, built on Python `cryptography` only.

usage: python3 mcuboot_decrypt.py DEVICE_KEY.pem ENCRYPTED.bin OUT.bin

Reads the ENC_EC256 / ENC_X25519 / ENC_X25519_SHA512 TLV, unwraps the AES key (ECDH,
HKDF(info="MCUBoot_ECIES_v1"), HMAC check, AES-CTR) and writes the image with its payload
decrypted in place. Shares no code with ironroot.
"""
import struct
import sys

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

key_path, img_path, out_path = sys.argv[1:4]
b = bytearray(open(img_path, "rb").read())
magic, _load, hdr_size, prot_size, img_size, flags = struct.unpack("<IIHHII", b[:20])
assert magic == 0x96F3B83D, "not an MCUboot image"
assert flags & 0xC, "image is not encrypted"
keylen = 32 if flags & 0x8 else 16
off = hdr_size + img_size + prot_size
tlv_magic, tot = struct.unpack("<HH", b[off : off + 4])
assert tlv_magic == 0x6907
end = off + tot
off += 4
enc = None
while off < end:
    kind, length = struct.unpack("<HH", b[off : off + 4])
    off += 4
    if kind in (0x32, 0x33, 0x34):
        enc = (kind, bytes(b[off : off + length]))
    off += length
assert enc is not None, "no encryption TLV"
kind, tlv = enc
priv = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
if kind == 0x32:
    epk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), tlv[:65])
    shared = priv.exchange(ec.ECDH(), epk)
    rest = tlv[65:]
    h = hashes.SHA256()
else:
    epk = x25519.X25519PublicKey.from_public_bytes(tlv[:32])
    shared = priv.exchange(epk)
    rest = tlv[32:]
    h = hashes.SHA256() if kind == 0x33 else hashes.SHA512()
maclen = h.digest_size
okm = HKDF(algorithm=h, length=keylen + maclen, salt=None, info=b"MCUBoot_ECIES_v1").derive(shared)
tag, wrapped = rest[:maclen], rest[maclen:]
assert len(wrapped) == keylen
mac = hmac.HMAC(okm[keylen:], h)
mac.update(wrapped)
mac.verify(tag)
d = Cipher(algorithms.AES(okm[:keylen]), modes.CTR(bytes(16))).decryptor()
aes_key = d.update(wrapped) + d.finalize()
d = Cipher(algorithms.AES(aes_key), modes.CTR(bytes(16))).decryptor()
payload = bytes(b[hdr_size : hdr_size + img_size])
b[hdr_size : hdr_size + img_size] = d.update(payload) + d.finalize()
open(out_path, "wb").write(b)
