"""scripts/client_assertion.py, run as the README runs it."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from app.key_sets import parse

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "client_assertion.py"
CLIENT_ID = "https://rp.spid-demo.example.it/"
AUDIENCE = "http://127.0.0.1:8000/t/spid"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def keygen(tmp_path: Path, alg: str) -> tuple[Path, dict[str, Any]]:
    key_file = tmp_path / "key.json"
    done = run("keygen", "--alg", alg, "--out", str(key_file))
    assert done.returncode == 0, done.stderr
    jwks: dict[str, Any] = json.loads(done.stdout)
    return key_file, jwks


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_keygen_writes_a_private_key_and_prints_the_public_set(tmp_path: Path, alg: str) -> None:
    key_file, jwks = keygen(tmp_path, alg)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = json.loads(key_file.read_text())
    assert "d" in private
    [public] = jwks["keys"]
    assert {"use": "sig", "alg": alg, "kid": private["kid"]}.items() <= public.items()
    assert not {"d", "p", "q", "dp", "dq", "qi"} & public.keys()
    # The service takes the printed set as a public signature key.
    assert [k.key_id for k in parse(jwks)] == [public["kid"]]


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    key_file, _ = keygen(tmp_path, "ES256")
    before = key_file.read_text()
    done = run("keygen", "--out", str(key_file))
    assert done.returncode != 0
    assert "exists" in done.stderr
    assert key_file.read_text() == before


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_an_assertion_verifies_with_the_printed_key_and_has_the_claims(
    tmp_path: Path, alg: str
) -> None:
    key_file, jwks = keygen(tmp_path, alg)
    args = ("assert", "--key", str(key_file), "--client-id", CLIENT_ID, "--audience", AUDIENCE)
    before = int(time.time())
    first = run(*args, "--lifetime", "90")
    after = int(time.time())
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()

    [public] = jwks["keys"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    assert header["kid"] == public["kid"]
    claims = jwt.decode(
        token,
        jwt.PyJWK(public),
        algorithms=[alg],
        audience=AUDIENCE,
        issuer=CLIENT_ID,
        options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
    )
    assert claims["sub"] == CLIENT_ID
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 90
    assert len(claims["jti"]) >= 22

    second = run(*args)
    again = jwt.decode(
        second.stdout.strip(), jwt.PyJWK(public), algorithms=[alg], audience=AUDIENCE
    )
    assert again["exp"] == again["iat"] + 60
    assert again["jti"] != claims["jti"]


def test_an_assertion_does_not_verify_with_another_key(tmp_path: Path) -> None:
    key_file, _ = keygen(tmp_path, "ES256")
    (tmp_path / "other").mkdir()
    _, other = keygen(tmp_path / "other", "ES256")
    token = run(
        "assert", "--key", str(key_file), "--client-id", CLIENT_ID, "--audience", AUDIENCE
    ).stdout.strip()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, jwt.PyJWK(other["keys"][0]), algorithms=["ES256"], audience=AUDIENCE)
