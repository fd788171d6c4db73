"""Security Event Token claims (RFC 8417, SSF 1.0, CAEP 1.0): pure functions of the
tenant, the event, the receiver and the time."""

from __future__ import annotations

from typing import Any

import pytest

from app.directory import TenantView
from app.models import Event, Tenant
from app.propagation.event_types import CAEP_SESSION_REVOKED, OURS
from app.propagation.rfc8417 import event_id_of, security_event_claims, set_jti

ISSUER = "https://auth.example.com/t/acme"
NOW = 1_700_000_100
TOKEN = "tok-" + "s" * 40


def tenant() -> TenantView:
    return TenantView.of(Tenant("acme", {"issuer": ISSUER}, b"\x00" * 16, 1, 1))


def claims(event: Event, receiver_id: str = "r1") -> dict[str, Any]:
    return security_event_claims(tenant(), event, "https://rs.example/events", receiver_id, NOW)


def test_a_revocation_of_a_subjects_tokens() -> None:
    event = Event(
        id=42,
        time=1_700_000_000,
        type="revoked",
        cause="grant",
        count=3,
        client_id="app",
        sub="alice",
        grant_id="g1",
        token_type="refresh_token",
        device_session_id="ds1",
    )

    assert claims(event) == {
        "iss": ISSUER,
        "iat": NOW,
        "jti": set_jti(42, "r1"),
        "aud": "https://rs.example/events",
        "txn": "42",
        "sub_id": {"format": "iss_sub", "iss": ISSUER, "sub": "alice"},
        "events": {
            OURS + "revoked": {
                "event_timestamp": 1_700_000_000,
                "event_id": "42",
                "cause": "grant",
                "count": 3,
                "client_id": "app",
                "grant_id": "g1",
                "token_type": "refresh_token",
                "device_session_id": "ds1",
            }
        },
    }


def test_a_revoked_jwt_carries_its_jti_in_the_payload() -> None:
    event = Event(id=5, time=1, type="revoked", cause="token", count=1, client_id="app", jti="j-9")
    payload = claims(event)["events"]
    assert payload == {
        OURS + "revoked": {
            "event_timestamp": 1,
            "event_id": "5",
            "cause": "token",
            "count": 1,
            "client_id": "app",
            "jti": "j-9",
        }
    }


def test_without_a_subject_the_client_is_the_subject() -> None:
    event = Event(id=8, time=1, type="revoked", cause="all", count=10, client_id="app")
    assert claims(event)["sub_id"] == {"format": "opaque", "id": "app"}


def test_without_subject_or_client_the_issuer_is_the_subject() -> None:
    event = Event(id=9, time=1, type="plugin_rejected", cause="plugin:audit")
    out = claims(event)
    assert out["sub_id"] == {"format": "uri", "uri": ISSUER}
    assert list(out["events"]) == [OURS + "plugin-rejected"]


@pytest.mark.parametrize(
    ("cause", "entity"),
    [("spid", "policy"), ("device_secret", "policy"), ("global_revocation", "admin")],
)
def test_an_ended_session_is_caep_session_revoked(cause: str, entity: str) -> None:
    event = Event(
        id=11,
        time=1_700_000_000,
        type="session_ended",
        cause=cause,
        client_id="app",
        sub="alice",
        device_session_id="ds-1",
    )
    out = claims(event)
    assert out["sub_id"] == {
        "format": "complex",
        "session": {"format": "opaque", "id": "ds-1"},
        "user": {"format": "iss_sub", "iss": ISSUER, "sub": "alice"},
    }
    assert out["events"] == {
        CAEP_SESSION_REVOKED: {
            "event_timestamp": 1_700_000_000,
            "initiating_entity": entity,
            "reason_admin": {"en": f"cause: {cause}"},
        }
    }
    assert out["txn"] == "11"


def test_an_ended_session_without_a_subject_names_the_session_alone() -> None:
    event = Event(id=12, time=1, type="session_ended", cause="device_secret", device_session_id="d")
    assert claims(event)["sub_id"] == {
        "format": "complex",
        "session": {"format": "opaque", "id": "d"},
    }


def test_the_set_never_carries_a_token_or_its_hash() -> None:
    event = Event(id=1, time=1, type="revoked", cause="token", count=1, client_id="app")
    text = repr(claims(event))
    assert TOKEN not in text
    assert "token_hash" not in text and "hash" not in text


def test_the_jti_is_per_event_and_receiver_and_stable() -> None:
    assert set_jti(42, "r1") == set_jti(42, "r1")
    assert set_jti(42, "r1") != set_jti(42, "r2")
    assert set_jti(42, "r1") != set_jti(43, "r1")
    assert claims(Event(id=3, time=1, type="revoked", cause="x"), "r2")["jti"] == set_jti(3, "r2")


@pytest.mark.parametrize("event_id", [1, 42, 2**63 - 1])
def test_the_event_id_comes_back_from_the_jti(event_id: int) -> None:
    jti = set_jti(event_id, "receiver/with.odd chars")
    assert event_id_of(jti) == event_id
    assert set_jti(event_id, "receiver/with.odd chars") == jti


@pytest.mark.parametrize(
    "jti",
    [
        "",
        "42",
        "abc.0123456789ab",
        "0.0123456789ab",
        "042.0123456789ab",
        "42.0123456789AB",
        "42.0123456789a",
        "42.0123456789abc",
        f"{2**63}.0123456789ab",
        "42.0123456789ab\n",
        "-1.0123456789ab",
    ],
)
def test_a_foreign_jti_has_no_event_id(jti: str) -> None:
    assert event_id_of(jti) is None
