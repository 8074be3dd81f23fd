"""The measurement file: one measurement, as JSON, as docs/measurements/ keeps them and
``tools/numbers_page.py`` builds docs/numbers.md from them::

    series    what was measured on which machine ("EXP-006 restore, NVIDIA H100");
              the page shows the latest file of each series, by ``date``
    section   where it goes on the page: a key of ``SECTIONS``
    title     its heading on the page
    machine, date ("YYYY-MM-DD HH:MM UTC", or a day), command, runs, source
    commit    optional: the code measured
    note      optional: what to know when reading it
    tables    [{"caption": optional, "columns": [str], "rows": [[str]]}]: the values, as
              strings with their units, exactly as measured or transcribed

``kvcache-bench exp006 --record`` and ``costs --record`` write one.
"""

import json
import math
import re
from pathlib import Path

from .errors import UserError

# key -> (heading, what the section holds), in page order
SECTIONS = {
    "restore": ("Restore time (EXP-006)", "`kvcache-bench exp006`: single `engine.reconstruct` calls, Gemma 3 12B shape, bf16."),
    "costs": ("Copy efficiency and store costs", "`kvcache-bench costs`: each copying path against a plain copy of the same bytes."),
    "store-ab": ("A/B of the store against an earlier commit", "this tree's package against another commit's, interleaved in one process (a one-off script, removed since: git history has it)."),
    "suite": ("The asv suite per commit", "`asv run --record-samples`: p50 / p95 of the recorded samples (docs/benchmarks.md)."),
    "tracker": ("The tracker", "`kvcache-tracker power`, `scripts/record-noise.sh`, `tools/tracker-scale.py` (docs/tracker.md)."),
    "run-times": ("Run times of the two commands", "`make main-job` and `make test` from a fresh clone."),
}
REQUIRED = ("series", "section", "title", "machine", "date", "command", "runs", "source", "tables")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}.*)?$")


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
        raise UserError(f"{name}: not a measurement (a JSON object with the fields of kvbench/measurement.py)")
    missing = [field for field in REQUIRED if not record.get(field)]
    if missing:
        raise UserError(f"{name}: missing field {missing[0]!r} (fields: kvbench/measurement.py)")
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
