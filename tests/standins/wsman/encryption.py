"""WinRM message encryption over HTTP: each body sealed by the authentication's security context.

With NTLM, Kerberos or Negotiate over HTTP, Windows sends and expects bodies of type
``multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"``:
a part naming the original content and its length, then an ``application/octet-stream`` part holding a
4-byte little-endian signature length, the signature and the sealed message ([MS-WSMV] 2.2.9.1).
"""

from __future__ import annotations

import re
import struct
from typing import Any

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = "Encrypted Boundary"
CONTENT_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="{BOUNDARY}"'
_LENGTH = re.compile(rb"OriginalContent:\s*type=[^;\r\n]*(?:;[^;\r\n]*)*?;Length=(\d+)", re.IGNORECASE)
_OCTETS = b"\tContent-Type: application/octet-stream\r\n"


class EncryptionError(Exception):
    """The body is not a sealed WinRM message this context can open."""


def is_encrypted(content_type: str) -> bool:
    return content_type.lower().startswith(("multipart/encrypted", "multipart/x-multi-encrypted"))


def boundary_of(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise EncryptionError(f"no boundary in {content_type!r}")
    return match.group(1)


def unwrap(context: Any, body: bytes, content_type: str) -> bytes:
    """Open a sealed body with the connection's security context (raises :class:`EncryptionError`)."""
    if f'protocol="{PROTOCOL}"'.lower() not in content_type.lower().replace(" ", ""):
        raise EncryptionError(f"unsupported encryption protocol in {content_type!r}")
    marker = b"--" + boundary_of(content_type).encode("ascii")
    parts = body.split(marker)
    # ['', <description part>, <octet-stream part>, '--\r\n']
    if len(parts) < 4 or parts[0].strip() or not parts[-1].startswith(b"--"):
        raise EncryptionError("the multipart/encrypted body is not laid out as WinRM lays it out")
    length_match = _LENGTH.search(parts[1])
    if not length_match:
        raise EncryptionError("the encrypted body does not give the original length")
    length = int(length_match.group(1))
    sealed = parts[2]
    if sealed.startswith(b"\r\n"):
        sealed = sealed[2:]
    if not sealed.startswith(_OCTETS):
        raise EncryptionError("the sealed part is not application/octet-stream")
    sealed = sealed[len(_OCTETS) :]
    if len(sealed) < 4:
        raise EncryptionError("the sealed part is truncated")
    (signature_length,) = struct.unpack("<I", sealed[:4])
    signature = sealed[4 : 4 + signature_length]
    data = sealed[4 + signature_length :]
    try:
        plain = bytes(context.unwrap_winrm(signature, data))
    except Exception as problem:
        raise EncryptionError(
            f"the message does not decrypt with this connection's context: {problem}"
        ) from None
    if len(plain) != length:
        raise EncryptionError(f"decrypted {len(plain)} bytes, the header said {length}")
    return plain


def wrap(context: Any, message: bytes) -> bytes:
    """Seal ``message`` for the client (the answer's Content-Type is :data:`CONTENT_TYPE`)."""
    signature, data, padding = context.wrap_winrm(message)
    head = (
        f"--{BOUNDARY}\r\n"
        f"\tContent-Type: {PROTOCOL}\r\n"
        f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len(message) + padding}\r\n"
        f"--{BOUNDARY}\r\n"
    ).encode("ascii")
    return (
        head + _OCTETS + struct.pack("<I", len(signature)) + signature + data + f"--{BOUNDARY}--\r\n".encode()
    )
