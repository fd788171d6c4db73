"""Reading an ``application/x-www-form-urlencoded`` body (RFC 6749 sections 3.2, 2.3.1).

Parameters must not be repeated; the body is bounded; it must be UTF-8.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from app.errors import InvalidRequest
from app.request_body import read_body

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 64


def check_content_type(value: str | None, expected: str = FORM_TYPE) -> None:
    """``InvalidRequest`` unless ``value`` is the ``expected`` media type, in UTF-8 if it
    names a charset."""
    if not value:
        raise InvalidRequest(f"the body must be {expected}")
    media, _, params = value.partition(";")
    if media.strip().lower() != expected:
        raise InvalidRequest(f"the body must be {expected}")
    for param in params.split(";"):
        name, _, charset = param.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise InvalidRequest("the body must be UTF-8")


async def read_form(request: Request, max_bytes: int) -> dict[str, str]:
    """The form's parameters; each may appear once."""
    check_content_type(request.headers.get("content-type"))
    body = await read_body(request, max_bytes)
    return add_once({}, parse_pairs(body, "body"))


def parse_pairs(data: bytes, source: str, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """The name-value pairs of ``data`` (a body, a query string: ``source``, for errors),
    percent-escapes read as UTF-8."""
    try:
        return parse_qsl(
            data.decode(encoding),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidRequest(f"the {source} is not UTF-8") from None
    except ValueError:
        raise InvalidRequest(f"the {source} has too many parameters") from None


def add_once(params: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """``params`` with ``pairs`` added; a name already there is a repeated parameter."""
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"the parameter {name} is repeated")
        params[name] = value
    return params
