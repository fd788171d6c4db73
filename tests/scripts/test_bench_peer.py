"""scripts/bench.py --peer: its pure parts (no server, no npm, no network): the command
line, the request heads of the three tenant forms, the peer's install directory, the token
hand-out, CPU pinning's split and the tables that go into docs/PERFORMANCE.md."""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench  # noqa: E402
import bench_peer  # noqa: E402
import bench_peer_node as node  # noqa: E402
import bench_peer_report as report  # noqa: E402
from bench_peer_report import Point  # noqa: E402

SECRET = "s3cret"
BASIC = "Authorization: Basic YmVuY2gtY2xpZW50OnMzY3JldA==\r\n"  # bench-client:s3cret
FORM = "Content-Type: application/x-www-form-urlencoded\r\n"


# --- command line ------------------------------------------------------------------------


def test_defaults_are_the_issue_s_run() -> None:
    args = bench_peer.parse_args([])
    assert (args.concurrency, args.workers, args.store) == (16, 1, "sqlite")
    assert args.sweep_tenants == [1, 1_000, 10_000]
    assert args.sweep_tokens == [10_000, 1_000_000]
    assert args.skip == [] and args.pin is False and args.peer_dir is None
    # The peer on its in-memory adapter, as the issue measured it.
    assert args.peer_store == "memory"
    # What bench.measure reads.
    assert args.jwt_access_tokens is False and args.token_type == "access_token"


def test_sweep_counts_and_skips_parse() -> None:
    args = bench_peer.parse_args(
        ["--sweep-tenants", "1,100", "--sweep-tokens", "10_000,100000", "--skip", "peer",
         "--skip", "tokens"]
    )  # fmt: skip
    assert args.sweep_tenants == [1, 100]
    assert args.sweep_tokens == [10_000, 100_000]
    assert args.skip == ["peer", "tokens"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--sweep-tenants", "1000,1"],  # not increasing
        ["--sweep-tenants", "0,10"],
        ["--sweep-tenants", "1,x"],
        ["--sweep-tenants", "1,100000"],  # more than the tenant ids allow
        # Two phases of 5,500 revocations need 11,000 registered tokens by the second.
        ["--sweep-tokens", "6000,10000"],
        ["--sweep-tokens", "5000"],
        ["--requests", "0"],
        ["--skip", "everything"],
        ["--peer-store", "redis"],
    ],
)
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_peer.parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_bench_py_hands_peer_to_this_script(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--peer", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: bench.py --peer")
    assert "--sweep-tenants" in out
    assert "--peer-store" in out


@pytest.mark.parametrize(
    ("argv", "title"),
    [
        ([], "oidc-provider 9.13.3 (in-memory adapter)"),
        (["--peer-store", "memory"], "oidc-provider 9.13.3 (in-memory adapter)"),
        (["--peer-store", "sqlite"], "oidc-provider 9.13.3 (sqlite, synchronous=FULL)"),
    ],
)
def test_the_peer_s_title_names_its_store(argv: list[str], title: str) -> None:
    args = bench_peer.parse_args(argv)
    assert node.title("9.13.3", args.peer_store) == title
    main = {
        "revocation": {"ours": Point.of(figures(2_500, 100)), "peer": Point.of(figures(5_000, 100))}
    }
    text = report.render(main, {}, {}, peer_title=title, workers=1, connections=16, store="sqlite")
    assert f"| ours | {title} | bare Starlette (form parsed) |" in text.splitlines()[0]


# --- request heads ----------------------------------------------------------------------------


def test_the_three_tenant_forms_name_the_same_tenant() -> None:
    head = {f: bench_peer.form_head(f, "tbench", SECRET, "127.0.0.1", 8000) for f in report.FORMS}
    assert (
        head["path"]
        == (
            f"POST /t/tbench/token/revoke HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n{BASIC}{FORM}"
        ).encode()
    )
    assert (
        head["tenant-id"]
        == (
            f"POST /token/revoke HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nTenant-ID: tbench\r\n{BASIC}{FORM}"
        ).encode()
    )
    assert (
        head["issuer"]
        == (
            "POST /token/revoke HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
            f"Issuer: http://127.0.0.1:8000/t/tbench\r\n{BASIC}{FORM}"
        ).encode()
    )
    # The issuer the Issuer header names is the one the tenant is created with.
    assert (
        bench_peer.issuer_at("http://127.0.0.1:8000", "tbench") == "http://127.0.0.1:8000/t/tbench"
    )
    with pytest.raises(ValueError, match="unknown form"):
        bench_peer.form_head("cookie", "tbench", SECRET, "127.0.0.1", 8000)


def test_the_peer_head_names_no_tenant() -> None:
    head = bench_peer.peer_head(SECRET, 9000, node.REVOCATION_PATH)
    assert (
        head
        == (f"POST /token/revocation HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n{BASIC}{FORM}").encode()
    )


def test_sweep_tenant_ids_sort_before_the_benchmark_tenant_and_match_its_length() -> None:
    ids = [bench_peer.sweep_tenant_id(i) for i in (1, 999, bench_peer.MAX_SWEEP_TENANTS)]
    assert ids == ["t00001", "t00999", "t99999"]
    assert all(len(i) == len(bench_peer.BENCH_TENANT) for i in ids)
    assert max(ids) < bench_peer.BENCH_TENANT


# --- the peer's install -------------------------------------------------------------------------


def test_the_install_directory_is_keyed_by_the_lock_file() -> None:
    lock = b'{"lockfileVersion": 3}'
    assert node.lock_hash(lock) == hashlib.sha256(lock).hexdigest()[:16]
    root = Path("/cache")
    assert node.cache_dir(lock, root) == root / f"peer-{node.lock_hash(lock)}"
    assert node.cache_dir(lock + b" ", root) != node.cache_dir(lock, root)


def test_the_committed_lock_pins_oidc_provider_9_13_3_and_better_sqlite3_12() -> None:
    assert node.pinned_version() == "9.13.3"
    driver = node.pinned_version(package=node.SQLITE_PACKAGE)
    # better-sqlite3 13 crashes on Node 20; exact, as --save-exact writes it.
    assert driver.split(".")[0] == "12" and driver.replace(".", "").isdigit()
    lock = json.loads((node.SOURCE / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/oidc-provider"]["version"] == "9.13.3"
    assert lock["packages"]["node_modules/better-sqlite3"]["version"] == driver
    assert lock["packages"][""]["dependencies"] == {
        "better-sqlite3": driver,
        "oidc-provider": "9.13.3",
    }
    assert (node.SOURCE / "provider.mjs").is_file()
    assert (node.SOURCE / "sqlite_adapter.mjs").is_file()


def test_a_finished_install_is_reused_and_an_unfinished_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = (node.SOURCE / "package-lock.json").read_bytes()
    monkeypatch.setattr(node.shutil, "which", lambda name: None)  # no npm: nothing installs
    (tmp_path / node.MARKER).write_text(node.lock_hash(lock))
    assert node.install(tmp_path) == (tmp_path, False)
    (tmp_path / node.MARKER).write_text(node.lock_hash(b"another lock"))
    with pytest.raises(bench.BenchError, match="npm not found"):
        node.install(tmp_path)


def test_better_sqlite3_is_built_once_per_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node.shutil, "which", lambda name: None)  # no npm: nothing builds
    (tmp_path / node.MARKER).write_text("lock-a")
    (tmp_path / node.SQLITE_MARKER).write_text("lock-a")
    assert node.build_sqlite(tmp_path) is False
    # Built for another install of the directory: build again.
    (tmp_path / node.MARKER).write_text("lock-b")
    with pytest.raises(bench.BenchError, match="npm not found"):
        node.build_sqlite(tmp_path)
    assert not (tmp_path / node.SQLITE_MARKER).exists()


# --- tokens and CPUs ----------------------------------------------------------------------------


def test_tokens_are_handed_out_once_each() -> None:
    tokens = bench_peer.Tokens(b"seed", "access_token", random.Random(1), registered=50)
    first, second = tokens.take(30), tokens.take(20)
    assert len(set(first + second)) == 50
    assert set(first + second) == {bench.token_of(b"seed", i) for i in range(50)}
    with pytest.raises(bench.BenchError, match="1 tokens wanted, 0"):
        tokens.take(1)


def test_pinning_gives_the_load_client_one_cpu_and_the_servers_the_rest() -> None:
    assert bench_peer.pin_split([3, 1, 2]) == ({1}, {2, 3})
    with pytest.raises(ValueError, match="at least 2"):
        bench_peer.pin_split([0])


# --- figures and tables -------------------------------------------------------------------------


def figures(rps: float, cpu_pct: float, p99: float = 9.0) -> bench.Figures:
    wall = 2.0
    return bench.Figures(
        target="t", requests=int(rps * wall), completed=int(rps * wall), errors=0, rps=rps,
        p50_ms=4.0, p90_ms=7.0, p99_ms=p99, max_ms=12.0, wall_s=wall, client_cpu_pct=20.0,
        server_cpu_pct={"a": cpu_pct / 2, "b": cpu_pct / 2}, other_cpu_pct=0.0, irq_pct=0.0,
        steal_pct=0.0, statuses={"200": int(rps * wall)}, error_samples=[], failures=[],
        timed_out=False,
    )  # fmt: skip


def test_cpu_per_request_sums_the_measured_processes() -> None:
    # 100% of a core for 2,000 requests a second: 500 µs each.
    assert Point.of(figures(2_000, 100)).cpu_us == pytest.approx(500)
    no_cpu = figures(1_000, 0)
    no_cpu.server_cpu_pct = {}
    assert Point.of(no_cpu).cpu_us is None


def test_the_comparison_table_has_both_ratios() -> None:
    main = {
        "revocation": {
            "ours": Point.of(figures(2_500, 100, p99=10.5)),
            "peer": Point.of(figures(5_000, 100)),
            "bare": Point.of(figures(10_000, 100)),
        },
        "introspection": {
            "ours": Point.of(figures(3_000, 90)),
            "peer": Point.of(figures(2_000, 100)),
        },
    }
    text = report.render(
        main, {}, {}, peer_title="oidc-provider 9.13.3", workers=1, connections=16, store="sqlite"
    )
    lines = text.splitlines()
    assert lines[0].startswith("| 16 connections; ours and bare: 1 process, the peer: 1 | ours |")
    assert "| revocation, req/s | 2,500 | 5,000 | 10,000 | 0.50x | 0.25x |" in lines
    assert "| revocation, p50 / p99 ms | 4.00 / 10.50 | 4.00 / 9.00 | 4.00 / 9.00 | | |" in lines
    assert "| revocation, server CPU µs/request | 400 | 200 | 100 | 2.00x | |" in lines
    assert "| introspection, req/s | 3,000 | 2,000 | n/a | 1.50x | n/a |" in lines
    assert "- revocation: ours >= 1.0x the peer: NOT MET" in lines
    assert "- revocation: ours p99 < 10 ms: NOT MET" in lines
    assert "- introspection: ours >= 1.5x the peer: MET" in lines


def test_the_sweep_tables_show_each_count_against_the_first() -> None:
    tenants = {
        1: {f: Point.of(figures(2_000, 100)) for f in report.FORMS},
        10_000: {
            "path": Point.of(figures(1_000, 100)),
            "tenant-id": Point.of(figures(1_900, 100)),
            "issuer": Point.of(figures(2_100, 100)),
        },
    }
    tokens = {10_000: Point.of(figures(2_000, 100)), 1_000_000: Point.of(figures(1_700, 100))}
    text = report.render({}, tenants, tokens, peer_title="p", workers=1, connections=16,
                         store="sqlite")  # fmt: skip
    lines = text.splitlines()
    assert "| 10,000 | 1,000 (0.50x), 9.00 | 1,900 (0.95x), 9.00 | 2,100 (1.05x), 9.00 |" in lines
    assert "| 1,000,000 | 1,700 | 0.85x | 4.00 | 9.00 |" in lines
    assert "- tenants, issuer-URL path: within 20% of the first count: NOT MET" in lines
    assert "- tenants, Tenant-ID header: within 20% of the first count: MET" in lines
    assert "- tokens: within 20% of the first count: MET" in lines
    assert report.flatness(tenants) == pytest.approx(
        {"path": 0.5, "tenant-id": 0.95, "issuer": 1.0}
    )
    # The aims are the embedded store's: on MongoDB they are shown, not judged.
    mongo = report.render({}, tenants, tokens, peer_title="p", workers=1, connections=16,
                          store="mongodb")  # fmt: skip
    assert "MET" not in mongo.replace("NOT MET", "")
    assert "(aims are set for the embedded store): not measured" in mongo
