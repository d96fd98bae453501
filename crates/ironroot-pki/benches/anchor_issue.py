"""Anchor for the issuance benchmark: the same CSR-to-certificate step in Python `cryptography`
(OpenSSL underneath). Usage: anchor_issue.py CSR.pem CA.pem CA-KEY.pem N  -> prints certs/s."""
import datetime
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

csr_pem = open(sys.argv[1], "rb").read()
ca_cert = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
ca_key = serialization.load_pem_private_key(open(sys.argv[3], "rb").read(), None)
n = int(sys.argv[4])
aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
start = time.perf_counter()
for i in range(n):
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-device")]))
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("urn:ironroot:device:bench-device")]),
            critical=False,
        )
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert.public_bytes(serialization.Encoding.DER)
elapsed = time.perf_counter() - start
print(f"{n / elapsed:.0f}")
