"""scripts/soak.py, run for a few seconds with a tiny load on the embedded store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "soak.py"
SAMPLE_FIELDS = {
    "phase",
    "t_s",
    "interval_s",
    "service",
    "fds_beyond_connections",
    "generator",
    "ops_per_s",
    "ops",
    "errors",
    "lag_max_ms",
    "in_flight_max",
    "service_log_errors",
    "store_bytes",
}
SERVICE_FIELDS = {"processes", "rss_kb", "fds", "sockets", "threads", "cpu_pct"}
OP_FIELDS = {"count", "p50_ms", "p99_ms", "max_ms"}


def test_a_short_soak_passes_and_writes_its_samples(tmp_path: Path) -> None:
    out = tmp_path / "soak.jsonl"
    args = ["--duration", "6", "--sample-interval", "2", "--capacity-seconds", "2"]
    args += ["--concurrency", "4", "--load-fraction", "0.02", "--initial-units", "100"]
    args += ["--registration-units", "20", "--verify-live", "60", "--seed", "7", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED" in done.stdout

    records: list[dict[str, Any]] = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["kind"] == "start"
    assert records[-1]["kind"] == "summary"
    samples = [r for r in records if r["kind"] == "sample"]
    phases = [s["phase"] for s in samples]
    assert phases[0] == "capacity"
    assert phases[-1] == "verify"
    assert phases.count("soak") >= 3
    for sample in samples:
        assert sample.keys() >= SAMPLE_FIELDS
        service = sample["service"]
        assert service.keys() >= SERVICE_FIELDS
        assert service["processes"] >= 1
        assert service["rss_kb"] > 10_000
        assert service["fds"] > 0
        assert service["threads"] >= 1
        assert sample["store_bytes"] > 0
        assert sample["errors"] == {}
        assert sample["service_log_errors"] == {}
        for figures in sample["ops"].values():
            assert figures.keys() == OP_FIELDS
            assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    soaked = [s for s in samples if s["phase"] == "soak"]
    ops = {op for s in soaked for op in s["ops"]}
    assert {"revoke_access", "introspect_live", "introspect_revoked"} <= ops
    assert sum(s["ops_per_s"] * s["interval_s"] for s in soaked) > 20

    summary = records[-1]
    assert summary["passed"], summary["reasons"]
    assert summary["errors"] == 0
    assert summary["capacity_ops_s"] > 0
    assert abs(summary["rate_ops_s"] - summary["capacity_ops_s"] * 0.02) < 0.1
    # Every acknowledged revocation was introspected, and each was inactive.
    assert summary["verified_revoked"] == summary["credentials_revoked"] > 0
    assert summary["verified_revoked_failed"] == 0
    assert summary["verified_live"] > 0
    assert summary["verified_live_failed"] == 0
    assert summary["events_checked"]
    assert summary["events_revoked"] == summary["revocations_acknowledged"]
    assert summary["events_credentials"] == summary["credentials_revoked"]
