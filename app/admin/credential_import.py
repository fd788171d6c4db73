"""``revocation-service credential import TENANT_ID FILE``: bulk registration of issued
credentials from a file of any size.

- Formats: JSON Lines (one credential object a line) or CSV (a header row naming the
  credential fields of contract section 8; an empty cell is an absent field, ``exp`` and
  ``iat`` are whole numbers), by the file's extension (``.jsonl``, ``.ndjson``, ``.csv``)
  or ``--format``.
- Streamed and batched: one batch (``--batch``, default 1,000) is in memory, never the
  file. Each line is checked first (the admin API's field rules); the good ones are sent
  in batches, each all or none, to a running service's admin API (``--url``) or to the
  store itself (``--data-dir`` / ``--mongodb-uri``) through ``app.admin.credentials``,
  the operation the admin API runs, so what is accepted is the same either way.
- A rejected line does not sink its batch: a refusal that names a line (``[3].exp``,
  ``credential 3 is already registered with other fields``) rejects that line and the
  batch goes again without it; a refusal that names none splits the batch until it does.
  An unknown ``client_id`` is remembered for the rest of the run. A token that comes
  again with other fields is judged in file order: the first line registers it, a later
  one with other fields is rejected, a later one with the same fields is a duplicate.
- Resumable: after each committed batch the state file (``FILE.import-state``) records
  the byte offset and line number after it and the running counts; rejected lines go
  to ``FILE.import-state.rejects``. ``--resume`` continues from there; a fresh start
  refuses while a state file exists unless ``--restart``. Both files are removed when
  the import is complete.
- Exactly once: registering is idempotent, so a batch sent again after an interruption
  (committed, but stopped before its state was written) registers nothing twice; its
  lines come back as duplicates. The state also records the batch in flight, and when
  that batch comes back whole as duplicates it was committed by the interrupted run:
  its lines count as registered (a line that repeats a token of that same batch, as a
  duplicate). The one case counted wrong is a batch in flight whose every line was
  already registered before the import began: it counts as registered.
- The report: JSON on stdout (lines, registered, duplicates, rejected, and each rejected
  line's number and reason); a one-line progress bar on stderr on a terminal, a line
  every tenth of the file otherwise (``--no-progress``: none).
- Exit status: 0 when the import is complete (rejected lines included), 1 when it
  stopped (the state file is kept: ``--resume`` continues), 130 on Ctrl-C.

The state file is replaced atomically, so a killed import resumes cleanly; it is not
synced to disk, so after a power cut ``--restart`` (which registers nothing twice) is
the safe way on.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TextIO
from urllib.parse import quote

import httpx

from app.admin import credentials
from app.admin.fields import as_object
from app.admin.tenants import require_tenant
from app.bootstrap import open_services
from app.config import ADMIN_KEY_ENV, ServiceConfig
from app.errors import ConfigError, FieldError, ServiceError, TemporarilyUnavailable
from app.services import Services

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl", ".csv": "csv"}
DEFAULT_BATCH = 1_000
STATE_SUFFIX = ".import-state"
STATE_VERSION = 1
FINGERPRINT_BYTES = 64 * 1024
BOM = b"\xef\xbb\xbf"
RETRIES = 6
"""Attempts of a batch while the service or store is unavailable (about 30 s in all)."""
STOPPING_STATUSES = (401, 403, 404)
"""Refusals of the whole import (key, tenant), not of a line."""
REQUIRED_COLUMNS = ("token", "type", "client_id", "exp")
INTEGER_COLUMNS = ("exp", "iat")
INTEGER_RE = re.compile(r"^-?[0-9]+$")
INDEXED_FIELD_RE = re.compile(r"^\[(\d+)\]\.?(.*)$")
INDEXED_CONFLICT_RE = re.compile(r"^credential (\d+) (.*)$")
UNKNOWN_CLIENT = "not a registered client"
REPEATED = "repeats an earlier one"


class ImportStopped(Exception):
    """The import cannot go on (bad input file, key, tenant, an unreachable service)."""


class Unavailable(Exception):
    """Worth trying again: the service or store is unavailable for now."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Refused(Exception):
    """The service or store refused a batch: the HTTP status and the error body."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"{status} {body.get('error')}: {body.get('error_description')}")
        self.status = status
        self.body = body


# --- reading ---------------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    """One credential line (or CSV record): where it starts and ends, and what it holds."""

    line: int
    end: int
    """Byte offset just after it."""
    end_line: int
    item: dict[str, Any] | None
    reason: str | None = None
    """Why it is rejected, once it is."""


class Lines:
    """The file's lines from a byte offset on, counting lines and bytes."""

    def __init__(self, file: IO[bytes], offset: int, line: int) -> None:
        file.seek(offset)
        self.file, self.offset, self.line = file, offset, line

    def next(self) -> bytes | None:
        raw = self.file.readline()
        if not raw:
            return None
        self.offset += len(raw)
        self.line += 1
        return raw.removeprefix(BOM) if self.line == 1 else raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def jsonl_records(lines: Lines) -> Iterator[Record]:
    while (raw := lines.next()) is not None:
        if not raw.strip():
            continue
        record = Record(lines.line, lines.offset, lines.line, None)
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError as exc:
            record.reason = f"malformed JSON: not UTF-8 (byte {exc.start + 1})"
        except json.JSONDecodeError as exc:
            record.reason = f"malformed JSON: {exc.msg} (column {exc.colno})"
        except (ValueError, RecursionError) as exc:
            record.reason = f"malformed JSON: {exc}"
        else:
            if isinstance(value, dict):
                record.item = value
            else:
                record.reason = "malformed JSON: not an object"
        yield record


class _TextLines:
    """What ``csv.reader`` reads: the lines as text. Bytes that are not UTF-8 survive as
    surrogates, so that their row, and only it, is rejected."""

    def __init__(self, lines: Lines) -> None:
        self.lines = lines

    def __iter__(self) -> _TextLines:
        return self

    def __next__(self) -> str:
        raw = self.lines.next()
        if raw is None:
            raise StopIteration
        return raw.decode("utf-8", "surrogateescape")


def csv_header(file: IO[bytes]) -> tuple[list[str], int, int]:
    """The header row's column names, and the byte offset and line number after it."""
    lines = Lines(file, 0, 0)
    rows = csv.reader(_TextLines(lines), strict=True)
    try:
        header = next(row for row in rows if any(cell.strip() for cell in row))
    except StopIteration:
        raise ImportStopped("the CSV file has no header row") from None
    except csv.Error as exc:
        raise ImportStopped(f"the CSV header row is malformed: {exc}") from None
    names = [cell.strip() for cell in header]
    for name in names:
        if name not in credentials.FIELDS:
            fields = ", ".join(credentials.FIELDS)
            raise ImportStopped(f"the CSV header names {name!r}, not a credential field ({fields})")
        if names.count(name) > 1:
            raise ImportStopped(f"the CSV header names {name!r} twice")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise ImportStopped(f"the CSV header lacks the required column(s) {', '.join(missing)}")
    return names, lines.offset, lines.line


def csv_records(lines: Lines, header: Sequence[str]) -> Iterator[Record]:
    rows = csv.reader(_TextLines(lines), strict=True)
    while True:
        start = lines.line + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(start, lines.offset, lines.line, None, f"malformed CSV row: {exc}")
            continue
        if not any(cell.strip() for cell in row):
            continue
        record = Record(start, lines.offset, lines.line, None)
        if len(row) != len(header):
            record.reason = f"malformed CSV row: {len(row)} cells, the header has {len(header)}"
        elif any(_not_utf8(cell) for cell in row):
            record.reason = "malformed CSV row: not UTF-8"
        else:
            record.item = {
                name: int(cell) if name in INTEGER_COLUMNS and INTEGER_RE.match(cell) else cell
                for name, cell in zip(header, row, strict=True)
                if cell != ""
            }
        yield record


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check(item: Mapping[str, Any]) -> FieldError | None:
    """The admin API's own rules for one credential's fields
    (``credentials.check_fields``), checked here so that a bad line costs no request;
    what needs the store (the client exists, the token is not registered with other
    fields) is left to the API."""
    try:
        credentials.check_fields(as_object(item))
    except FieldError as exc:
        return exc
    return None


def field_reason(name: str, description: str) -> str:
    return f"invalid field {name}: {description}" if name else f"invalid line: {description}"


def unknown_client(client_id: str) -> str:
    return f"unknown client {client_id!r}: {UNKNOWN_CLIENT} of this tenant"


# --- where the credentials go ----------------------------------------------------------


class Target(Protocol):
    async def check_tenant(self) -> None:
        """Raise ``ImportStopped`` when the tenant cannot be reached with this key."""

    async def register(self, items: list[dict[str, Any]]) -> tuple[int, int]:
        """Register all or none: ``(registered, duplicates)``, or raise ``Refused`` or
        ``Unavailable``."""

    async def close(self) -> None: ...


class StoreTarget:
    """The store itself, through the admin API's operation."""

    def __init__(self, services: Services, tenant_id: str) -> None:
        self.services, self.tenant_id = services, tenant_id

    async def check_tenant(self) -> None:
        try:
            await require_tenant(self.services, self.tenant_id)
        except ServiceError as exc:
            raise ImportStopped(f"tenant {self.tenant_id!r}: {exc}") from None

    async def register(self, items: list[dict[str, Any]]) -> tuple[int, int]:
        try:
            outcome = await credentials.register_credentials(self.services, self.tenant_id, items)
        except TemporarilyUnavailable as exc:
            raise Unavailable(exc.description or exc.error) from None
        except ServiceError as exc:
            raise Refused(exc.status_code, exc.body()) from None
        return outcome.registered, outcome.duplicates

    async def close(self) -> None:
        await self.services.close()
        await self.services.store.close()


class HttpTarget:
    """A running service's admin API."""

    def __init__(self, url: str, admin_key: str, tenant_id: str, timeout_s: float = 120) -> None:
        self.tenant_id = tenant_id
        self.path = f"/admin/v1/tenants/{quote(tenant_id, safe='')}"
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=timeout_s,
        )

    async def check_tenant(self) -> None:
        try:
            r = await self.http.get(self.path)
        except httpx.HTTPError as exc:
            raise ImportStopped(f"{self.http.base_url}: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            raise ImportStopped(f"tenant {self.tenant_id!r}: {_http_refusal(r)}")

    async def register(self, items: list[dict[str, Any]]) -> tuple[int, int]:
        try:
            r = await self.http.post(f"{self.path}/credentials", json=items)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from None
        if r.status_code == 200:
            body = r.json()
            return int(body["registered"]), int(body["duplicates"])
        if r.status_code >= 500 or r.status_code == 429:
            retry_after = r.headers.get("retry-after", "")
            wait = float(retry_after) if retry_after.isdigit() else None
            raise Unavailable(_http_refusal(r), wait)
        raise Refused(r.status_code, _body(r))

    async def close(self) -> None:
        await self.http.aclose()


def _body(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"error": f"HTTP {r.status_code}"}


def _http_refusal(r: httpx.Response) -> str:
    body = _body(r)
    description = body.get("error_description")
    return f"{r.status_code} {body.get('error')}" + (f": {description}" if description else "")


# --- progress --------------------------------------------------------------------------


class Progress:
    """A one-line bar on a terminal, redrawn at most ten times a second; a plain line at
    every tenth of the file otherwise."""

    def __init__(self, stream: TextIO | None, total_bytes: int) -> None:
        self.stream = stream
        self.total = max(total_bytes, 1)
        self.tty = stream is not None and stream.isatty()
        self.started = time.monotonic()
        self.start_offset: int | None = None
        self.drawn = 0.0
        self.tenth = -1

    def update(self, offset: int, state: State, *, final: bool = False) -> None:
        if self.stream is None:
            return
        if self.start_offset is None:
            self.start_offset = offset
        now = time.monotonic()
        fraction = min(offset / self.total, 1.0)
        elapsed = max(now - self.started, 1e-6)
        rate = (offset - self.start_offset) / elapsed
        eta = "" if final or rate <= 0 else f", {_duration((self.total - offset) / rate)} left"
        text = (
            f"{fraction:6.1%}  line {state.line:,}: {state.registered:,} registered, "
            f"{state.duplicates:,} duplicates, {state.rejected:,} rejected{eta}"
        )
        if self.tty:
            if not final and now - self.drawn < 0.1:
                return
            self.drawn = now
            columns = shutil.get_terminal_size().columns
            width = max(columns - len(text) - 4, 10)
            filled = int(width * fraction)
            bar = f"\r[{'#' * filled}{'-' * (width - filled)}] {text}"[: columns + 1]
            self.stream.write(bar + ("\n" if final else ""))
        else:
            tenth = int(fraction * 10)
            if tenth <= self.tenth and not (final and tenth < 10):
                return
            self.tenth = tenth
            self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


# --- the import ------------------------------------------------------------------------


@dataclass(slots=True)
class State:
    """What the state file holds: the input, and everything before ``offset`` done."""

    input: str
    fingerprint: str
    format: str
    tenant_id: str
    header: list[str] | None = None
    offset: int = 0
    line: int = 0
    registered: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects_size: int = 0
    in_flight: dict[str, int] | None = None
    """The batch being sent: ``end`` (offset after its last line) and ``sent`` (items)."""
    version: int = STATE_VERSION

    @property
    def records(self) -> int:
        return self.registered + self.duplicates + self.rejected


@dataclass(slots=True)
class Options:
    file: Path
    tenant_id: str
    format: str
    batch: int = DEFAULT_BATCH
    state: Path | None = None
    resume: bool = False
    restart: bool = False
    progress: TextIO | None = None

    @property
    def state_path(self) -> Path:
        return self.state or Path(f"{self.file}{STATE_SUFFIX}")

    @property
    def rejects_path(self) -> Path:
        return Path(f"{self.state_path}.rejects")


def fingerprint(path: Path) -> str:
    """The input's first 64 KiB, hashed: a resumed import reads the same file."""
    with path.open("rb") as file:
        return hashlib.sha256(file.read(FINGERPRINT_BYTES)).hexdigest()


def format_of(path: Path, given: str | None) -> str:
    if given:
        return given
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        known = ", ".join(FORMATS)
        raise ImportStopped(f"{path}: give --format jsonl or csv (known extensions: {known})")
    return found


@dataclass(slots=True)
class Importer:
    options: Options
    target: Target
    state: State
    unknown_clients: set[str] = field(default_factory=set)
    recovering: dict[str, int] | None = None

    # The state file --------------------------------------------------------------------

    @classmethod
    def begin(cls, options: Options, target: Target) -> Importer:
        """A fresh state, or the interrupted one (``--resume``); refuses to start over an
        interrupted import without ``--resume`` or ``--restart``."""
        path, file = options.state_path, options.file
        if not file.is_file():
            raise ImportStopped(f"{file}: no such file")
        if path.exists() and options.restart:
            path.unlink()
        if path.exists() and not options.resume:
            state = _load_state(path)
            raise ImportStopped(
                f"an import of {file} was interrupted after line {state.line:,} (state in "
                f"{path}): --resume continues it, --restart starts it over"
            )
        if path.exists():
            state = _load_state(path)
            _check_resumable(state, options)
            with options.rejects_path.open("ab") as rejects:
                rejects.truncate(state.rejects_size)
            return cls(options, target, state, recovering=state.in_flight)
        state = State(str(file.resolve()), fingerprint(file), options.format, options.tenant_id)
        options.rejects_path.unlink(missing_ok=True)
        return cls(options, target, state)

    def save(self) -> None:
        path = self.options.state_path
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self.state)))
        os.replace(temporary, path)

    # Reading -----------------------------------------------------------------------------

    def records(self, file: IO[bytes]) -> Iterator[Record]:
        state = self.state
        if state.format == "jsonl":
            return jsonl_records(Lines(file, state.offset, state.line))
        header, offset, line = csv_header(file)
        if state.header is None:
            state.header, state.offset, state.line = header, offset, line
        elif state.header != header:
            raise ImportStopped("the CSV header changed since the import began: --restart")
        return csv_records(Lines(file, state.offset, state.line), header)

    def take(self, records: Iterator[Record]) -> list[Record]:
        """The next batch: up to ``--batch`` good records and the rejected ones between.
        A resumed import first takes the batch that was in flight, exactly."""
        unit: list[Record] = []
        good = 0
        end = self.recovering["end"] if self.recovering else None
        for record in records:
            unit.append(record)
            good += record.reason is None
            if (end is not None and record.end >= end) or (
                end is None and good >= self.options.batch
            ):
                break
        return unit

    # Sending ---------------------------------------------------------------------------

    async def run(self) -> State:
        state = self.state
        size = self.options.file.stat().st_size
        progress = Progress(self.options.progress, size)
        with self.options.file.open("rb") as file:
            records = self.records(file)
            progress.update(state.offset, state)
            while unit := self.take(records):
                await self.commit(unit)
                self.recovering = None
                progress.update(state.offset, state)
        progress.update(state.offset, state, final=True)
        return state

    async def commit(self, unit: list[Record]) -> None:
        """Send a batch's good records; then record the rejects and the new state."""
        state = self.state
        for record in unit:
            if record.reason is None:
                assert record.item is not None
                if (problem := check(record.item)) is not None:
                    record.reason = field_reason(problem.field, problem.description or "")
                elif (client := record.item["client_id"]) in self.unknown_clients:
                    record.reason = unknown_client(client)
        registered, duplicates = await self.send([r for r in unit if r.reason is None])
        rejects = sorted((r for r in unit if r.reason is not None), key=lambda r: r.line)
        with self.options.rejects_path.open("ab") as out:
            out.seek(state.rejects_size)
            out.truncate()
            for record in rejects:
                line = {"line": record.line, "reason": record.reason}
                out.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            state.rejects_size = out.tell()
        state.registered += registered
        state.duplicates += duplicates
        state.rejected += len(rejects)
        state.offset, state.line = unit[-1].end, unit[-1].end_line
        state.in_flight = None
        self.save()

    async def send(self, good: list[Record]) -> tuple[int, int]:
        """Register ``good`` in as few requests as the refusals allow."""
        registered = duplicates = 0
        parts = deque([good])
        while parts:
            part = parts.popleft()
            if not part:
                continue
            self.state.in_flight = {"end": part[-1].end, "sent": len(part)}
            self.save()
            try:
                r, d = await self.attempt([record.item or {} for record in part])
            except Refused as refusal:
                parts.extendleft(reversed(self.refused(part, refusal)))
                continue
            recovering, self.recovering = self.recovering, None
            if recovering and r == 0 and d == len(part) == recovering["sent"]:
                # The batch in flight when the import stopped: committed then.
                r = len({record.item["token"] for record in part if record.item})
                d = len(part) - r
            registered += r
            duplicates += d
        return registered, duplicates

    async def attempt(self, items: list[dict[str, Any]]) -> tuple[int, int]:
        """One batch, tried again while the service or store is unavailable."""
        for attempt in range(RETRIES):
            try:
                return await self.target.register(items)
            except Unavailable as exc:
                if attempt == RETRIES - 1:
                    raise ImportStopped(f"unavailable: {exc}") from None
                await asyncio.sleep(exc.retry_after or min(0.5 * 2**attempt, 10.0))
        raise AssertionError("unreachable")

    def refused(self, part: list[Record], refusal: Refused) -> list[list[Record]]:
        """Mark the line a refusal names as rejected; what is left to send, in order."""
        body, status = refusal.body, refusal.status
        description = str(body.get("error_description") or body.get("error") or "")
        if status in STOPPING_STATUSES or status >= 500:
            raise ImportStopped(f"refused: {refusal}")
        index, reason = _line_of(body, description)
        if index is not None and 0 <= index < len(part) and REPEATED in description:
            # A token repeated in the batch with other fields: which line is wrong depends
            # on the ones before it, so the repeat goes after them, alone.
            return [part[:index] + part[index + 1 :], [part[index]]]
        if index is not None and 0 <= index < len(part):
            bad = part[index]
            bad.reason = reason
            if reason == UNKNOWN_CLIENT:
                # Every line of that client is rejected without asking again.
                client = str((bad.item or {}).get("client_id"))
                self.unknown_clients.add(client)
                for record in part:
                    if (record.item or {}).get("client_id") == client:
                        record.reason = unknown_client(client)
            return [[r for r in part if r.reason is None]]
        if len(part) > 1:
            middle = len(part) // 2
            return [part[:middle], part[middle:]]
        part[0].reason = f"refused: {body.get('error')}: {description}"
        return []


def _line_of(body: Mapping[str, Any], description: str) -> tuple[int | None, str]:
    """The batch index a refusal names, and why, for the line's report."""
    where = body.get("field")
    if isinstance(where, str) and (found := INDEXED_FIELD_RE.match(where)):
        name = found[2]
        if name == "client_id" and UNKNOWN_CLIENT in description:
            return int(found[1]), UNKNOWN_CLIENT
        return int(found[1]), field_reason(name, description)
    if body.get("error") == "conflict" and (found := INDEXED_CONFLICT_RE.match(description)):
        return int(found[1]), f"conflict: the token {found[2]}"
    return None, description


def _load_state(path: Path) -> State:
    try:
        raw = json.loads(path.read_text())
        state = State(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise ImportStopped(f"{path} is not an import state file ({exc}): --restart") from None
    if state.version != STATE_VERSION:
        raise ImportStopped(f"{path} was written by another version: --restart")
    return state


def _check_resumable(state: State, options: Options) -> None:
    if state.tenant_id != options.tenant_id:
        raise ImportStopped(f"the interrupted import was for tenant {state.tenant_id!r}")
    if state.format != options.format:
        raise ImportStopped(f"the interrupted import read the file as {state.format}")
    size = options.file.stat().st_size
    if size < state.offset or fingerprint(options.file) != state.fingerprint:
        raise ImportStopped(f"{options.file} changed since the import began: --restart")


def report(state: State, options: Options, out: TextIO) -> None:
    """The counts as JSON, with every rejected line, streamed from the rejects file."""
    summary = {
        "file": str(options.file),
        "tenant_id": state.tenant_id,
        "lines": state.line,
        "registered": state.registered,
        "duplicates": state.duplicates,
        "rejected": state.rejected,
    }
    head = json.dumps(summary, indent=2, ensure_ascii=False)
    out.write(head[:-2] + ',\n  "rejected_lines": [')
    with options.rejects_path.open("rb") as rejects:
        for i, line in enumerate(rejects):
            out.write(("," if i else "") + "\n    " + line.decode().strip())
    out.write("\n  ]\n}\n" if state.rejected else "]\n}\n")
    out.flush()


# --- the command -----------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tenant_id")
    p.add_argument("file", help="JSON Lines (.jsonl, .ndjson) or CSV (.csv) with a header row")
    p.add_argument("--format", choices=("jsonl", "csv"), help="[by the file's extension]")
    p.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"credentials a request, 1 to {credentials.MAX_BATCH} [{DEFAULT_BATCH}]",
    )
    p.add_argument(
        "--url", help="a running service (http://host:port) instead of --data-dir/--mongodb-uri"
    )
    p.add_argument("--admin-key", help=f"with --url: an admin key [{ADMIN_KEY_ENV}]")
    p.add_argument("--state", help=f"the state file [FILE{STATE_SUFFIX}]")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted import")
    again.add_argument("--restart", action="store_true", help="start over, forgetting one")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")


def main(args: argparse.Namespace) -> int:
    """``credential import``: 0 complete, 1 stopped (resumable), 130 interrupted."""
    try:
        options = Options(
            file=Path(args.file),
            tenant_id=args.tenant_id,
            format=format_of(Path(args.file), args.format),
            batch=args.batch,
            state=Path(args.state) if args.state else None,
            resume=args.resume,
            restart=args.restart,
            progress=None if args.no_progress else sys.stderr,
        )
        if not 1 <= options.batch <= credentials.MAX_BATCH:
            raise ImportStopped(f"--batch must be between 1 and {credentials.MAX_BATCH}")
        state = asyncio.run(_import(options, args))
    except ImportStopped as exc:
        return _stopped(str(exc), args)
    except KeyboardInterrupt:
        _stopped("interrupted", args)
        return 130
    report(state, options, sys.stdout)
    options.state_path.unlink(missing_ok=True)
    options.rejects_path.unlink(missing_ok=True)
    return 0


async def _import(options: Options, args: argparse.Namespace) -> State:
    target = await _target(options, args)
    try:
        await target.check_tenant()
        importer = Importer.begin(options, target)
        return await importer.run()
    finally:
        await target.close()


async def _target(options: Options, args: argparse.Namespace) -> Target:
    if args.url:
        if args.mongodb_uri:
            raise ImportStopped("give --url or --mongodb-uri, not both")
        key = args.admin_key or os.environ.get(ADMIN_KEY_ENV)
        if not key:
            raise ImportStopped(f"--url needs --admin-key or {ADMIN_KEY_ENV}")
        return HttpTarget(args.url, key, options.tenant_id)
    config = ServiceConfig.for_store_commands(args)
    try:
        services = await open_services(config)
    except (ConfigError, ServiceError) as exc:
        raise ImportStopped(f"the store: {exc}") from None
    return StoreTarget(services, options.tenant_id)


def _stopped(reason: str, args: argparse.Namespace) -> int:
    if not args.no_progress and sys.stderr.isatty():
        sys.stderr.write("\n")  # below the progress bar
    body = {"error": "import_stopped", "error_description": reason}
    state = Path(args.state) if args.state else Path(f"{args.file}{STATE_SUFFIX}")
    if state.exists():
        body["state"] = str(state)
        body["resume"] = "run the same command with --resume"
    print(json.dumps(body, ensure_ascii=False), file=sys.stderr)
    return 1
