"""Checking a tenant's uploaded plugin before it is stored: name, size, syntax, hooks.

The source is compiled, never run, in the service process: a syntax error or a module
that defines none of the hooks is refused at upload with a ``400`` that says where.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass

from app.errors import FieldError
from app.plugins.operator import HOOKS

MAX_SOURCE_BYTES = 256 * 1024
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class CheckedSource:
    source: str
    sha256: str
    hooks: tuple[str, ...]


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise FieldError("name", "must match ^[a-z][a-z0-9_]{0,63}$")
    return name


def check_source(body: bytes) -> CheckedSource:
    if len(body) > MAX_SOURCE_BYTES:
        raise FieldError("source", f"is larger than {MAX_SOURCE_BYTES} bytes")
    try:
        source = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FieldError("source", f"is not UTF-8 (byte {exc.start})") from None
    try:
        compile(source, "<plugin>", "exec", dont_inherit=True)
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise FieldError(
            "source", f"SyntaxError at line {exc.lineno}, column {exc.offset}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise FieldError("source", f"cannot be compiled: {type(exc).__name__}") from None
    defined: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in HOOKS:
            defined[node.name] = node
    for name, node in defined.items():
        if isinstance(node, ast.AsyncFunctionDef):
            raise FieldError(
                "source", f"line {node.lineno}: {name} must be a plain def, not async def"
            )
    if not defined:
        raise FieldError(
            "source", f"defines none of the hooks {', '.join(HOOKS)} as a top-level function"
        )
    hooks = tuple(h for h in HOOKS if h in defined)
    return CheckedSource(source, hashlib.sha256(body).hexdigest(), hooks)
