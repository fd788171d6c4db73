"""Subject Identifiers for Security Event Tokens (RFC 9493), as a Global Token Revocation
request names its subject (``sub_id``), mapped to the tenant's ``sub``.

The formats a tenant accepts are its ``global_revocation.subject_formats``
(``app.settings.SUBJECT_FORMATS``). ``iss_sub`` (section 3.2.3) means the ``sub`` when
its ``iss`` is the tenant's issuer or one of its aliases; ``opaque`` (3.2.4) is the
``sub`` itself. ``email`` (3.2.2), ``phone_number`` (3.2.5) and ``account`` (3.2.1) are
the ``sub`` where the tenant allows them: it says so when its ``sub`` values are e-mail
addresses, phone numbers or ``acct:`` URIs. Anything else (``did``, ``uri``,
``aliases``, an unknown format, a member the format does not define, section 3) is
refused with ``400 invalid_request``, which the Global Token Revocation draft gives for
"an unrecognized or unsupported type of subject identifier".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.directory import TenantView
from app.errors import InvalidRequest
from app.issuers import normalize_issuer

MAX_VALUE = 255
"""As long as a ``sub`` the admin API registers may be."""

MEMBERS: dict[str, tuple[str, ...]] = {
    "iss_sub": ("iss", "sub"),
    "opaque": ("id",),
    "email": ("email",),
    "phone_number": ("phone_number",),
    "account": ("uri",),
}
"""The members of each supported format besides ``format`` (all required)."""


def subject_of(sub_id: Any, tenant: TenantView) -> str:
    """The ``sub`` that ``sub_id`` names in ``tenant``; ``InvalidRequest`` when it is no
    subject identifier, of a format the tenant does not accept, or of another issuer."""
    if not isinstance(sub_id, Mapping):
        raise InvalidRequest("sub_id must be a JSON object (RFC 9493)")
    fmt = sub_id.get("format")
    if not isinstance(fmt, str):
        raise InvalidRequest("sub_id.format is missing")
    if fmt not in MEMBERS:
        raise InvalidRequest(f"the subject identifier format {fmt[:40]!r} is not supported")
    if fmt not in tenant.settings.global_revocation_subject_formats:
        raise InvalidRequest(f"this tenant does not accept the subject identifier format {fmt}")
    members = MEMBERS[fmt]
    extra = sorted(set(sub_id) - {"format", *members})
    if extra:
        raise InvalidRequest(f"sub_id has a member its format does not define: {extra[0][:40]}")
    values = {name: _value(sub_id, name) for name in members}
    if fmt == "iss_sub" and not _is_tenant_issuer(values["iss"], tenant):
        raise InvalidRequest("sub_id.iss is not this tenant's issuer")
    return values[members[-1]]


def _value(sub_id: Mapping[str, Any], name: str) -> str:
    value = sub_id.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"sub_id.{name} must be a non-empty string")
    if len(value) > MAX_VALUE:
        raise InvalidRequest(f"sub_id.{name} must be at most {MAX_VALUE} characters")
    return value


def _is_tenant_issuer(iss: str, tenant: TenantView) -> bool:
    """Compared as the ``Issuer`` header is (contract section 3): in normal form, with
    the aliases."""
    try:
        return normalize_issuer(iss) in tenant.issuers
    except ValueError:
        return False
