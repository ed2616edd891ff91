"""The rehearsal's results: a JSON report (per flow: intended, observed, verdict; timings per phase)
and the terminal table (every flow intended open, every mismatch, and a summary of the rest)."""
from __future__ import annotations

from collections import Counter

from lab.checks import Check
from lab.probe import Observation


def flow_entry(o: Observation) -> dict:
    p, e = o.expectation.probe, o.expectation
    return {
        "flow": p.label(), "source": p.source.name, "source_address": p.source.address, "dest": p.dest,
        "dest_address": p.dest_address, "interface": p.interface, "proto": p.proto, "port": p.port, "kind": p.kind,
        "target": p.target, "intended": "open" if e.allowed else "closed", "because": e.because,
        "observed": o.observed, "detail": o.detail, "verdict": "ok" if o.ok else "MISMATCH",
    }


def build(stack: str, info: dict, observations: list[Observation], checks: list[tuple[Check, bool, str]],
          postdeploy: dict, error: str | None = None) -> dict:
    mismatches = [o.expectation.probe.label() + ": " + o.why() for o in observations if not o.ok]
    failed_checks = [f"{c.name}: {seen}" for c, ok, seen in checks if not ok]
    post_failed = postdeploy.get("status") == "failed"
    ok = not mismatches and not failed_checks and not post_failed and error is None and bool(observations)
    return {
        "stack": stack,
        "result": "green" if ok else "red",
        "error": error,
        "timings": info.get("timings", {}),
        "probes": len(observations),
        "observed": dict(Counter(o.observed for o in observations)),
        "mismatches": mismatches,
        "checks": [{"check": c.name, "ok": ok, "seen": seen} for c, ok, seen in checks],
        "failed_checks": failed_checks,
        "services": info.get("services", {}),
        "php_standin": info.get("php_standin", []),
        "postdeploy": postdeploy,
        "flows": [flow_entry(o) for o in observations],
    }


def table(observations: list[Observation]) -> str:
    """Rows for every flow intended open and every mismatch; the intended-closed rest summed up."""
    rows = [o for o in observations if o.expectation.allowed or not o.ok]
    width = max([len(o.expectation.probe.label()) for o in rows] + [4])
    lines = [f"{'flow':<{width}}  {'intended':<8}  {'observed':<9}  verdict"]
    for o in rows:
        verdict = "ok" if o.ok else "MISMATCH  " + o.why()
        lines.append(f"{o.expectation.probe.label():<{width}}  {'open' if o.expectation.allowed else 'closed':<8}  "
                     f"{o.observed:<9}  {verdict}")
    closed = [o for o in observations if not o.expectation.allowed and o.ok]
    how = Counter(o.observed for o in closed)
    lines.append(f"... and {len(closed)} more flows intended closed, all blocked "
                 f"({', '.join(f'{n} {k}' for k, n in sorted(how.items()))})")
    return "\n".join(lines)


def summary(report: dict) -> str:
    t = report["timings"]
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in t.items())
    lines = [f"stack {report['stack']}: {report['probes']} probes, {len(report['mismatches'])} mismatches, "
             f"{sum(1 for c in report['checks'] if c['ok'])}/{len(report['checks'])} checks passed; "
             f"post-deploy suite: {report['postdeploy'].get('status', 'not run')}", f"timings: {phases}"]
    stand = sorted({f"{h}: {', '.join(s['stand_ins'])}" for h, s in report["services"].items() if s["stand_ins"]})
    if stand:
        lines.append("stand-in listeners (no real daemon in the lab): " + "; ".join(stand))
    if report["php_standin"]:
        lines.append("stand-in for php-fpm + WordPress (FastCGI) at " + ", ".join(report["php_standin"]))
    for m in report["mismatches"]:
        lines.append(f"MISMATCH {m}")
    for c in report["failed_checks"]:
        lines.append(f"FAILED CHECK {c}")
    if report["error"]:
        lines.append(f"ERROR {report['error']}")
    lines.append(f"REHEARSAL {'GREEN' if report['result'] == 'green' else 'RED'}")
    return "\n".join(lines)
