"""Windows DPAPI for SecureStrings: what PowerShell's local CLIXML holds on Windows (ctypes; no-op elsewhere)."""

from __future__ import annotations

from typing import Any, ClassVar


def protect(data: bytes) -> bytes:  # pragma: no cover - needs Windows
    """Encrypt ``data`` for the current user, as ``ConvertFrom-SecureString`` does."""
    return _call("CryptProtectData", data, "DPAPI could not protect the SecureString")


def unprotect(blob: bytes) -> bytes:  # pragma: no cover - needs Windows
    """Decrypt a blob protected for the current user."""
    return _call(
        "CryptUnprotectData",
        blob,
        "DPAPI could not decrypt the SecureString (another user or machine wrote it?)",
    )


def _call(function: str, data: bytes, failure: str) -> bytes:  # pragma: no cover - needs Windows
    import ctypes
    from ctypes import wintypes

    class _Blob(ctypes.Structure):
        _fields_: ClassVar[list[tuple[str, Any]]] = [
            ("cbData", wintypes.DWORD),
            ("pbData", ctypes.POINTER(ctypes.c_char)),
        ]

    buffer = ctypes.create_string_buffer(data, len(data))
    blob_in = _Blob(len(data), ctypes.cast(buffer, ctypes.POINTER(ctypes.c_char)))
    blob_out = _Blob()
    windll: Any = getattr(ctypes, "windll")  # noqa: B009 - only exists on Windows
    if not getattr(windll.crypt32, function)(
        ctypes.byref(blob_in), None, None, None, None, 0, ctypes.byref(blob_out)
    ):
        raise OSError(failure)
    try:
        return ctypes.string_at(blob_out.pbData, blob_out.cbData)
    finally:
        windll.kernel32.LocalFree(blob_out.pbData)
