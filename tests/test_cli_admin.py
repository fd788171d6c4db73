"""The operator's admin subcommands, run through ``revocation-service`` against a data dir."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from app.cli import main, parser


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


def _leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Every runnable command's words, walked through argparse's subparsers."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        return [prefix.strip()]
    return [
        leaf
        for name, sub in groups[0].choices.items()
        for leaf in _leaf_commands(sub, f"{prefix}{name} ")
    ]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    leaves = _leaf_commands(parser())
    assert {"serve", "tenant admin-key create", "credential import", "events list"} <= set(leaves)
    listed = out.split("commands:\n", 1)[1]
    for leaf in leaves:
        assert re.search(rf"^  {re.escape(leaf)}\b", listed, re.MULTILINE), leaf
    assert "credential import TENANT_ID FILE" in listed
