"""The service's master keys and the per-tenant keys derived from them.

Tokens and client secrets are stored only as HMAC-SHA-256 under a tenant key;
``client_secret_jwt`` secrets, which must be recovered, are sealed with AES-GCM.
Every derived key is bound to the tenant id and the tenant's random salt, so one token
string registered in two tenants (or in a re-created tenant) maps to unrelated records.

Master keys have versions, so that the master key can be rotated (``app.admin.key_rotation``)
without losing what was hashed under the old one: a stored hash cannot be made again
without the token, so an old key stays in the ring, for lookups only, until nothing
hashed with it is left. Writes use the ``current`` key; lookups try the current key, then
a ``staged`` one (known everywhere before it becomes current), then the ``retired`` ones.

Version 1 is the key of a single-key data directory (``<data-dir>/master-key`` or
``REVOCATION_MASTER_KEY``), and its hashes are the bare 32-byte HMAC, as before versions
existed. Under a version N > 1 a hash is N in two bytes followed by the HMAC (34 bytes),
and a seal is ``rk``, N in two bytes, the nonce and the ciphertext. So a record tells
which key made it, and ``keys retire`` can count what a key still holds.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import ConfigError

log = structlog.get_logger("revocation.keys")

MASTER_KEY_ENV = "REVOCATION_MASTER_KEY"
MASTER_KEYS_FILE_ENV = "REVOCATION_MASTER_KEYS_FILE"
MASTER_KEY_FILE = "master-key"
"""The single-key layout: one hex key, version 1."""
KEY_RING_FILE = "master-keys.json"
"""The key ring, once the master key has been rotated."""
MASTER_KEY_BYTES = 32
HMAC_BYTES = 32
LEGACY_VERSION = 1
MAX_VERSION = 0xFFFF
SEAL_TAG = b"rk"
NONCE_BYTES = 12
RELOAD_INTERVAL_S = 1.0
"""How often a process looks at the ring file for a rotation made by another process."""


class KeyState(StrEnum):
    CURRENT = "current"
    """Hashes and seals everything written, and is tried first."""
    STAGED = "staged"
    """Tried for lookups, written with by no one yet: the next rotation makes it current.
    Staging first lets every instance know a key before any instance writes with it."""
    RETIRED = "retired"
    """Tried for lookups after the current key, until ``keys retire`` drops it."""


_LOOKUP_ORDER = {KeyState.CURRENT: 0, KeyState.STAGED: 1, KeyState.RETIRED: 2}


@dataclass(frozen=True, slots=True)
class MasterKey:
    id: int
    secret: bytes = field(repr=False)
    state: KeyState
    created_at: int | None = None
    retired_at: int | None = None


def decode_key(text: str, source: str, name: str = MASTER_KEY_ENV) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, _b64url):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) >= MASTER_KEY_BYTES:
            return raw
    raise ConfigError(source, name, "must be at least 32 bytes, hex or base64url")


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_master_key(key_id: int, state: KeyState, now: int) -> MasterKey:
    return MasterKey(key_id, secrets.token_bytes(MASTER_KEY_BYTES), state, created_at=now)


def write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 holding ``text``; never overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


# --- the ring file ------------------------------------------------------------------------


def ring_path(data_dir: Path) -> Path:
    """``REVOCATION_MASTER_KEYS_FILE``, else ``<data-dir>/master-keys.json``."""
    if named := os.environ.get(MASTER_KEYS_FILE_ENV):
        return Path(named)
    return data_dir / KEY_RING_FILE


def check_ring(keys: Iterable[MasterKey], source: str) -> tuple[MasterKey, ...]:
    """The keys in lookup order (current, staged, retired newest first), or ``ConfigError``
    unless ids are unique versions, one key is current, at most one staged."""
    ordered = tuple(sorted(keys, key=lambda k: (_LOOKUP_ORDER[k.state], -k.id)))
    ids = [k.id for k in ordered]
    if len(set(ids)) != len(ids) or not all(1 <= i <= MAX_VERSION for i in ids):
        raise ConfigError(source, "keys[].id", f"must be distinct numbers 1 to {MAX_VERSION}")
    if [k.state for k in ordered].count(KeyState.CURRENT) != 1:
        raise ConfigError(source, "keys[].state", "exactly one key must be current")
    if [k.state for k in ordered].count(KeyState.STAGED) > 1:
        raise ConfigError(source, "keys[].state", "at most one key may be staged")
    if len({k.secret for k in ordered}) != len(ordered):
        raise ConfigError(source, "keys[].key", "the same key appears twice")
    return ordered


def parse_ring(text: str, source: str) -> tuple[MasterKey, ...]:
    try:
        document = json.loads(text)
        entries = document["keys"]
        keys = [
            MasterKey(
                id=_integer(entry["id"]),
                secret=decode_key(entry["key"], source, "keys[].key"),
                state=KeyState(entry["state"]),
                created_at=_optional_integer(entry.get("created_at")),
                retired_at=_optional_integer(entry.get("retired_at")),
            )
            for entry in entries
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(source, "keys", f"is not a key ring: {exc!r}") from None
    return check_ring(keys, source)


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"{value!r} is not an integer")
    return value


def _optional_integer(value: Any) -> int | None:
    return None if value is None else _integer(value)


def ring_json(keys: Sequence[MasterKey]) -> str:
    entries = []
    for k in keys:
        entry: dict[str, Any] = {"id": k.id, "state": k.state.value, "key": k.secret.hex()}
        entry["created_at"] = k.created_at
        if k.retired_at is not None:
            entry["retired_at"] = k.retired_at
        entries.append(entry)
    return json.dumps({"keys": entries}, indent=2) + "\n"


def write_ring(path: Path, keys: Sequence[MasterKey]) -> None:
    """Replace the ring file atomically (mode 0600, flushed to disk before and after)."""
    check_ring(keys, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(ring_json(keys))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _read_ring(path: Path) -> tuple[MasterKey, ...]:
    keys = parse_ring(path.read_text(), str(path))
    if (env := os.environ.get(MASTER_KEY_ENV)) and decode_key(env, "environment") not in {
        k.secret for k in keys
    }:
        raise ConfigError(
            "environment",
            MASTER_KEY_ENV,
            f"is not one of the keys of the ring {path} (retired from it? unset the variable)",
        )
    return keys


def has_master_key(data_dir: Path) -> bool:
    """Whether ``load_keys`` finds a key rather than generating one."""
    return bool(
        os.environ.get(MASTER_KEYS_FILE_ENV)
        or os.environ.get(MASTER_KEY_ENV)
        or ring_path(data_dir).exists()
        or (data_dir / MASTER_KEY_FILE).exists()
    )


def load_keys(data_dir: Path) -> tuple[MasterKey, ...]:
    """The ring file when there is one (``ring_path``); else ``REVOCATION_MASTER_KEY``,
    else ``<data-dir>/master-key`` (generated once) as version 1.

    With a ring, ``REVOCATION_MASTER_KEY`` may stay set, but must be one of its keys.
    """
    path = ring_path(data_dir)
    if path.exists():
        return _read_ring(path)
    if os.environ.get(MASTER_KEYS_FILE_ENV):
        raise ConfigError(str(path), MASTER_KEYS_FILE_ENV, "names no file")
    if env := os.environ.get(MASTER_KEY_ENV):
        return (MasterKey(LEGACY_VERSION, decode_key(env, "environment"), KeyState.CURRENT),)
    legacy = data_dir / MASTER_KEY_FILE
    if not legacy.exists():
        # Another worker may create it first.
        with contextlib.suppress(FileExistsError):
            write_secret_file(legacy, secrets.token_hex(MASTER_KEY_BYTES))
    secret = decode_key(legacy.read_text(), str(legacy))
    return (MasterKey(LEGACY_VERSION, secret, KeyState.CURRENT),)


def _file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


# --- tags ---------------------------------------------------------------------------------


def hash_version(stored: bytes) -> int | None:
    """The key version a stored hash was made with (None: not a hash of ours)."""
    if len(stored) == HMAC_BYTES:
        return LEGACY_VERSION
    if len(stored) == HMAC_BYTES + 2:
        return int.from_bytes(stored[:2], "big")
    return None


def hash_layout(version: int) -> tuple[int, bytes]:
    """The length and leading bytes of every hash made under ``version``."""
    if version == LEGACY_VERSION:
        return HMAC_BYTES, b""
    return HMAC_BYTES + 2, version.to_bytes(2, "big")


def _seal_candidates(sealed: bytes) -> list[tuple[int, bytes]]:
    """(version, nonce + ciphertext) readings of a seal: tagged, and version 1 untagged
    (whose random nonce may begin like a tag; AES-GCM tells the right reading)."""
    readings = [(LEGACY_VERSION, sealed)]
    if sealed[: len(SEAL_TAG)] == SEAL_TAG and len(sealed) > len(SEAL_TAG) + 2 + NONCE_BYTES:
        version = int.from_bytes(sealed[len(SEAL_TAG) : len(SEAL_TAG) + 2], "big")
        if version != LEGACY_VERSION:
            readings.insert(0, (version, sealed[len(SEAL_TAG) + 2 :]))
    return readings


# --- derivation under one master key -------------------------------------------------------


class _Version:
    """The keys derived from one master key, and what it writes."""

    def __init__(self, key: MasterKey) -> None:
        self.key = key
        self.hash_tag = hash_layout(key.id)[1]
        self.seal_tag = SEAL_TAG + self.hash_tag if self.hash_tag else b""
        self.admin_key = self._derive(b"", "admin-keys")
        self.tenant_key: Callable[[str, bytes, str], bytes] = lru_cache(maxsize=4096)(
            self._tenant_key
        )
        self._keyed: Callable[[str, bytes, str], hmac.HMAC] = lru_cache(maxsize=4096)(
            self._keyed_hmac
        )

    def _derive(self, salt: bytes, purpose: str, tenant_id: str = "") -> bytes:
        info = f"revocation-service/v1/{purpose}/{tenant_id}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(
            self.key.secret
        )

    def _tenant_key(self, tenant_id: str, salt: bytes, purpose: str) -> bytes:
        return self._derive(salt, purpose, tenant_id)

    def _keyed_hmac(self, tenant_id: str, salt: bytes, purpose: str) -> hmac.HMAC:
        return hmac.new(self.tenant_key(tenant_id, salt, purpose), digestmod=hashlib.sha256)

    def mac(self, tenant_id: str, salt: bytes, purpose: str, value: str) -> bytes:
        # A copy of an HMAC already keyed: ``hmac.digest`` looked the digest up in
        # OpenSSL again on every call (two calls a request, measured in PERFORMANCE.md).
        keyed = self._keyed(tenant_id, salt, purpose).copy()
        keyed.update(value.encode())
        return self.hash_tag + keyed.digest()

    def seal(self, tenant_id: str, salt: bytes, secret: str, client_id: str) -> bytes:
        key = self.tenant_key(tenant_id, salt, "client-secret-seal")
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + AESGCM(key).encrypt(nonce, secret.encode(), client_id.encode())
        return self.seal_tag + sealed

    def open(self, tenant_id: str, salt: bytes, body: bytes, client_id: str) -> str:
        key = self.tenant_key(tenant_id, salt, "client-secret-seal")
        plain = AESGCM(key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], client_id.encode())
        return plain.decode()


class KeyRing:
    """Derives and caches the keys of the service and of each tenant, under every master
    key of the ring; follows the ring file when another process rotates it."""

    def __init__(self, keys: Sequence[MasterKey] | bytes, *, source: Path | None = None) -> None:
        """``keys``: the ring, or one master key (version 1). ``source``: the ring file
        to follow (it may not exist yet)."""
        if isinstance(keys, bytes):
            keys = (MasterKey(LEGACY_VERSION, keys, KeyState.CURRENT),)
        self._source = source
        self._stamp = _file_stamp(source)
        self._checked = time.monotonic()
        self._versions: dict[int, _Version] = {}
        self._install(check_ring(keys, str(source or "master keys")))

    @classmethod
    def load(cls, data_dir: Path) -> KeyRing:
        return cls(load_keys(data_dir), source=ring_path(data_dir))

    def _install(self, keys: tuple[MasterKey, ...]) -> None:
        # Derived keys stay cached across a reload for a master key that stays.
        old = self._versions
        self._versions = {
            k.id: old[k.id] if k.id in old and old[k.id].key.secret == k.secret else _Version(k)
            for k in keys
        }
        for k in keys:
            self._versions[k.id].key = k
        self.keys = keys
        self._current = self._versions[keys[0].id]
        self._lookup = tuple(self._versions[k.id] for k in keys)

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def current(self) -> MasterKey:
        self.refresh()
        return self._current.key

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the ring if its file changed; looked at once a second at most, unless
        ``force``. True when the keys changed. A broken file is logged and ignored."""
        now = time.monotonic()
        if self._source is None or (not force and now - self._checked < RELOAD_INTERVAL_S):
            return False
        self._checked = now
        stamp = _file_stamp(self._source)
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            keys = _read_ring(self._source)
        except (ConfigError, OSError) as exc:
            log.error("master_keys_reload_failed", path=str(self._source), error=str(exc))
            return False
        if keys == self.keys:
            return False
        self._install(keys)
        log.info(
            "master_keys_reloaded",
            path=str(self._source),
            current=keys[0].id,
            lookup=[k.id for k in keys],
        )
        return True

    def reload(self) -> None:
        """Read the ring file now, if there is one (a key command just wrote it)."""
        if self._source is None or not self._source.exists():
            return
        self._stamp = _file_stamp(self._source)
        self._checked = time.monotonic()
        self._install(_read_ring(self._source))

    def _version(self, version: int | None) -> _Version | None:
        if version is None:
            return None
        found = self._versions.get(version)
        if found is None and self.refresh(force=True):
            found = self._versions.get(version)
        return found

    # --- tokens -----------------------------------------------------------------------

    def token_hash(self, tenant_id: str, salt: bytes, token: str) -> bytes:
        """The hash a token is registered under now (the current key)."""
        self.refresh()
        return self._current.mac(tenant_id, salt, "token-hash", token)

    def token_hashes(self, tenant_id: str, salt: bytes, token: str) -> tuple[bytes, ...]:
        """The hashes a token may be stored under, in lookup order."""
        self.refresh()
        return tuple(v.mac(tenant_id, salt, "token-hash", token) for v in self._lookup)

    # --- client secrets ---------------------------------------------------------------

    def secret_hash(
        self, tenant_id: str, salt: bytes, secret: str, like: bytes | None = None
    ) -> bytes:
        """The secret's hash under the current key, or under the key that made ``like``
        (a stored hash to compare with)."""
        version = self._version(hash_version(like)) if like is not None else None
        if version is None:
            self.refresh()
            version = self._current
        return version.mac(tenant_id, salt, "client-secret-hash", secret)

    def seal_secret(self, tenant_id: str, salt: bytes, secret: str, client_id: str) -> bytes:
        self.refresh()
        return self._current.seal(tenant_id, salt, secret, client_id)

    def open_secret(self, tenant_id: str, salt: bytes, sealed: bytes, client_id: str) -> str:
        """The sealed secret, under whichever key of the ring sealed it; ``InvalidTag``
        when none does."""
        opened = self._open(tenant_id, salt, sealed, client_id)
        if opened is None:
            raise InvalidTag
        return opened[1]

    def seal_version(
        self, tenant_id: str, salt: bytes, sealed: bytes, client_id: str
    ) -> int | None:
        """The key version that sealed ``sealed``, or None when no key of the ring opens it."""
        opened = self._open(tenant_id, salt, sealed, client_id)
        return None if opened is None else opened[0]

    def _open(
        self, tenant_id: str, salt: bytes, sealed: bytes, client_id: str
    ) -> tuple[int, str] | None:
        for version_id, body in _seal_candidates(sealed):
            version = self._version(version_id)
            if version is None:
                continue
            with contextlib.suppress(InvalidTag, ValueError):
                return version_id, version.open(tenant_id, salt, body, client_id)
        return None

    # --- tenant admin keys ------------------------------------------------------------

    def admin_key_hash(self, key: str, like: bytes | None = None) -> bytes:
        """The admin key's hash under the current key, or under the key that made ``like``."""
        version = self._version(hash_version(like)) if like is not None else None
        if version is None:
            self.refresh()
            version = self._current
        return version.hash_tag + hmac.digest(version.admin_key, key.encode(), "sha256")


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
