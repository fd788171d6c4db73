"""node-oidc-provider for ``scripts/bench.py --peer``: installed from the lock file in
``scripts/peer/``, started as one process with tokens minted in-process.

The install is ``npm ci`` (exact versions, from the committed ``package-lock.json``) into a
directory keyed by the lock's hash, ``~/.cache/revocation-service-bench/peer-<hash>``, so a
rerun does not install again and a changed lock installs afresh. A marker file written after
a complete install tells a finished directory from an interrupted one.

``npm ci`` runs no package's install scripts. ``--peer-store sqlite`` needs better-sqlite3's
native module, so that run builds it (``npm rebuild better-sqlite3``: a prebuilt binary, or
node-gyp from source, about a minute on two cores) once per install directory, with a marker
of its own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError, Child, free_port, spawn, wait_http_ok

SCRIPTS = Path(__file__).resolve().parent
SOURCE = SCRIPTS / "peer"
"""``package.json``, ``package-lock.json`` and ``provider.mjs``."""
CACHE_ROOT = Path.home() / ".cache" / "revocation-service-bench"
PACKAGE = "oidc-provider"
MARKER = ".installed"
SQLITE_PACKAGE = "better-sqlite3"
SQLITE_MARKER = ".built-better-sqlite3"
STORES = {
    "memory": "in-memory adapter",
    "sqlite": "sqlite, synchronous=FULL",
}
"""The peer's stores (``provider.mjs --store``) and how titles name them."""
NPM_TIMEOUT_S = 600.0
READY_PATH = "/.well-known/openid-configuration"
REVOCATION_PATH = "/token/revocation"
INTROSPECTION_PATH = "/token/introspection"


def lock_hash(lock: bytes) -> str:
    """The install directory's key: 16 hex digits of the lock file's SHA-256."""
    return hashlib.sha256(lock).hexdigest()[:16]


def cache_dir(lock: bytes, root: Path = CACHE_ROOT) -> Path:
    return root / f"peer-{lock_hash(lock)}"


def title(version: str | None, store: str) -> str:
    """The peer's name in the header and the table: ``oidc-provider 9.13.3 (sqlite, …)``."""
    return f"{PACKAGE} {version or '?'} ({STORES[store]})"


def installed_version(directory: Path, package: str = PACKAGE) -> str | None:
    try:
        manifest = json.loads((directory / "node_modules" / package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def pinned_version(source: Path = SOURCE, package: str = PACKAGE) -> str:
    """The version ``package.json`` pins (``--save-exact``: no range)."""
    manifest = json.loads((source / "package.json").read_text())
    return str(manifest["dependencies"][package])


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm not found: --peer needs Node.js (20 or later) and npm")
    return npm


def _run_npm(argv: list[str], directory: Path) -> None:
    try:
        done = subprocess.run(
            argv, cwd=directory, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(
            f"{' '.join(argv[1:3])} in {directory} took over {NPM_TIMEOUT_S:.0f}s"
        ) from exc
    if done.returncode != 0:
        raise BenchError(
            f"{' '.join(argv[1:3])} in {directory} failed:\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def install(directory: Path | None, source: Path = SOURCE) -> tuple[Path, bool]:
    """The directory holding ``node_modules/oidc-provider``, installed there unless an
    earlier run finished installing the same lock; and whether this call installed it."""
    lock = (source / "package-lock.json").read_bytes()
    target = directory or cache_dir(lock)
    marker = target / MARKER
    if marker.is_file() and marker.read_text() == lock_hash(lock):
        return target, False
    npm = _npm()
    target.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    (target / SQLITE_MARKER).unlink(missing_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(source / name, target / name)
    _run_npm([npm, "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], target)
    for package in (PACKAGE, SQLITE_PACKAGE):
        if installed_version(target, package) != pinned_version(source, package):
            raise BenchError(
                f"npm ci in {target} did not install {package} {pinned_version(source, package)}"
            )
    marker.write_text(lock_hash(lock))
    return target, True


def build_sqlite(directory: Path) -> bool:
    """better-sqlite3's native module in the install ``directory``, built unless an earlier
    run built it there; whether this call built it."""
    marker = directory / SQLITE_MARKER
    key = (directory / MARKER).read_text()
    if marker.is_file() and marker.read_text() == key:
        return False
    marker.unlink(missing_ok=True)
    _run_npm([_npm(), "rebuild", SQLITE_PACKAGE, "--no-audit", "--no-fund"], directory)
    marker.write_text(key)
    return True


def node_version() -> str:
    node = shutil.which("node")
    if node is None:
        raise BenchError("node not found: --peer needs Node.js (20 or later)")
    done = subprocess.run([node, "-v"], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


@dataclass
class Peer:
    child: Child
    port: int
    tokens: list[str]
    """Live ``client_credentials`` access tokens minted at start-up, in mint order."""


def start(
    children: list[Child],
    tmp: Path,
    env: dict[str, str],
    *,
    modules: Path,
    client_id: str,
    secret: str,
    tokens: int,
    store: str = "memory",
) -> Peer:
    """The provider on a free loopback port, in production mode, with ``tokens`` minted into
    its ``store`` (one of ``STORES``; ``sqlite``: a file in ``tmp``)."""
    node = shutil.which("node")
    if node is None:
        raise BenchError("node not found: --peer needs Node.js (20 or later)")
    port = free_port()
    tokens_file = tmp / "peer-tokens.txt"
    argv = [
        node, str(SOURCE / "provider.mjs"), "--modules", str(modules), "--port", str(port),
        "--tokens", str(tokens), "--tokens-file", str(tokens_file), "--store", store,
    ]  # fmt: skip
    if store == "sqlite":
        argv += ["--db", str(tmp / "peer.sqlite3")]
    # The secret goes by the environment, not argv, where any process could read it.
    peer_env = {
        **env,
        "NODE_ENV": "production",
        "PEER_CLIENT_ID": client_id,
        "PEER_CLIENT_SECRET": secret,
    }
    child = spawn(children, "oidc-provider", argv, tmp / "peer.log", cwd=tmp, env=peer_env)
    wait_http_ok(child, "127.0.0.1", port, READY_PATH)
    minted = tokens_file.read_text().split()
    if len(minted) != tokens:
        raise BenchError(f"the peer minted {len(minted)} tokens, {tokens} expected")
    return Peer(child, port, minted)
