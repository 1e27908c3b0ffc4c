"""A real SMTP server on loopback for abreport's delivery tests (aiosmtpd).

Stores every accepted message as `<n>.eml` (the bytes as received) plus `<n>.json` (the
envelope: sender and recipients) in the folder given with --store, then prints
`READY <port>` on stdout once it accepts connections. Runs until killed.

    python smtp_server.py --store DIR [--port 0] [--tls-dir DIR [--implicit-tls]] [--auth USER:PASS] [--reject-login]

--tls-dir makes a test CA and a certificate for localhost/127.0.0.1 in that folder
(`ca.pem` is the CA a client must trust) and offers STARTTLS, or with --implicit-tls speaks
TLS from the first byte (SMTPS); AUTH then requires TLS.
--auth requires AUTH with that login; --reject-login answers every AUTH with 535.
"""

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def make_certificates(folder):
    """A CA and a server certificate signed by it, both valid for a day; returns the paths of
    the server's certificate chain and key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(folder, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    lifetime = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "abreport test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(lifetime[0])
        .not_valid_after(lifetime[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(lifetime[0])
        .not_valid_after(lifetime[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    with open(os.path.join(folder, "ca.pem"), "wb") as f:
        f.write(ca_cert.public_bytes(pem))
    chain = os.path.join(folder, "server.pem")
    with open(chain, "wb") as f:
        f.write(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_path = os.path.join(folder, "server.key")
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return chain, key_path


class Store:
    """aiosmtpd handler: every message to `<n>.eml` + `<n>.json`."""

    def __init__(self, folder):
        self.folder = folder
        self.count = 0
        os.makedirs(folder, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.folder, f"{self.count:03d}")
        # Written under a temporary name and renamed, so a test never reads half a message.
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 OK stored"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-dir")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth")
    parser.add_argument("--reject-login", action="store_true")
    args = parser.parse_args()

    tls_context = None
    if args.tls_dir:
        chain, key = make_certificates(args.tls_dir)
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(chain, key)

    login = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        login = (user.encode(), password.encode())

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            not args.reject_login
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login, auth_data.password) == login
        )
        # handled=False lets aiosmtpd answer a failure with its standard 535.
        return AuthResult(success=ok, handled=False)

    handler = Store(args.store)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    starttls = tls_context is not None and not args.implicit_tls

    def factory():
        return SMTP(
            handler,
            hostname="abreport-test-smtp",
            tls_context=tls_context if starttls else None,
            require_starttls=starttls,
            authenticator=authenticator if (login or args.reject_login) else None,
            auth_required=bool(login or args.reject_login),
            # With implicit TLS the whole session is encrypted already.
            auth_require_tls=starttls,
            loop=loop,
        )

    implicit = tls_context if args.implicit_tls else None
    server = loop.run_until_complete(
        loop.create_server(factory, host="127.0.0.1", port=args.port, ssl=implicit)
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())
