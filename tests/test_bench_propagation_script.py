"""scripts/bench.py --propagation, run with tiny numbers on the embedded store: its JSON
has the figures, and every event reached every receiver and the long-poll reader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
SPREAD = {"n", "p50_ms", "p99_ms", "max_ms"}


def test_a_tiny_propagation_run_delivers_every_event(tmp_path: Path) -> None:
    out = tmp_path / "propagation.json"
    args = ["--propagation", "--receivers", "2", "--rates", "5", "--duration", "2"]
    args += ["--requests", "100", "--warmup", "10", "--concurrency", "4", "--seed", "7"]
    args += ["--log-level", "warning", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["ok"] is True
    assert report["machine"]["cpus"] >= 1
    assert report["code"]
    assert report["settings"]["receivers"] == 2
    assert "--fetch-allow-private" in report["commands"]["service"]

    throughput = report["throughput"]
    for phase in ("without_receivers", "with_receivers"):
        assert throughput[phase]["errors"] == 0
        assert throughput[phase]["completed"] == 100
        assert throughput[phase]["rps"] > 0
    assert throughput["ratio"] > 0
    catch_up = throughput["catch_up"]
    assert catch_up["complete"] is True
    assert catch_up["expected_sets"] == (100 + 10) * 2
    assert catch_up["seconds"] is not None

    [phase] = report["latency"]
    assert phase["rate"] == 5
    assert phase["sent"] == phase["ok"] == 10
    # Every revocation's event at both receivers and at the long-poll reader.
    assert phase["sets_seen"] == phase["expected_sets"] == 20
    assert phase["long_poll_seen"] == phase["long_poll_expected"] == 10
    assert phase["drained"] is True
    for spread in (phase["push"], phase["long_poll"], phase["revocation"]):
        assert spread.keys() == SPREAD
    assert phase["push"]["n"] == 20
    assert phase["long_poll"]["n"] == 10
    assert phase["push"]["p50_ms"] <= phase["push"]["p99_ms"] <= phase["push"]["max_ms"]
    assert phase["last_set_after_last_revocation_s"] is not None
