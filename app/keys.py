"""The service master key and the per-tenant keys derived from it.

Tokens and client secrets are stored only as HMAC-SHA-256 under a tenant key;
``client_secret_jwt`` secrets, which must be recovered, are sealed with AES-GCM.
Every derived key is bound to the tenant id and the tenant's random salt, so one token
string registered in two tenants (or in a re-created tenant) maps to unrelated records.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import ConfigError

MASTER_KEY_ENV = "REVOCATION_MASTER_KEY"
MASTER_KEY_FILE = "master-key"
MASTER_KEY_BYTES = 32


def _decode_key(text: str, source: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, _b64url):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) >= MASTER_KEY_BYTES:
            return raw
    raise ConfigError(source, MASTER_KEY_ENV, "must be at least 32 bytes, hex or base64url")


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 holding ``text``; never overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def load_master_key(data_dir: Path) -> bytes:
    """From ``REVOCATION_MASTER_KEY``, else ``<data-dir>/master-key`` (generated once)."""
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        return _decode_key(env, "environment")
    path = data_dir / MASTER_KEY_FILE
    if not path.exists():
        # Another worker may create it first.
        with contextlib.suppress(FileExistsError):
            write_secret_file(path, secrets.token_hex(MASTER_KEY_BYTES))
    return _decode_key(path.read_text(), str(path))


class KeyRing:
    """Derives and caches the keys of the service and of each tenant."""

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key
        self._admin_key = self._derive(b"", "admin-keys")

    def _derive(self, salt: bytes, purpose: str, tenant_id: str = "") -> bytes:
        info = f"revocation-service/v1/{purpose}/{tenant_id}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(
            self._master
        )

    @lru_cache(maxsize=4096)  # noqa: B019 - one KeyRing per process; keys are tiny
    def tenant_key(self, tenant_id: str, salt: bytes, purpose: str) -> bytes:
        return self._derive(salt, purpose, tenant_id)

    def token_hash(self, tenant_id: str, salt: bytes, token: str) -> bytes:
        key = self.tenant_key(tenant_id, salt, "token-hash")
        return hmac.digest(key, token.encode(), "sha256")

    def secret_hash(self, tenant_id: str, salt: bytes, secret: str) -> bytes:
        key = self.tenant_key(tenant_id, salt, "client-secret-hash")
        return hmac.digest(key, secret.encode(), "sha256")

    def seal_secret(self, tenant_id: str, salt: bytes, secret: str, client_id: str) -> bytes:
        key = self.tenant_key(tenant_id, salt, "client-secret-seal")
        nonce = os.urandom(12)
        return nonce + AESGCM(key).encrypt(nonce, secret.encode(), client_id.encode())

    def open_secret(self, tenant_id: str, salt: bytes, sealed: bytes, client_id: str) -> str:
        key = self.tenant_key(tenant_id, salt, "client-secret-seal")
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], client_id.encode()).decode()

    def admin_key_hash(self, key: str) -> bytes:
        return hmac.digest(self._admin_key, key.encode(), "sha256")


def equal(a: bytes | str, b: bytes | str) -> bool:
    """Constant-time comparison."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def short_hash(token: str) -> str:
    """A short, non-reversible fingerprint for logs (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]
