"""Certificates made at test time with the machine's ``openssl``: a CA, a broker certificate, client certificates.

Everything is PEM, which both sides read: the broker (``ssl.keystore.type=PEM``: a PKCS#8 key followed by its
certificate in one file) and librdkafka (``ssl.ca.location``, ``ssl.certificate.location``, ``ssl.key.location``).
Keys are EC P-256 (quick to make); certificates live for two days.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CertificateAuthority", "Identity"]

_DAYS = "2"


@dataclass(frozen=True)
class Identity:
    """A key and the certificate a CA signed for it. ``bundle`` holds both (the broker's PEM keystore)."""

    name: str
    key: Path
    certificate: Path
    bundle: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is needed to make the test certificates")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


class CertificateAuthority:
    """A throw-away CA in ``directory`` that signs server and client certificates."""

    def __init__(self, directory: Path, name: str = "neotool-test-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = directory / f"{name}.key"
        self.certificate = directory / f"{name}.pem"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(self.key), "-out", str(self.certificate), "-days", _DAYS, "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip

    def issue(self, name: str, *, hosts: tuple[str, ...] = (), key_password: str | None = None) -> Identity:
        """A certificate for ``CN=<name>``; ``hosts`` become its subject alternative names (a server's)."""
        key = self.directory / f"{name}.key"
        request = self.directory / f"{name}.csr"
        certificate = self.directory / f"{name}.pem"
        extensions = self.directory / f"{name}.ext"
        _openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key), cwd=self.directory
        )
        _openssl("req", "-new", "-key", str(key), "-out", str(request), "-subj", f"/CN={name}", cwd=self.directory)
        lines = ["basicConstraints=CA:FALSE", "extendedKeyUsage=serverAuth,clientAuth"]
        if hosts:
            names = [f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts]
            lines.append("subjectAltName=" + ",".join(names))
        extensions.write_text("\n".join(lines) + "\n")
        _openssl(
            "x509", "-req", "-in", str(request), "-CA", str(self.certificate), "-CAkey", str(self.key),
            "-CAcreateserial", "-out", str(certificate), "-days", _DAYS, "-extfile", str(extensions),
            cwd=self.directory,
        )  # fmt: skip
        if key_password is not None:
            encrypted = self.directory / f"{name}.enc.key"
            _openssl(
                "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(key), "-out", str(encrypted),
                "-passout", f"pass:{key_password}", cwd=self.directory,
            )  # fmt: skip
            key = encrypted
        else:
            pkcs8 = self.directory / f"{name}.p8.key"
            _openssl("pkcs8", "-topk8", "-nocrypt", "-in", str(key), "-out", str(pkcs8), cwd=self.directory)
            key = pkcs8
        bundle = self.directory / f"{name}.bundle.pem"
        bundle.write_text(key.read_text() + certificate.read_text())
        return Identity(name, key, certificate, bundle)
