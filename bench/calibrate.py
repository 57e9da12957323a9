"""Calibration: the 2013 ab commands against the 2013 replica and the `jnu-2013` school.

    python -m bench calibrate [--repeat 5]

Runs `ab -c 3 -n 10` and `ab -c 5 -n 50` (the commands of the 2013 log) against
the replica `--repeat` times each, with a fresh school each round, and compares
the pooled requests/s and share of failed requests with the 2013 figures
(target: within +-40%). Writes bench/results/<time>-calibration.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import load, procs
from bench.procs import SINGLE_STUDENT
from bench.run import RESULTS, machine_facts, school_settings

# The 2013 log: (concurrency, requests) -> (requests/s, failed, mean ms, median ms, longest ms)
LOG_2013: dict[tuple[int, int], dict[str, float]] = {
    (3, 10): {"rps": 2.31, "failed": 1, "mean_ms": 1300.574, "p50_ms": 1134, "max_ms": 3045},
    (5, 50): {"rps": 0.88, "failed": 13, "mean_ms": 5676.625, "p50_ms": 3293, "max_ms": 25740},
}
TOLERANCE = 0.40


def calibrate(repeat: int, overrides: list[str], seed0: int = 2013) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jnufm-calibrate-") as tmp_name:
        tmp = Path(tmp_name)
        for i in range(repeat):
            school = procs.start_school(tmp, "jnu-2013", seed0 + i, overrides)
            try:
                replica = procs.start_replica(tmp, school.url)
                try:
                    for c, n in LOG_2013:
                        school.wait_idle()
                        school.reset()
                        url = replica.url + load.balance_path(SINGLE_STUDENT)
                        r = load.ab(url, c, n, 300)
                        stats = school.stats()
                        row = {"round": i, "c": c, "n": n, **r.as_dict()}
                        row["school_requests"] = stats["requests"]
                        row["school_errors"] = stats["errors"]
                        row["school_peak_in_flight"] = stats["peak_in_flight"]
                        rounds.append(row)
                        print(
                            f"round {i}: ab -c {c} -n {n}: {r.rps:.2f} req/s, "
                            f"{r.bad} of {r.completed} failed, mean {r.mean_ms} ms, "
                            f"median {r.p50_ms} ms, longest {r.max_ms} ms",
                            flush=True,
                        )
                finally:
                    replica.stop()
            finally:
                school.stop()
    summary = []
    for (c, n), ref in LOG_2013.items():
        rows = [r for r in rounds if r["c"] == c and r["n"] == n]
        done = sum(r["completed"] for r in rows)
        secs = sum(r["seconds"] for r in rows)
        failed = sum(r["failed"] for r in rows)
        rps = done / secs if secs else 0.0
        share = failed / done if done else 0.0
        ref_share = ref["failed"] / n
        summary.append(
            {
                "command": f"ab -c {c} -n {n}",
                "rounds": len(rows),
                "rps": round(rps, 3),
                "rps_2013": ref["rps"],
                "rps_ratio": round(rps / ref["rps"], 3),
                "failed_share": round(share, 3),
                "failed_share_2013": round(ref_share, 3),
                "failed_ratio": round(share / ref_share, 3),
                "mean_ms": round(sum(r["mean_ms"] or 0 for r in rows) / len(rows)),
                "mean_ms_2013": ref["mean_ms"],
                "within_40pct": abs(rps / ref["rps"] - 1) <= TOLERANCE
                and abs(share / ref_share - 1) <= TOLERANCE,
            }
        )
    return {"rounds": rounds, "summary": summary}


def table(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| command | rounds | req/s replica | req/s 2013 | ratio | failed replica | "
        "failed 2013 | ratio | mean ms replica | mean ms 2013 | within +-40% |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| `{s['command']}` | {s['rounds']} | {s['rps']:.2f} | {s['rps_2013']:.2f} "
            f"| {s['rps_ratio']:.2f} | {100 * s['failed_share']:.1f}% "
            f"| {100 * s['failed_share_2013']:.1f}% | {s['failed_ratio']:.2f} "
            f"| {s['mean_ms']} | {s['mean_ms_2013']:.0f} | {'yes' if s['within_40pct'] else 'no'} |"
        )
    return "\n".join(lines)


def main_calibrate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench calibrate")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of both commands")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a school setting (to explore a new calibration)",
    )
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    result = calibrate(args.repeat, args.set)
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "kind": "calibration",
        "machine": machine_facts(),
        "school_profile": school_settings("jnu-2013"),
        "school_overrides": args.set,
        "log_2013": {f"ab -c {c} -n {n}": v for (c, n), v in LOG_2013.items()},
        **result,
        "duration_s": round(time.monotonic() - t0, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}-calibration.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print()
    print(table(result["summary"]))
    print(f"\nresults: {path}")
    return 0 if all(s["within_40pct"] for s in result["summary"]) else 1
