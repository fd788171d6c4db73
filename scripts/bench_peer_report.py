"""What ``scripts/bench.py --peer`` prints at the end: Markdown tables for
``docs/PERFORMANCE.md`` (ours beside the peer and the bare endpoint; the tenant-count and
token-count sweeps) and the issue's aims, met or not."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench import Figures

TARGETS = ("ours", "peer", "bare")
FORMS = ("path", "tenant-id", "issuer")
FORM_TITLES = {
    "path": "issuer-URL path",
    "tenant-id": "Tenant-ID header",
    "issuer": "Issuer header",
}
NONE = "n/a"
FLAT_WITHIN = 0.20
"""The issue's flatness aim: each count within 20% of the first."""


@dataclass(frozen=True)
class Point:
    """One measured phase, reduced to what the tables show."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None
    """Server CPU per request (every measured process), microseconds."""
    errors: int

    @classmethod
    def of(cls, f: Figures) -> Point:
        cpu = None
        if f.server_cpu_pct and f.completed:
            cpu = 1e6 * sum(f.server_cpu_pct.values()) / 100 * f.wall_s / f.completed
        return cls(f.rps, f.p50_ms, f.p99_ms, cpu, f.errors)


def ratio(a: Point | None, b: Point | None) -> float | None:
    if a is None or b is None or not b.rps:
        return None
    return a.rps / b.rps


def _n(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    if value is None or math.isnan(value):
        return NONE
    return f"{value:{spec}}{suffix}"


def comparison_table(
    main: Mapping[str, Mapping[str, Point]], peer_title: str, workers: int, connections: int
) -> list[str]:
    """``main[kind][target]``: kind ``revocation``/``introspection``, target in TARGETS."""
    bare_title = "bare Starlette (form parsed)"
    lines = [
        f"| {connections} connections; ours and bare: {workers} process"
        f"{'es' if workers > 1 else ''}, the peer: 1 | ours "
        f"| {peer_title} | {bare_title} | ours/peer | ours/bare |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, points in main.items():
        ours, peer, bare = (points.get(t) for t in TARGETS)
        cells = [_n(p.rps) if p else NONE for p in (ours, peer, bare)]
        lines.append(
            f"| {kind}, req/s | {' | '.join(cells)} | {_n(ratio(ours, peer), '.2f', 'x')} "
            f"| {_n(ratio(ours, bare), '.2f', 'x')} |"
        )
        cells = [f"{p.p50_ms:.2f} / {p.p99_ms:.2f}" if p else NONE for p in (ours, peer, bare)]
        lines.append(f"| {kind}, p50 / p99 ms | {' | '.join(cells)} | | |")
        cells = [_n(p.cpu_us, ",.0f") if p else NONE for p in (ours, peer, bare)]
        cpu_ratio = None
        if ours and peer and ours.cpu_us and peer.cpu_us:
            cpu_ratio = ours.cpu_us / peer.cpu_us
        lines.append(
            f"| {kind}, server CPU µs/request | {' | '.join(cells)} "
            f"| {_n(cpu_ratio, '.2f', 'x')} | |"
        )
    return lines


def tenant_table(sweep: Mapping[int, Mapping[str, Point]]) -> list[str]:
    """``sweep[count][form]``: our revocation throughput with ``count`` tenants on one
    origin, and each as a share of the first count's."""
    forms = [f for f in FORMS if any(f in row for row in sweep.values())]
    lines = [
        "| tenants on one origin | "
        + " | ".join(f"{FORM_TITLES[f]}: req/s (x of first), p99 ms" for f in forms)
        + " |",
        "|---:|" + "---:|" * len(forms),
    ]
    first = next(iter(sweep.values()), {})
    for count, row in sweep.items():
        cells = []
        for form in forms:
            p = row.get(form)
            cells.append(
                NONE
                if p is None
                else f"{_n(p.rps)} ({_n(ratio(p, first.get(form)), '.2f', 'x')}), {p.p99_ms:.2f}"
            )
        lines.append(f"| {count:,} | {' | '.join(cells)} |")
    return lines


def token_table(sweep: Mapping[int, Point]) -> list[str]:
    lines = [
        "| registered tokens | revocation req/s | x of first | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    first = next(iter(sweep.values()), None)
    for count, p in sweep.items():
        lines.append(
            f"| {count:,} | {_n(p.rps)} | {_n(ratio(p, first), '.2f', 'x')} "
            f"| {p.p50_ms:.2f} | {p.p99_ms:.2f} |"
        )
    return lines


def flatness(sweep: Mapping[int, Mapping[str, Point]]) -> dict[str, float]:
    """Per form, the lowest throughput of any count as a share of the first count's."""
    out: dict[str, float] = {}
    rows = list(sweep.values())
    for form in FORMS:
        shares = [ratio(row.get(form), rows[0].get(form)) for row in rows] if rows else []
        known = [s for s in shares if s is not None]
        if known:
            out[form] = min(known)
    return out


def aims(
    main: Mapping[str, Mapping[str, Point]],
    tenants: Mapping[int, Mapping[str, Point]],
    tokens: Mapping[int, Point],
    store: str,
) -> list[tuple[str, bool | None]]:
    """The issue's aims, each with MET (True), NOT MET (False) or not measured (None)."""
    out: list[tuple[str, bool | None]] = []
    for kind, at_least, p99_under in (("revocation", 1.0, 10.0), ("introspection", 1.5, 5.0)):
        points = main.get(kind, {})
        ours, peer = points.get("ours"), points.get("peer")
        r = ratio(ours, peer)
        out.append(
            (f"{kind}: ours >= {at_least:.1f}x the peer", None if r is None else r >= at_least)
        )
        out.append(
            (
                f"{kind}: ours p99 < {p99_under:.0f} ms",
                None if ours is None else ours.p99_ms < p99_under,
            )
        )
    for form, share in flatness(tenants).items():
        out.append(
            (
                f"tenants, {FORM_TITLES[form]}: within {FLAT_WITHIN:.0%} of the first count",
                share >= 1 - FLAT_WITHIN,
            )
        )
    if len(tokens) > 1:
        series = list(tokens.values())
        lowest = min(ratio(p, series[0]) or 0.0 for p in series)
        out.append(
            (f"tokens: within {FLAT_WITHIN:.0%} of the first count", lowest >= 1 - FLAT_WITHIN)
        )
    if store != "sqlite":
        out = [(f"{name} (aims are set for the embedded store)", None) for name, _ in out]
    return out


def render(
    main: Mapping[str, Mapping[str, Point]],
    tenants: Mapping[int, Mapping[str, Point]],
    tokens: Mapping[int, Point],
    *,
    peer_title: str,
    workers: int,
    connections: int,
    store: str,
) -> str:
    """Every table, and the aims, as Markdown."""
    blocks: list[Sequence[str]] = []
    if main:
        blocks.append(comparison_table(main, peer_title, workers, connections))
    if tenants:
        blocks.append(tenant_table(tenants))
    if tokens:
        blocks.append(token_table(tokens))
    verdicts = {True: "MET", False: "NOT MET", None: "not measured"}
    blocks.append(
        [f"- {name}: {verdicts[met]}" for name, met in aims(main, tenants, tokens, store)]
    )
    return "\n\n".join("\n".join(block) for block in blocks)
