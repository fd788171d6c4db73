"""The operator's admin subcommands, run through ``revocation-service`` against a data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tenant_and_client_put_then_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    settings = tmp_path / "acme.json"
    settings.write_text(json.dumps({"issuer": "https://acme.example"}))

    code, out, _ = run(capsys, "tenant", "put", "acme", str(settings), *data)
    assert code == 0
    assert json.loads(out)["settings"]["issuer"] == "https://acme.example"

    client = '{"type": "confidential", "scope": "introspect"}'
    rp = "https://rp.example.it/app?x=1"
    code, out, _ = run(capsys, "client", "put", "acme", rp, "--from-json", client, *data)
    assert code == 0
    secret = json.loads(out)["client_secret"]

    code, out, _ = run(capsys, "tenant", "get", "acme", *data)
    assert code == 0
    assert json.loads(out)["tenant_id"] == "acme"
    code, out, _ = run(capsys, "tenant", "list", *data)
    assert json.loads(out) == {
        "tenants": [{"tenant_id": "acme", "issuer": "https://acme.example", "enabled": True}]
    }
    code, out, _ = run(capsys, "client", "get", "acme", rp, *data)
    assert code == 0
    shown = json.loads(out)
    assert (shown["client_id"], shown["scope"], shown["has_secret"]) == (rp, "introspect", True)
    assert secret not in out

    code, out, err = run(capsys, "client", "get", "acme", "nobody", *data)
    assert code == 1
    assert out == ""
    assert json.loads(err)["error"] == "not_found"

    code, _, err = run(capsys, "tenant", "put", "beta", "--from-json", '{"issuer": 1}', *data)
    assert code == 1
    assert json.loads(err)["field"] == "issuer"
