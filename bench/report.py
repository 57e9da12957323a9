"""Markdown tables and plots from a results JSON.

    python -m bench report bench/results/<run>.json [--docs docs/benchmarks.md]

Prints the tables; with --docs, also rewrites the part of that file between
`<!-- bench:results:begin -->` and `<!-- bench:results:end -->` and the PNG
plots beside it (docs/bench-throughput.png, docs/bench-p99.png) from the card
center's workloads, and the part between `<!-- bench:schools:begin -->` and
`<!-- bench:schools:end -->` from the workloads on the other school systems
(term-start, search), and the part between `<!-- bench:gateway:begin -->` and
`<!-- bench:gateway:end -->` from the gateway workload, and the part between
`<!-- bench:wechat:begin -->` and `<!-- bench:wechat:end -->` from the wechat
workload, and those between `<!-- bench:feeds:begin -->` / `<!-- bench:feeds:end -->`
and `<!-- bench:prefetch:begin -->` / `<!-- bench:prefetch:end -->` from the feeds and
term-start-prefetched workloads. A run without a kind leaves its part as it is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"
SCHOOLS_BEGIN = "<!-- bench:schools:begin -->"
SCHOOLS_END = "<!-- bench:schools:end -->"
GATEWAY_BEGIN = "<!-- bench:gateway:begin -->"
GATEWAY_END = "<!-- bench:gateway:end -->"
GATEWAY = "gateway"  # the workload's kind and key
WECHAT_BEGIN = "<!-- bench:wechat:begin -->"
WECHAT_END = "<!-- bench:wechat:end -->"
FEEDS_BEGIN = "<!-- bench:feeds:begin -->"
FEEDS_END = "<!-- bench:feeds:end -->"
PREFETCH_BEGIN = "<!-- bench:prefetch:begin -->"
PREFETCH_END = "<!-- bench:prefetch:end -->"
# Workloads with tables of their own, left out of the card center's and the schools'.
OWN_TABLES = (GATEWAY, "wechat", "watch", "feeds", "term-start-prefetched")
# The 429 codes that refuse a password for a lockout or a limit (bench/gateway.py).
GATEWAY_LIMIT_CODES = ("too_many_failed_logins", "rate_limited", "client_slowed")
# The target for one worker's private pages (USS) after the whole run, system (c).
USS_TARGET_MB = 32
SHORT = {"replica": "a", "no-reuse": "b", "default": "c", "hello": "d", "nginx": "e"}


def _by(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["system"], r["workload"]): r for r in doc["results"]}


def _ratio(x: float | None, y: float | None) -> str:
    if not x or not y:
        return "-"
    q = x / y
    if q < 0.1:
        return f"{q:.2g}x"
    return f"{q:.0f}x" if q >= 100 else f"{q:.2f}x" if q < 10 else f"{q:.1f}x"


def fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if digits or v >= 10 else f"{v:.2f}"
    return str(v)


def ratio_table(doc: dict[str, Any]) -> str:
    """Requests/s ratios measured within the run (machine-independent-ish)."""
    by = _by(doc)
    pairs = [
        ("default", "replica", "(c)/(a) jnufm / 2013"),
        ("no-reuse", "replica", "(b)/(a) new architecture / 2013"),
        ("default", "no-reuse", "(c)/(b) reuse features"),
        ("default", "hello", "(c)/(d) jnufm / Tornado ceiling"),
        ("hello", "nginx", "(d)/(e) Tornado / machine ceiling"),
    ]
    pairs = [p for p in pairs if p[0] in doc["systems"] and p[1] in doc["systems"]]
    head = "| workload | " + " | ".join(p[2] for p in pairs) + " |"
    lines = [head, "|---|" + "---|" * len(pairs)]
    for wl in doc["workloads"]:
        cells = []
        for x, y, _ in pairs:
            rx, ry = by.get((x, wl["key"])), by.get((y, wl["key"]))
            cells.append(_ratio(rx["rps"] if rx else None, ry["rps"] if ry else None))
        lines.append(f"| {wl['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def full_table(doc: dict[str, Any]) -> str:
    """Every figure of every (workload, system) pair."""
    by = _by(doc)
    lines = [
        "| workload | system | req/s | p50 ms | p99 ms | failed / done | school req per answer "
        "| school peak in flight | per worker (busiest/least) | RSS MB per worker | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for wl in doc["workloads"]:
        for sys_key in doc["systems"]:
            r = by.get((sys_key, wl["key"]))
            if r is None:
                continue
            workers = sorted(r["per_worker"].values(), reverse=True)
            bal = fmt(r["busiest_over_least"])
            rss = sorted(r["rss_mb"].values(), reverse=True)
            rss_text = f"{max(rss):.0f}" + (f" (min {min(rss):.0f})" if len(rss) > 1 else "")
            lines.append(
                f"| {wl['label']} | ({SHORT.get(sys_key, '?')}) {sys_key} | {r['rps']:.2f} "
                f"| {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {r['failed']} / {r['completed']} "
                f"| {fmt(r.get('school_requests_per_answer'))} "
                f"| {fmt(r.get('school_peak_in_flight'))} "
                f"| {'/'.join(map(str, workers))} ({bal}) "
                f"| {rss_text if rss else '-'} | {'; '.join(r['notes'])} |"
            )
    return "\n".join(lines)


SCHOOL_NAMES = {"academic": "academic office", "opac": "main catalogue"}


def _school_counts(r: dict[str, Any]) -> str:
    c = r.get("school_counts") or {}
    parts = [f"{r['school_requests']} requests"] if "school_requests" in r else []
    if "captcha_fetches" in c:
        parts.append(f"logins {c['logins_ok']} ok / {c.get('logins_failed', 0)} refused")
    if c.get("captcha_fetches"):
        parts.append(f"captchas {c['captcha_fetches']} ({c.get('captcha_wrong', 0)} wrong)")
    if "searches" in c:
        parts.append(f"searches {c['searches']}, record pages {c.get('records', 0)}")
    errors = r.get("school_errors") or {}
    shed = errors.get("overload", 0)
    if shed:
        parts.append(f"{shed} shed (overload)")
    return "; ".join(parts) or "-"


def _failed_statuses(r: dict[str, Any]) -> str:
    """The server's non-2xx answers by status (its access log), e.g. " (500: 300)"."""
    bad = {k: v for k, v in (r.get("statuses") or {}).items() if not k.startswith("2") and v}
    return " (" + ", ".join(f"{k}: {v}" for k, v in sorted(bad.items())) + ")" if bad else ""


def school_table(doc: dict[str, Any]) -> str:
    """The workloads on school systems other than the card center: jnufm (c) vs 2013 (a)."""
    by = _by(doc)
    lines = [
        "| workload | system | answers/s | (c)/(a) answers/s | p50 ms | p99 ms "
        "| failed / empty / done "
        "| school | school req per answer | school peak in flight (jnufm budget) "
        "| at the school | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for wl in doc["workloads"]:
        if wl.get("school", "card") == "card":
            continue
        c, a = by.get(("default", wl["key"])), by.get(("replica", wl["key"]))
        ca, aa = (c or {}).get("answers_per_s"), (a or {}).get("answers_per_s")
        ratio = "(a) none" if ca and aa == 0 else _ratio(ca, aa)
        for sys_key in doc["systems"]:
            r = by.get((sys_key, wl["key"]))
            if r is None:
                continue
            budget = r.get("school_budget")
            peak = fmt(r.get("school_peak_in_flight")) + (
                f" ({budget})" if budget is not None else ""
            )
            lines.append(
                f"| {wl['label']} | ({SHORT.get(sys_key, '?')}) {sys_key} "
                f"| {fmt(r.get('answers_per_s'))} | {ratio if sys_key == 'default' else ''} "
                f"| {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} "
                f"| {r['failed']}{_failed_statuses(r)} / {r.get('empty', 0)} / {r['completed']} "
                f"| {SCHOOL_NAMES.get(r.get('school', ''), r.get('school', '-'))} "
                f"| {fmt(r.get('school_requests_per_answer'))} | {peak} "
                f"| {_school_counts(r)} | {'; '.join(r['notes'])} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


def search_facts(doc: dict[str, Any]) -> str:
    """One line on the search run's queries."""
    out = []
    for key, q in (doc.get("search_queries") or {}).items():
        line = (
            f"`{key}`: {q['sequence']} queries drawn (seed {q['seed']}) over {q['vocabulary']} "
            f"title words, Zipf s = {q['zipf_s']}: {q['distinct_queries']} distinct, the top "
            f"word ({q['top_query']}) {100 * q['top_query_share']:.1f}% of them"
        )
        if "median_hits" in q:
            line += (
                f"; the catalogue finds a median of {q['median_hits']} books a word, "
                f"{q['words_without_hits']} words none, and answers "
                f"{100 * q['single_hit_share_of_sequence']:.1f}% of the queries with a record "
                "page (one hit)"
            )
        out.append(line + ".")
    judge = doc.get("replica_jwc_login_judge")
    if judge:
        # Older runs wrote the lengths as a Python dict.
        judge = re.sub(r"'(\w+)': (\d+)", r"\1 \2", judge).replace("{", "(").replace("}", ")")
        out.append(f"The replica judged academic office logins by {judge}.")
    return " ".join(out)


def targets_table(doc: dict[str, Any]) -> str:
    """The performance targets, checked against system (c) of this run."""
    by = _by(doc)

    def get(system: str, wl: str) -> dict[str, Any] | None:
        return by.get((system, wl))

    rows: list[tuple[str, str, bool | None]] = []
    c, d = get("default", "wrk-warm-c100"), get("hello", "wrk-warm-c100")
    if c and d:
        q = c["rps"] / d["rps"] if d["rps"] else 0.0
        idle = [pid for pid, n in d.get("per_worker", {}).items() if n == 0]
        if idle and len(d.get("per_worker", {})) > 1:
            # Tornado's plain shared socket let one hello-world worker take every
            # connection: its "ceiling" used one core, and no ratio to it means anything.
            rows.append(
                (
                    "warm balance query (wrk -c 100): (c) >= 80% of (d) req/s",
                    f"{100 * q:.1f}% ({c['rps']:.1f} vs {d['rps']:.1f} req/s), not "
                    f"comparable: {len(idle)} hello-world worker(s) served nothing (the "
                    "kernel gave every connection to one); re-run",
                    None,
                )
            )
        else:
            rows.append(
                (
                    "warm balance query (wrk -c 100): (c) >= 80% of (d) req/s",
                    f"{100 * q:.1f}% ({c['rps']:.1f} vs {d['rps']:.1f} req/s)",
                    q >= 0.8,
                )
            )
    c, a = get("default", "ab-c5-n5000"), get("replica", "ab-c5-n5000")
    if c and a:
        q = c["rps"] / a["rps"] if a["rps"] else 0.0
        rows.append(
            (
                "ab -c 5 -n 5000, one student: (c) zero failed and >= 1000x (a) req/s",
                f"{c['failed']} failed of {c['completed']}; {q:.2f}x "
                f"({c['rps']:.2f} vs {a['rps']:.2f} req/s)",
                c["failed"] == 0 and q >= 1000,
            )
        )
    c, a = get("default", "cold-1000"), get("replica", "cold-1000")
    if c and a:
        q = c["rps"] / a["rps"] if a["rps"] else 0.0
        per = c.get("school_requests_per_answer")
        rows.append(
            (
                "cold run, 1,000 students: (c) zero failed, >= 3x (a) req/s, "
                "school requests per query <= 1.5",
                f"{c['failed']} failed of {c['completed']}; {q:.2f}x; "
                f"{per if per is not None else 'no answer'} school requests per answer",
                c["failed"] == 0 and q >= 3 and per is not None and per <= 1.5,
            )
        )
    spread = [
        (r["busiest_over_least"], r["workload"])
        for (s, _), r in by.items()
        if s == "default" and r["completed"] >= 50 and r["busiest_over_least"] is not None
    ]
    if spread:
        worst = max(spread)
        rows.append(
            (
                "requests per worker, busiest/least <= 1.2 ((c), runs of >= 50 requests)",
                f"worst {worst[0]:.2f} ({worst[1]})",
                worst[0] <= 1.2,
            )
        )
    rss = [
        (mb, r["workload"])
        for (s, _), r in by.items()
        if s == "default"
        for mb in r["rss_mb"].values()
    ]
    if rss:
        top = max(rss)
        rows.append(
            ("RSS per worker <= 80 MB ((c))", f"{top[0]:.1f} MB (after {top[1]})", top[0] <= 80)
        )
    uss = [
        (mem["uss"], mem.get("pss"), r["workload"])
        for (s, _), r in by.items()
        if s == "default"
        for mem in r.get("memory_mb", {}).values()
    ]
    if uss:
        most, most_pss, after = max(uss, key=lambda u: u[0])
        pss = f", PSS {most_pss:.1f} MB" if most_pss is not None else ""
        rows.append(
            (
                f"USS per worker <= {USS_TARGET_MB} MB ((c): its private pages; PSS beside)",
                f"{most:.1f} MB{pss} (after {after})",
                most <= USS_TARGET_MB,
            )
        )
    lines = ["| target | this run | met |", "|---|---|---|"]
    for name, figure, ok in rows:
        verdict = "unknown" if ok is None else "yes" if ok else "not met yet"
        lines.append(f"| {name} | {figure} | {verdict} |")
    return "\n".join(lines)


def memory_table(doc: dict[str, Any]) -> str:
    """System (c)'s memory over its workloads: the largest worker, the master and the
    simulator (read at the same moments), each at its largest USS; empty without
    figures (the master's and the simulator's are missing from older result files)."""
    found: dict[str, tuple[dict[str, float], str]] = {}

    def keep(name: str, mem: dict[str, float] | None, workload: str) -> None:
        if mem and (name not in found or mem["uss"] > found[name][0]["uss"]):
            found[name] = (mem, workload)

    for (s, _), r in _by(doc).items():
        if s != "default":
            continue
        for mem in (r.get("memory_mb") or {}).values():
            keep("worker (largest)", mem, r["workload"])
        keep("master", r.get("master_memory_mb"), r["workload"])
        keep("simulator (the school)", r.get("school_memory_mb"), r["workload"])
    if not found:
        return ""
    lines = [
        "| process ((c)) | USS MB | PSS MB | RSS MB | largest USS after |",
        "|---|---|---|---|---|",
    ]
    for name, (mem, workload) in found.items():
        lines.append(
            f"| {name} | {mem['uss']:.1f} | {fmt(mem.get('pss'), 1)} | {fmt(mem.get('rss'), 1)} "
            f"| {workload} |"
        )
    return "\n".join(lines)


def facts(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    v = m["versions"]
    return (
        f"Run `{doc['mode']}` of {doc['started']} ({doc.get('duration_s', '?')} s): "
        f"{m['cores']} cores, {m['cpu']}, Linux {m['kernel']}; Python {v['python']}, "
        f"Tornado {v['tornado']}, gevent {v.get('gevent')}, {m['nginx']}, {m['ab']}, "
        f"{m['wrk']}. jnufm and hello-world: {doc['processes']} processes; replica: "
        f"{doc['replica_instances']} instances; database: {doc['database']}."
    )


def _without_gateway(doc: dict[str, Any]) -> dict[str, Any]:
    """The run without the gateway and wechat workloads (their own tables)."""
    return {
        **doc,
        "workloads": [w for w in doc["workloads"] if w.get("kind") not in OWN_TABLES],
        "results": [r for r in doc["results"] if r["workload"] not in OWN_TABLES],
    }


def _card_only(doc: dict[str, Any]) -> dict[str, Any]:
    doc = _without_gateway(doc)
    keys = {w["key"] for w in doc["workloads"] if w.get("school", "card") == "card"}
    return {
        **doc,
        "workloads": [w for w in doc["workloads"] if w["key"] in keys],
        "results": [r for r in doc["results"] if r["workload"] in keys],
    }


def has_card(doc: dict[str, Any]) -> bool:
    return any(
        w.get("school", "card") == "card" and w.get("kind") not in OWN_TABLES
        for w in doc["workloads"]
    )


def _codes(counts: dict[str, int] | None) -> str:
    """Answers by status and error code: "200: 1181, 504 school_timeout: 100"."""
    return ", ".join(f"{k}: {v}" for k, v in (counts or {}).items()) or "-"


def gateway_table(doc: dict[str, Any]) -> str:
    """The gateway workload: each system and case, what the right and the wrong passwords
    got, the refusals, the school."""
    rows = [r for r in doc["results"] if r["workload"] == GATEWAY]
    if not rows:
        return ""
    lines = [
        "| system | case | answers/s | p50 ms | p99 ms | right passwords: answers | "
        "right refused by a lockout or limit | wrong passwords: answers | wrong answered 401 "
        "| wrong judged / failed-login limit at the end "
        "| students answered / asked (mistypers reached) | school req per answer "
        "| school peak in flight (budget) | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        budget = r.get("school_budget")
        peak = fmt(r.get("school_peak_in_flight")) + (
            f" ({budget})" if budget is not None else " (none)"
        )
        refused = r.get("right_refused_429") or {}
        other = {k: v for k, v in refused.items() if k not in GATEWAY_LIMIT_CODES}
        lines.append(
            f"| ({SHORT.get(r['system'], '?')}) {r['system']} | {r.get('case_label', r['case'])} "
            f"| {fmt(r.get('answers_per_s'))} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} "
            f"| {_codes(r.get('right'))} "
            f"| {r['right_refused_by_limits']}"
            + (f" (and 429 {_codes(other)})" if other else "")
            + f" | {_codes(r.get('wrong'))} | {r['wrong_answered_401']} of {r['wrong_sent']} "
            f"| {_limit(r)} "
            f"| {r['students_answered']} / {r['students_asked']} ({r['mistypers_reached']}) "
            f"| {fmt(r.get('school_requests_per_answer'))} | {peak} "
            f"| {'; '.join(r['notes'])} |"
        )
    return "\n".join(lines)


def _limit(r: dict[str, Any]) -> str:
    """Wrong passwords judged against the limit they count towards."""
    limit = r.get("failed_login_limit")
    if not limit:
        return "no limit (2013)" if r["system"] == "replica" else "-"
    if "clients.failures_max" in limit:
        return f"{limit['wrong_judged']} / {limit['clients.failures_max']} (client's budget)"
    return (
        f"{limit['wrong_judged']} / {fmt(limit['allowance_at_end'])} (address: "
        f"{limit['limits.failed_logins_ip_max']} + {limit['limits.failed_logins_ip_per_student']}"
        f" x {limit['students_proven']} students, at most "
        f"{limit['limits.failed_logins_ip_ceiling']})"
    )


def gateway_latency(doc: dict[str, Any]) -> str:
    """Latency of right passwords, split: students not answered yet vs answered before."""
    rows = [r for r in doc["results"] if r["workload"] == GATEWAY]
    lines = [
        "| system | case | right passwords, student not answered yet: asks, p50 / p99 ms "
        "| student answered before: asks, p50 / p99 ms | school requests (logins ok / refused) "
        "| access lines by client |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        logins = r.get("school_logins") or {}
        named = r.get("access_lines_by_client")
        lines.append(
            f"| ({SHORT.get(r['system'], '?')}) {r['system']} | {r['case']} "
            f"| {r.get('cold_asks')}, {fmt(r.get('cold_p50_ms'))} / {fmt(r.get('cold_p99_ms'))} "
            f"| {r.get('warm_asks')}, {fmt(r.get('warm_p50_ms'))} / "
            f"{fmt(r.get('warm_p99_ms'))} "
            f"| {r.get('school_requests')} ({logins.get('ok')} / {logins.get('refused')}) "
            f"| {_codes(named) if named else '- (not logged)'} |"
        )
    return "\n".join(lines)


def gateway_facts(doc: dict[str, Any]) -> str:
    out = []
    for key, p in (doc.get("gateway_plans") or {}).items():
        out.append(
            f"`{key}`: {p['students']:,} students ({p['mistypers']} mistype once), "
            f"{p['asks']:,} asks in the plan ({p['right_password_asks']:,} right passwords, "
            f"{p['wrong_password_asks']} wrong), repeats Zipf s = {p['zipf_s']} (seed "
            f"{p['seed']}): the most popular student {100 * p['top_student_share']:.1f}% of the "
            f"right passwords, {p['students_asking_once']:,} students ask once."
        )
    return " ".join(out)


def gateway_part(doc: dict[str, Any]) -> str:
    table = gateway_table(doc)
    if not table:
        return ""
    parts = [
        "Gateway: one address, the 2013 balance URL, -c 50 (answers/s: 2xx answers with "
        "data a second; answers by status and error code, as the load generator got them):",
        table,
        gateway_latency(doc),
    ]
    facts_line = gateway_facts(doc)
    if facts_line:
        parts.append(facts_line)
    return "\n\n".join(parts)


def schools_part(doc: dict[str, Any]) -> str:
    """The workloads on the other school systems: their table and the query facts."""
    schools = school_table(doc)
    if not schools:
        return ""
    parts = [
        "Other school systems, jnufm (c) against 2013 (a) (answers/s: 2xx answers with "
        "data a second; school figures from the simulator's side endpoints of that "
        "system):",
        schools,
    ]
    facts_line = search_facts(doc)
    if facts_line:
        parts.append(facts_line)
    return "\n\n".join(parts)


def card_part(doc: dict[str, Any]) -> str:
    """The card center's workloads: ratios, targets and every figure."""
    card = _card_only(doc)
    return "\n\n".join(
        [
            "Requests/s ratios (same run):",
            ratio_table(card),
            "Targets (system (c) of this run; spread and memory over every workload of it):",
            targets_table(_without_gateway(doc)),
            *memory_part(_without_gateway(doc)),
            "All figures:",
            full_table(card),
        ]
    )


def memory_part(doc: dict[str, Any]) -> list[str]:
    """The memory lines (a heading and memory_table), none without figures."""
    memory = memory_table(doc)
    return (
        ["Memory (USS: private pages; PSS: with a fair share of the shared ones):", memory]
        if memory
        else []
    )


def table(doc: dict[str, Any]) -> str:
    """The text printed at the end of a run (and, in two parts, written into
    docs/benchmarks.md)."""
    parts = [facts(doc)]
    if has_card(doc):
        parts.append(card_part(doc))
    schools = schools_part(_without_gateway(doc))
    if schools:
        parts.append(schools)
    gateway = gateway_part(doc)
    if gateway:
        parts.append(gateway)
    chat = wechat_table(doc)
    if chat:
        parts.append(chat)
    from bench import watch

    watched = watch.table(doc)
    if watched:
        parts.append(watched)
    parts += [t for t in own_tables(doc).values() if t]
    return "\n\n".join(parts)


def own_tables(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """The feeds and term-start-prefetched tables (empty without their results), by the
    markers of their part of docs/benchmarks.md."""
    from bench import feeds, prefetch

    return {
        (FEEDS_BEGIN, FEEDS_END): feeds.table(doc),
        (PREFETCH_BEGIN, PREFETCH_END): prefetch.table(doc),
    }


def wechat_table(doc: dict[str, Any]) -> str:
    """The wechat workload's tables (bench/wechat.py), empty without its result."""
    from bench import wechat

    return wechat.table(doc)


def plots(doc: dict[str, Any], outdir: Path) -> list[Path]:
    """Grouped bar charts, log scale: throughput and p99 per system per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = _by(doc)
    systems = list(doc["systems"])
    wls = doc["workloads"]
    written = []
    for metric, title, fname in (
        ("rps", "requests/s (log scale)", "bench-throughput.png"),
        ("p99_ms", "p99 latency, ms (log scale)", "bench-p99.png"),
    ):
        fig, ax = plt.subplots(figsize=(11, 4.8))
        width = 0.8 / max(1, len(systems))
        for i, s in enumerate(systems):
            vals = []
            for wl in wls:
                r = by.get((s, wl["key"]))
                vals.append((r or {}).get(metric) or 0)
            xs = [j + i * width for j in range(len(wls))]
            ax.bar(xs, vals, width, label=f"({SHORT.get(s, '?')}) {s}")
        ax.set_yscale("log")
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(wls))])
        ax.set_xticklabels([w["label"] for w in wls], rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{title} — {doc['mode']} run {doc['started']}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = outdir / fname
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def _replace(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    return re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _m: body, text, flags=re.S)


def update_docs(doc: dict[str, Any], docs_path: Path, results_name: str) -> None:
    """Replace the generated sections of docs_path (those this run has workloads for) and
    write the plots of the card center's workloads beside it."""
    text = docs_path.read_text() if docs_path.exists() else "# Benchmarks\n"
    note = (
        f"<!-- generated by `python -m bench report {results_name} --docs "
        f"{docs_path.name}`; do not edit by hand -->"
    )
    if has_card(doc):
        card = _card_only(doc)
        paths = plots(card, docs_path.parent)
        images = "\n".join(f"![{p.stem}]({p.name})" for p in paths)
        body = f"{BEGIN}\n{note}\n\n{facts(doc)}\n\n{card_part(doc)}\n\n{images}\n{END}"
        text = _replace(text, BEGIN, END, body)
    schools = schools_part(_without_gateway(doc))
    if schools:
        body = f"{SCHOOLS_BEGIN}\n{note}\n\n{facts(doc)}\n\n{schools}\n{SCHOOLS_END}"
        text = _replace(text, SCHOOLS_BEGIN, SCHOOLS_END, body)
    gateway = gateway_part(doc)
    if gateway:
        body = f"{GATEWAY_BEGIN}\n{note}\n\n{facts(doc)}\n\n{gateway}\n{GATEWAY_END}"
        text = _replace(text, GATEWAY_BEGIN, GATEWAY_END, body)
    chat = wechat_table(doc)
    if chat:
        body = f"{WECHAT_BEGIN}\n{note}\n\n{facts(doc)}\n\n{chat}\n{WECHAT_END}"
        text = _replace(text, WECHAT_BEGIN, WECHAT_END, body)
    for (begin, end), part in own_tables(doc).items():
        if part:
            text = _replace(text, begin, end, f"{begin}\n{note}\n\n{facts(doc)}\n\n{part}\n{end}")
    docs_path.write_text(text)


def main_report(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench report")
    parser.add_argument("results", type=Path, help="a results JSON from bench/results/")
    parser.add_argument("--docs", type=Path, help="rewrite the generated part of this file")
    args = parser.parse_args(argv)
    doc = json.loads(args.results.read_text())
    print(table(doc))
    if args.docs:
        name = args.results.as_posix()
        if "bench/results/" in name:
            name = "bench/results/" + name.split("bench/results/", 1)[1]
        update_docs(doc, args.docs, name)
        print(f"\nwrote {args.docs} and its plots")
    return 0
