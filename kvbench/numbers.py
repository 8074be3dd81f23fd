"""``kvcache-bench numbers``: docs/numbers.md, the one page of current numbers, built from
the measurement files in docs/measurements/.

A measurement file is one measurement, as JSON::

    series    what was measured on which machine ("EXP-006 restore, NVIDIA H100");
              the page shows the latest file of each series, by ``date``
    section   where it goes on the page: a key of ``SECTIONS``
    title     its heading on the page
    machine, date ("YYYY-MM-DD HH:MM UTC", or a day), command, runs, source
    commit    optional: the code measured
    note      optional: what to know when reading it
    tables    [{"caption": optional, "columns": [str], "rows": [[str]]}]: the values, as
              strings with their units, exactly as measured or transcribed

Invariants: the page is a function of the files alone (same files, same bytes); every cell
is printed verbatim; a file is never changed by building the page. Files of a series older
than its latest are listed at the end, without their numbers.
"""

import json
import math
import re
import sys
from pathlib import Path

from . import docs_numbers
from .errors import UserError

ROOT = Path(__file__).resolve().parent.parent
MEASUREMENTS = ROOT / "docs" / "measurements"
PAGE = ROOT / "docs" / "numbers.md"

# key -> (heading, what the section holds), in page order
SECTIONS = {
    "restore": ("Restore time (EXP-006)", "`kvcache-bench exp006`: single `engine.reconstruct` calls, Gemma 3 12B shape, bf16."),
    "costs": ("Copy efficiency and store costs", "`kvcache-bench costs`, `scripts/device/copy_breakdown.py`: each copying path against a plain copy of the same bytes."),
    "store-ab": ("A/B of the store against an earlier commit", "`scripts/ab_versions.py`: this tree's package against another commit's, interleaved in one process."),
    "suite": ("The asv suite per commit", "`asv run --record-samples`: p50 / p95 of the recorded samples (docs/benchmarks.md)."),
    "tracker": ("The tracker", "`kvcache-bench power`, `scripts/record-noise.sh`, `scripts/tracker-scale.py` (docs/tracker.md)."),
    "run-times": ("Run times of the two commands", "`make main-job` and `make test` from a fresh clone."),
}
REQUIRED = ("series", "section", "title", "machine", "date", "command", "runs", "source", "tables")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}.*)?$")

HOW_TO = """\
**To add a measurement**: put its file in `docs/measurements/` and run `make numbers`: it
rebuilds this page (`python3 -m kvbench.cli numbers`), then names every doc line that quotes
a number no longer on it (`... numbers --check`). A file with the
`series` of an earlier one replaces it here (the latest `date` wins); the earlier file stays,
listed at the end. `kvcache-bench exp006 --record FILE`, `kvcache-bench costs --record FILE`
and `scripts/ab_versions.py COMMIT --record FILE` write such a file (`--record-machine` or
`--machine` names the machine, and so the series); for another measurement copy a file and
fill it in (the fields: `kvbench/numbers.py`).

Every number on this page comes from one measurement file in [measurements/](measurements/):
the machine, the date, the command, the runs and the values, as measured or as transcribed
with their provenance. README.md, ADR-004 and EXP-006 quote this page;
`tests/test_docs_numbers.py` fails when this page is not what the files make, or when
README.md, ADR-004, EXP-006, docs/tracker.md or docs/benchmarks.md carry a measured number
that is not on it (what counts as one: `kvbench/docs_numbers.py`). Dated history (superseded
runs, what was tried) lives in [experiments/](experiments/)."""


def register(subparsers):
    parser = subparsers.add_parser("numbers", help="docs/numbers.md from docs/measurements/*.json")
    parser.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 when the page is not what the files make, or a doc quotes a number not on it",
    )
    parser.add_argument("--measurements", default=str(MEASUREMENTS), help="folder of measurement files (default docs/measurements)")
    parser.add_argument("--page", default=str(PAGE), help="the page to write or check (default docs/numbers.md)")
    parser.set_defaults(func=run)


def run(args):
    page_path = Path(args.page)
    if not page_path.parent.is_dir():
        raise UserError(f"--page {page_path}: its folder does not exist")
    page = render_page(load_measurements(args.measurements))
    if not args.check:
        page_path.write_text(page, encoding="utf-8")
        print(f"numbers: wrote {page_path}")
        return 0
    problems = [] if page_path.is_file() and page_path.read_text(encoding="utf-8") == page else [
        f"{page_path} is not what {args.measurements} make: run `make numbers`"]
    found = docs_numbers.page_quantities(page)
    for doc in docs_numbers.QUOTING:
        for line, quantity in docs_numbers.unquoted((ROOT / doc).read_text(encoding="utf-8"), found):
            problems.append(f"{doc}:{line}: {quantity!r} is not on the numbers page: add its measurement file "
                            "(docs/numbers.md says how), or quote the page")
    for problem in problems:
        print(f"numbers: {problem}", file=sys.stderr)
    return 1 if problems else 0


def load_measurements(folder):
    """Every ``*.json`` in ``folder`` as ``(file name, record)``, sorted by name; a file that
    is not a valid measurement raises ``UserError`` naming it and the field."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UserError(f"{path}: not readable JSON ({error}): fix or remove it") from None
        check_measurement(record, path.name)
        records.append((path.name, record))
    if not records:
        raise UserError(f"{folder}: no measurement files (*.json) there: give the folder of docs/measurements/")
    return records


def check_measurement(record, name):
    """Raise ``UserError`` unless ``record`` has every field of a measurement, well formed."""
    if not isinstance(record, dict):
        raise UserError(f"{name}: not a measurement (a JSON object with the fields of kvbench/numbers.py)")
    missing = [field for field in REQUIRED if not record.get(field)]
    if missing:
        raise UserError(f"{name}: missing field {missing[0]!r} (fields: kvbench/numbers.py)")
    if record["section"] not in SECTIONS:
        raise UserError(f"{name}: section {record['section']!r} is not one of {', '.join(SECTIONS)}")
    if not DATE.match(record["date"]):
        raise UserError(f"{name}: date {record['date']!r}: write it as 'YYYY-MM-DD HH:MM UTC' or 'YYYY-MM-DD'")
    if not isinstance(record["tables"], list) or not all(isinstance(t, dict) for t in record["tables"]):
        raise UserError(f"{name}: 'tables' must be a list of tables (columns and rows)")
    for table in record["tables"]:
        width = len(table.get("columns", []))
        if not width or any(len(row) != width for row in table.get("rows", [])):
            raise UserError(f"{name}: a table needs 'columns' and rows of as many cells")


def latest_per_series(records):
    """``(current, earlier)``: the latest file of each series, and the files it supersedes."""
    latest = {}
    for pair in records:
        name, record = pair
        kept = latest.get(record["series"])
        if kept is None or (record["date"], name) > (kept[1]["date"], kept[0]):
            latest[record["series"]] = pair
    current = [pair for pair in records if latest[pair[1]["series"]] is pair]
    earlier = [pair for pair in records if latest[pair[1]["series"]] is not pair]
    return current, earlier


def render_page(records):
    """The text of docs/numbers.md for ``records`` (``load_measurements``' answer)."""
    current, earlier = latest_per_series(records)
    lines = ["# Current numbers", "",
             "<!-- Generated by `make numbers` from docs/measurements/*.json (kvbench/numbers.py): edit those, not this. -->",
             "", HOW_TO, ""]
    for key, (heading, intro) in SECTIONS.items():
        chosen = sorted((r["title"], name, r) for name, r in current if r["section"] == key)
        if not chosen:
            continue
        lines += [f"## {heading}", "", intro, ""]
        for _, name, record in chosen:
            _render_measurement(name, record, lines.append)
    if earlier:
        lines += ["## Earlier measurements", "", "Superseded by a later file of the same series; their numbers are in the files.", ""]
        for name, record in sorted(earlier, key=lambda pair: (pair[1]["series"], pair[1]["date"])):
            lines.append(f"- [{name}](measurements/{name}): {record['series']}, {record['date']}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _render_measurement(name, record, write_line):
    commit = f" · commit {record['commit']}" if record.get("commit") else ""
    write_line(f"### {record['title']}")
    write_line("")
    write_line(f"{record['machine']} · {record['date']}{commit} · [{name}](measurements/{name})")
    write_line("")
    write_line(f"- command: `{record['command']}`")
    write_line(f"- runs: {record['runs']}")
    write_line(f"- source: {record['source']}")
    if record.get("note"):
        write_line(f"- note: {record['note']}")
    write_line("")
    for table in record["tables"]:
        if table.get("caption"):
            write_line(f"{table['caption']}:")
            write_line("")
        write_line("| " + " | ".join(table["columns"]) + " |")
        write_line("|" + "---|" * len(table["columns"]))
        for row in table["rows"]:
            write_line("| " + " | ".join(row) + " |")
        write_line("")


def write_measurement(path, record):
    """Write ``record`` (checked as a measurement) to ``path`` as the files in docs/measurements/ are."""
    check_measurement(record, str(path))
    Path(path).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def provenance(env, machine=None):
    """A measurement's ``machine``, ``date`` and ``commit`` fields for a run in ``env``
    (``kvbench.environment.environment()``'s answer); ``machine`` None: ``machine_line(env)``."""
    return {"machine": machine or machine_line(env), "date": minute_utc(env["started_utc"]), "commit": commit_line(env)}


def record_measurement(path, measurement, say=print):
    """Write ``measurement`` to ``path`` (``write_measurement``) and say what to do with it."""
    write_measurement(path, measurement)
    say(f"recorded {path}: add it to docs/measurements/ and run `make numbers`")


def machine_line(env):
    """One line naming the machine of ``env`` (``kvbench.environment.environment()``'s answer)."""
    machine, versions = env["machine"], env["versions"]
    return (f"{machine['processor']}, {machine['cores']} cores, {machine['platform']}; "
            f"MLX {versions['mlx']} ({env['backend']['default_device']}), Python {versions['python']}")


def commit_line(env):
    """The measured code's commit from ``env``, short, marked when the tree had changes."""
    git = env["git"]
    return git["commit"][:7] + (" with uncommitted changes" if git["dirty"] is True else "")


def minute_utc(iso):
    """'2026-11-29T04:01:40+00:00' (a UTC ISO time) -> '2026-11-29 04:01 UTC', a measurement's date."""
    return f"{iso[:10]} {iso[11:16]} UTC"


def ms_text(value):
    """A time in ms as the docs write it: three significant digits, whole numbers from 100 ms
    (0.250, 5.19, 42.7, 1147)."""
    if value <= 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:.{max(0, 2 - math.floor(math.log10(value)))}f}"
