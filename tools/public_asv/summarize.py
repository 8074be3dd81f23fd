"""Summarize what the tracker and asv said about one project's public results.

    python tools/public_asv/summarize.py PROJECT_DIR

Reads, in ``PROJECT_DIR``: ``p95.json`` (``kvcache-tracker p95 --json``), ``p95.stdout`` and
``p95.stderr``, ``gates.jsonl`` (``gate_pairs.py``), ``html/regressions.json`` and
``html/index.json`` (``asv publish``), ``results/`` and ``standin-map.json`` when there is
one. Writes ``summary.json`` and ``summary.md``:

- every flag and tentative flag, with the evidence behind it: whether the benchmark's asv
  ``version`` changed between the flagged commit and the point before it (asv starts a new
  series there), whether the benchmark is retired (absent from benchmarks.json), the series
  around the commit, how much of what follows stays at the new level (``held``), how much of
  what came before was already at it (``seen_before``), and a suggested reading;
- the gate over neighbouring commits, per machine: pairs, failures, errors, and for each
  flagged row whether the version changed and whether the rise was still there at the next
  commit measured on that machine;
- asv's own regressions (its step detection on the median, ``regressions.json``: the
  regressions that still stand at the newest commit), per machine, and whether the tracker
  flagged the same benchmark;
- what the tracker printed: its warnings (count, longest line) and flags whose levels print
  as equal numbers.

The suggested readings are rules of thumb over the series, to sort what to look at; the
series context printed beside each is what decides.
"""

import json
import math
import os
import re
import sys
from collections import Counter, defaultdict

CONTEXT = 4  # points shown on each side of a flagged commit
HELD_WINDOW = 10  # points after a flag judged for ``held``
NEAR = 0.05  # "at a level": within 5% of it


def load_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def base_name(benchmark):
    """asv's benchmark name without its parameters: ``mod.Class.time_x('a', 1)`` -> ``mod.Class.time_x``."""
    return benchmark.split("(", 1)[0]


SAME_RUN_S = 3600  # two commits whose benchmarks started within this were measured in one run


def read_versions(results_dir, started=None):
    """``{(machine, env, commit): {benchmark name: asv version}}`` from the results files; fills
    ``started`` with ``{(machine, commit): the median time its benchmarks started, in s}``."""
    versions, starts = {}, defaultdict(list)
    for machine in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, machine)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if not name.endswith(".json") or name == "machine.json":
                continue
            d = load_json(os.path.join(folder, name))
            columns = d.get("result_columns") or []
            if "started_at" in columns:
                t = columns.index("started_at")
                starts[(d["params"]["machine"], d["commit_hash"])] += [
                    row[t] / 1000 for row in d.get("results", {}).values() if isinstance(row, list) and len(row) > t and row[t]
                ]
            if "version" not in columns:
                continue
            at = columns.index("version")
            key = (d["params"]["machine"], d.get("env_name"), d["commit_hash"])
            versions.setdefault(key, {}).update(
                {b: row[at] for b, row in d.get("results", {}).items() if isinstance(row, list) and len(row) > at}
            )
    if started is not None:
        started.update({key: sorted(ts)[len(ts) // 2] for key, ts in starts.items() if ts})
    return versions


def machine_levels(series):
    """``{(machine, commit): level}``: the median, over the machine's series measured at that
    commit, of the p95 there over the series' own median. About 1 at most commits; a commit
    where every benchmark ran fast or slow stands out (a runner's speed, not the code's)."""
    ratios = defaultdict(list)
    for s in series:
        values = sorted(p["p95"] for p in s["points"] if p["p95"] and p["p95"] > 0)
        if len(values) < 4:
            continue
        middle = values[len(values) // 2]
        for p in s["points"]:
            if p["p95"] and p["p95"] > 0:
                ratios[(s["machine"], p["commit"])].append(p["p95"] / middle)
    return {key: sorted(r)[len(r) // 2] for key, r in ratios.items()}


class Project:
    """Everything read from one project folder, with lookups by series and commit."""

    def __init__(self, folder):
        self.folder = folder
        self.p95 = load_json(os.path.join(folder, "p95.json"), {"series": [], "flags": [], "tentative": []})
        self.threshold = self.p95.get("threshold", 0.10)
        self.series = {(s["benchmark"], s["machine"], s["env"]): s for s in self.p95["series"]}
        described = load_json(os.path.join(folder, "results", "benchmarks.json"), {})
        self.known = {k for k in described if k != "version"}
        self.started = {}
        self.versions = read_versions(os.path.join(folder, "results"), self.started)
        self.standin = load_json(os.path.join(folder, "standin-map.json"), {})
        self.machine_level = machine_levels(self.p95["series"])
        self.order = _branch_order(folder)

    def machine_shift(self, machine, commit, span=3):
        """The machine's level over ``commit`` and the ``span - 1`` measured after it, over its
        level at the ``span`` measured before (medians); None where either side is missing."""
        commits = [c for c in self.order if (machine, c) in self.machine_level]
        if commit not in commits:
            return None
        at = commits.index(commit)
        before = [self.machine_level[(machine, c)] for c in commits[max(at - span, 0):at]]
        after = [self.machine_level[(machine, c)] for c in commits[at:at + span]]
        if not before or not after:
            return None
        return sorted(after)[len(after) // 2] / sorted(before)[len(before) // 2]

    def name(self, commit):
        """A commit's short hash, the project's own where a stand-in repository orders them."""
        return (self.standin.get(commit) or commit or "-")[:8]

    def version(self, machine, env, commit, benchmark):
        return self.versions.get((machine, env, commit), {}).get(base_name(benchmark))

    def version_changed(self, machine, env, benchmark, before, after):
        """True/False, or None when either version is unknown."""
        a = self.version(machine, env, before, benchmark)
        b = self.version(machine, env, after, benchmark)
        return None if a is None or b is None else a != b

    def retired(self, benchmark):
        return bool(self.known) and base_name(benchmark) not in self.known


def _branch_order(folder):
    """The first-parent history of asv.conf.json's branch, oldest first (empty if unreadable)."""
    import subprocess

    conf = load_json(os.path.join(folder, "asv.conf.json"), {})
    done = subprocess.run(
        ["git", "--git-dir", conf.get("repo", ""), "rev-list", "--first-parent", "--reverse", (conf.get("branches") or ["HEAD"])[0], "--"],
        capture_output=True, text=True, check=False,
    )
    return done.stdout.split() if done.returncode == 0 else []


def _p95s(points):
    return [p["p95"] for p in points]


def _near(value, level):
    """Whether ``value`` is within ``NEAR`` of ``level`` (both positive)."""
    return bool(value and value > 0 and level and level > 0 and abs(math.log(value / level)) <= math.log1p(NEAR))


def _closer_to(value, a, b):
    """Whether ``value`` is nearer ``a`` than ``b``, on a log scale."""
    if not (value and value > 0 and a > 0 and b > 0):
        return False
    return abs(math.log(value / a)) < abs(math.log(value / b))


def read_flag(project, flag):
    """A flag with its evidence: version change, retired, held, seen before, context, reading."""
    key = (flag["benchmark"], flag["machine"], flag["env"])
    points = project.series.get(key, {}).get("points", [])
    commits = [p["commit"] for p in points]
    at = commits.index(flag["commit"]) if flag["commit"] in commits else None
    previous = flag.get("previous_commit") or (commits[at - 1] if at else None)
    after, before = flag["after"], flag["before"]
    changed = project.version_changed(flag["machine"], flag["env"], flag["benchmark"], previous, flag["commit"]) if previous else None
    following = _p95s(points[at:at + HELD_WINDOW]) if at is not None else []
    earlier = _p95s(points[:max(at - 1, 0)]) if at is not None else []
    just_before = sorted(_p95s(points[max(at - 3, 0):at])) if at else []
    from_just_before = after / just_before[len(just_before) // 2] - 1 if just_before and just_before[0] > 0 else None
    held = sum(_closer_to(v, after, before) for v in following) / len(following) if following else None
    seen_before = sum(_near(v, after) for v in earlier) / len(earlier) if len(earlier) >= 4 else None
    retired = project.retired(flag["benchmark"])
    out = {
        "benchmark": flag["benchmark"], "machine": flag["machine"], "env": flag["env"],
        "commit": project.name(flag["commit"]), "previous": project.name(previous),
        "statistic": flag.get("statistic"), "before_ms": before, "after_ms": after, "change": flag.get("change"),
        "pvalue": flag.get("pvalue"), "version_changed": changed, "retired": retired,
        "held": held, "seen_before": seen_before, "from_just_before": from_just_before,
        "machine_shift": project.machine_shift(flag["machine"], flag["commit"]), "newest": at is not None and at >= len(points) - 3,
        "message": flag.get("message"),
        "context": _context(project, flag, points, at),
    }
    out["reading"] = _reading(out)
    return out


def _reading(f):
    """A suggested reading of a flag (rules of thumb, in this order)."""
    if f["version_changed"]:
        return "version change"
    if f["retired"]:
        return "retired benchmark"
    if f["change"] is not None and f["change"] < 0:
        return "names a fall"
    shift = f["machine_shift"]
    if shift is not None and f["change"] is not None and shift - 1 > min(f["change"], 0.5) / 2:
        return "machine-wide shift"
    if f["from_just_before"] is not None and f["change"] is not None and f["from_just_before"] < min(f["change"], 0.2) / 2:
        return "rise came earlier (creep, or a step the rule missed)"
    if f["held"] is not None and f["held"] < 0.5:
        return "not held"
    if f.get("many_at_once"):
        return "many series at once (runner or environment?)"
    if f["seen_before"] is not None and f["seen_before"] >= 0.25:
        return "back to an earlier level"
    return "step"


def _context(project, flag, points, at):
    """Lines of the series around the flagged commit: commit, p95, median, source, version."""
    if at is None:
        return []
    lines = []
    for i in range(max(at - CONTEXT, 0), min(at + CONTEXT + 1, len(points))):
        p = points[i]
        version = project.version(flag["machine"], flag["env"], p["commit"], flag["benchmark"]) or ""
        mark = ">" if i == at else " "
        lines.append(
            f"{mark} {project.name(p['commit'])} p95 {_g(p['p95'])} median {_g(p['median'])} "
            f"{p['source']} n={p['n_samples']} v={version[:8]}"
        )
    return lines


def _g(value):
    """A number in 4 significant digits (ms), whatever its size."""
    return "-" if value is None else f"{value:.4g}"


def read_gates(project):
    """Per machine: pairs, exit codes, and each flagged row with its evidence."""
    lines = []
    path = os.path.join(project.folder, "gates.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
    by_machine, left_out = defaultdict(list), {}
    for g in lines:
        if "all_failed_commits" in g:
            left_out[g["machine"]] = g["all_failed_commits"]
        else:
            by_machine[g["machine"]].append(g)
    machines = {}
    for machine, gates in sorted(by_machine.items()):
        after = {g["base"]: g["head"] for g in gates}  # the next commit measured after each commit
        before = {g["head"]: g["base"] for g in gates}  # and the one before
        rows = [
            read_gate_row(project, machine, g, row, after.get(g["head"]), before.get(g["base"]))
            for g in gates for row in g["regressions"]
        ]
        errors = Counter(_error_kind(g) for g in gates if g["rc"] not in (0, 1))
        machines[machine] = {
            "pairs": len(gates),
            "all_failed_commits_left_out": left_out.get(machine, 0),
            "failed": sum(g["rc"] == 1 for g in gates),
            "errors": sum(g["rc"] not in (0, 1) for g in gates),
            "error_kinds": dict(errors),
            "flagged_rows": len(rows),
            "readings": dict(Counter(r["reading"] for r in rows)),
            "failed_pairs_by_reading": dict(Counter(_pair_reading(project, rows, g) for g in gates if g["rc"] == 1)),
            "same_run": _same_run_counts(project, machine, gates),
            "rows": rows,
        }
    return machines


def _same_run_counts(project, machine, gates):
    """Pairs whose two commits were measured in one run (as ``asv continuous BASE HEAD`` does,
    and a PR check would), and across runs: ``{"one run": [failed, pairs], "across runs": [...]}``."""
    counts = {"one run": [0, 0], "across runs": [0, 0], "unknown": [0, 0]}
    for g in gates:
        a, b = project.started.get((machine, g["base"])), project.started.get((machine, g["head"]))
        kind = "unknown" if a is None or b is None else "one run" if abs(a - b) < SAME_RUN_S else "across runs"
        counts[kind][0] += g["rc"] == 1
        counts[kind][1] += 1
    return {k: v for k, v in counts.items() if v[1]}


def _pair_reading(project, rows, gate):
    """The reading most of a failed pair's flagged rows share."""
    pair = (project.name(gate["base"]), project.name(gate["head"]))
    mine = Counter(r["reading"] for r in rows if (r["base"], r["head"]) == pair)
    return mine.most_common(1)[0][0] if mine else "no rows read"


def _error_kind(gate):
    text = re.sub(r"\(?\b[0-9a-f]{8,}\b\)?", "HASH", " ".join(gate["stderr"]))
    match = re.search(r"kvcache-tracker gate: (.{0,70})", text)
    return match.group(1) if match else f"exit {gate['rc']}"


def read_gate_row(project, machine, gate, row, next_commit, before_base):
    """One flagged gate row: the values from the p95 series, the version, the commits measured
    on the machine just before BASE and just after HEAD, and the machine's level at BASE and
    HEAD (``machine_level``: did every benchmark move at once?)."""
    benchmark, env = _split_env(row["benchmark"])
    env = env or _env_at(project, machine, gate["head"], benchmark)
    points = {p["commit"]: p for p in project.series.get((benchmark, machine, env), {}).get("points", [])}
    base = (points.get(gate["base"]) or {}).get("p95")
    head = (points.get(gate["head"]) or {}).get("p95")
    nxt = (points.get(next_commit) or {}).get("p95") if next_commit else None
    prior = (points.get(before_base) or {}).get("p95") if before_base else None
    changed = project.version_changed(machine, env, benchmark, gate["base"], gate["head"])
    out = {
        "benchmark": benchmark, "env": env, "base": project.name(gate["base"]), "head": project.name(gate["head"]),
        "next": project.name(next_commit) if next_commit else None,
        "before_base_ms": prior, "base_ms": base, "head_ms": head, "next_ms": nxt, "ratio": row.get("ratio"),
        "machine_level_base": project.machine_level.get((machine, gate["base"])),
        "machine_level_head": project.machine_level.get((machine, gate["head"])),
        "interval": row.get("98% interval"), "noise": row.get("noise from"),
        "version_changed": changed, "retired": project.retired(benchmark),
    }
    up = 1 + project.threshold
    if changed:
        out["reading"] = "version change"
    elif prior is not None and head is not None and base is not None and head <= prior * up and base * up < prior:
        out["reading"] = "BASE was low (HEAD back at the level before it)"
    elif nxt is None or base is None:
        out["reading"] = "no next commit"
    elif nxt <= base * (1 + project.threshold):
        out["reading"] = "gone at the next commit"
    else:
        out["reading"] = "still up at the next commit"
    return out


def _split_env(benchmark):
    """The gate names the environment in brackets when a machine has several."""
    match = re.match(r"^(.*) \[([^\]]+)\]$", benchmark)
    return (match.group(1), match.group(2)) if match else (benchmark, None)


def _env_at(project, machine, commit, benchmark):
    """The environment of the one series of ``benchmark`` on ``machine`` measured at ``commit``."""
    envs = [
        env for (b, m, env), s in project.series.items()
        if b == benchmark and m == machine and any(p["commit"] == commit for p in s["points"])
    ]
    return envs[0] if len(envs) == 1 else None


def read_asv_regressions(project):
    """asv's regressions.json entries with their machine and the commits of their steps."""
    html = os.path.join(project.folder, "html")
    data = load_json(os.path.join(html, "regressions.json"))
    if data is None:
        return None
    index = load_json(os.path.join(html, "index.json"), {})
    revision_to_hash = {int(k): v for k, v in (index.get("revision_to_hash") or {}).items()}
    machines = sorted({m for (_, m, _) in project.series})
    flagged = {(f["benchmark"], f["machine"]) for f in project.p95["flags"]}
    out = []
    for name, _path, params, _idx, last, best, jumps in data.get("regressions", []):
        machine = params.get("machine") or (machines[0] if len(machines) == 1 else None)
        steps = [
            {"commit": project.name(revision_to_hash.get(j[1])), "before": j[2], "after": j[3]}
            for j in jumps
        ]
        out.append({
            "benchmark": name, "machine": machine, "params": params, "last": last, "best": best, "steps": steps,
            "tracker_flagged": (name, machine) in flagged,
        })
    return out


def read_output(project):
    """What the tracker printed: warnings, and flags whose levels print as the same number."""
    warnings = []
    path = os.path.join(project.folder, "p95.stderr")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            warnings = [line.rstrip("\n") for line in f if line.startswith("warning:")]
    same = []
    for flag in project.p95["flags"] + project.p95["tentative"]:
        match = re.search(r"level (\S+) -> (\S+) ms", flag.get("message") or "")
        if match and (match.group(1) == match.group(2) or "0.000" in match.groups()):
            same.append(flag["message"])
    longest = max(warnings, key=len) if warnings else ""
    sources = Counter(p["source"] for s in project.p95["series"] for p in s["points"])
    return {
        "warnings": len(warnings), "longest_warning_chars": len(longest), "longest_warning_start": longest[:160],
        "flags_printed_as_equal_levels": same, "points_by_source": dict(sources),
    }


def summarize(folder):
    project = Project(folder)
    flags = [read_flag(project, f) for f in project.p95["flags"] if f.get("kind") == "regression"]
    budget = [f for f in project.p95["flags"] if f.get("kind") != "regression"]
    tentative = [read_flag(project, f) for f in project.p95["tentative"]]
    at_commit = Counter((f["machine"], f["commit"]) for f in flags + tentative)
    per_machine = Counter(m for (_, m, _) in project.series)
    for f in flags + tentative:
        f["flagged_with"] = at_commit[(f["machine"], f["commit"])] - 1  # other series flagged at that commit and machine
        f["many_at_once"] = f["flagged_with"] + 1 >= max(5, 0.1 * per_machine[f["machine"]])
        f["reading"] = _reading(f)
    machines = sorted({m for (_, m, _) in project.series})
    return {
        "project": os.path.basename(folder.rstrip("/")),
        "threshold": project.threshold,
        "series": len(project.series),
        "series_by_machine": dict(Counter(m for (_, m, _) in project.series)),
        "machines": machines,
        "flags": flags,
        "flag_readings": dict(Counter(f["reading"] for f in flags)),
        "budget_flags": len(budget),
        "tentative": tentative,
        "tentative_readings": dict(Counter(f["reading"] for f in tentative)),
        "gates": read_gates(project),
        "asv_regressions": read_asv_regressions(project),
        "output": read_output(project),
        "timings": load_json(os.path.join(folder, "timings.json"), {}),
    }


def write_markdown(summary, write_line):
    """The summary as markdown: counts first, then every flag with its series around it."""
    s = summary
    write_line(f"# {s['project']}: the tracker on public asv results")
    write_line("")
    write_line(f"{s['series']} series on {len(s['machines'])} machines ({', '.join(f'{m}: {n}' for m, n in s['series_by_machine'].items())}); "
               f"points by source: {s['output']['points_by_source']}; threshold {s['threshold']:.0%}.")
    if s["timings"]:
        write_line(f"Timings (s): {s['timings']}")
    write_line("")
    write_line(f"## Flags: {len(s['flags'])} ({_counts(s['flag_readings'])}); tentative: {len(s['tentative'])} ({_counts(s['tentative_readings'])})")
    write_line("")
    _flag_table(s["flags"] + s["tentative"], len(s["flags"]), write_line)
    write_line("")
    write_line("## Gate over neighbouring commits")
    write_line("")
    write_line("| machine | pairs | failed | failed / pairs, by how they were measured | failed pairs by their rows' reading | errors | flagged rows | readings | errors by kind | commits left out (every result failed) |")
    write_line("|---|---|---|---|---|---|---|---|---|---|")
    for machine, g in s["gates"].items():
        runs = ", ".join(f"{k}: {v[0]}/{v[1]}" for k, v in g["same_run"].items())
        write_line(f"| {machine} | {g['pairs']} | {g['failed']} | {runs} | {_counts(g['failed_pairs_by_reading'])} | {g['errors']} | {g['flagged_rows']} | {_counts(g['readings'])} "
                   f"| {_counts(g['error_kinds'])} | {g['all_failed_commits_left_out']} |")
    write_line("")
    for machine, g in s["gates"].items():
        if g["rows"]:
            write_line(f"<details><summary>{machine}: {g['flagged_rows']} flagged rows</summary>")
            write_line("")
            write_line("| base | head | next | benchmark | env | before base ms | base ms | head ms | next ms | ratio | interval | noise | machine level base / head | reading |")
            write_line("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in g["rows"]:
                write_line(f"| {r['base']} | {r['head']} | {r['next'] or '-'} | `{r['benchmark']}` | {r['env']} | {_g(r['before_base_ms'])} "
                           f"| {_g(r['base_ms'])} | {_g(r['head_ms'])} | {_g(r['next_ms'])} | {r['ratio']} | {r['interval']} | {r['noise']} "
                           f"| {_g(r['machine_level_base'])} / {_g(r['machine_level_head'])} | {r['reading']} |")
            write_line("")
            write_line("</details>")
            write_line("")
    regressions = s["asv_regressions"]
    write_line(f"## asv's regressions (regressions.json): {'not published' if regressions is None else len(regressions)}")
    write_line("")
    if regressions:
        per_machine = Counter(r["machine"] for r in regressions)
        timed = [r for r in regressions if base_name(r["benchmark"]).rsplit(".", 1)[-1].startswith("time_")]
        write_line(f"Per machine: {_counts(per_machine)}; of them `time_` benchmarks (the tracker reads only those): "
                   f"{len(timed)}, also flagged by the tracker: {sum(r['tracker_flagged'] for r in timed)}.")
        write_line("")
        write_line("| benchmark | machine | steps (commit: before -> after) | tracker flagged |")
        write_line("|---|---|---|---|")
        for r in regressions:
            steps = "; ".join(f"{x['commit']}: {_g(x['before'])} -> {_g(x['after'])}" for x in r["steps"])
            write_line(f"| `{r['benchmark']}` | {r['machine']} | {steps} | {'yes' if r['tracker_flagged'] else ''} |")
        write_line("")
    o = s["output"]
    write_line("## What the tracker printed")
    write_line("")
    write_line(f"- {o['warnings']} warning lines; the longest has {o['longest_warning_chars']} characters: `{o['longest_warning_start']}...`")
    write_line(f"- flags whose levels print as the same number or as 0.000: {len(o['flags_printed_as_equal_levels'])}")
    for message in o["flags_printed_as_equal_levels"][:5]:
        write_line(f"  - `{message}`")


def _flag_table(flags, n_flags, write_line):
    if not flags:
        return
    for i, f in enumerate(flags):
        kind = "flag" if i < n_flags else "tentative"
        write_line(
            f"- **{kind}** `{f['benchmark']}` on {f['machine']} [{f['env']}] at {f['commit']} (before {f['previous']}): "
            f"{f['statistic']} {_g(f['before_ms'])} -> {_g(f['after_ms'])} ms ({f['change']:+.0%}); "
            f"version changed: {_yn(f['version_changed'])}; retired: {_yn(f['retired'])}; "
            f"held: {_pct(f['held'])}; seen before: {_pct(f['seen_before'])}; over the 3 before: {_pct(f['from_just_before'])}; "
            f"other series flagged at this commit here: {f['flagged_with']}; machine level x{_g(f['machine_shift'])}; "
            f"reading: **{f['reading']}**"
        )
        write_line("")
        write_line("  ```")
        for line in f["context"]:
            write_line(f"  {line}")
        write_line("  ```")


def _counts(counter):
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1])) or "-"


def _yn(value):
    return "?" if value is None else "yes" if value else "no"


def _pct(value):
    return "-" if value is None else f"{value:.0%}"


def main(argv):
    if len(argv) != 1:
        print("usage: summarize.py PROJECT_DIR", file=sys.stderr)
        return 2
    folder = os.path.abspath(argv[0])
    summary = summarize(folder)
    with open(os.path.join(folder, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(folder, "summary.md"), "w", encoding="utf-8") as f:
        write_markdown(summary, lambda line: f.write(line + "\n"))
    print(os.path.join(folder, "summary.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
