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
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    except ValueError:
        raise InvalidRequest("the body has too many parameters") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"the parameter {name} is repeated")
        form[name] = value
    return form
