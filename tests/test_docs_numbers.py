"""docs/numbers.md is what the measurement files make, and the docs quote only numbers on it.

The real page, files and docs of this checkout are checked through ``tools/numbers_page.py
--check``; the rules are also run on planted drift (a changed number, a stale page, a newer
file of a series) so each check is seen to fail.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest

from kvbench import measurement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import docs_numbers  # noqa: E402
import numbers_page as numbers  # noqa: E402


def test_this_checkout_is_consistent(capsys):
    assert numbers.main(["--check"]) == 0, capsys.readouterr().err


def test_a_changed_number_in_the_readme_is_caught():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "0.224 / 0.250 ms" in readme
    on_page = docs_numbers.page_quantities(numbers.PAGE.read_text(encoding="utf-8"))
    assert docs_numbers.unquoted(readme, on_page) == []
    missing = docs_numbers.unquoted(readme.replace("0.224 / 0.250 ms", "0.224 / 0.251 ms"), on_page)
    assert missing and all(quantity == "0.224 / 0.251 ms" for _, quantity in missing)


def test_targets_commands_and_listed_phrases_are_not_measurements():
    text = "\n".join([
        "the target was p95 < 5 ms, and more than 10% worse fails; +5% planted",
        "```sh", "kvcache-tracker gate --min-rise-ms 0.123 ms", "```",
        "the seed's p95 ~4 ms at 8K", "832 MiB of KV in 256-token blocks",
        "measured 0.123 ms",
    ])
    assert docs_numbers.unquoted(text, {("5", "ms")}) == [(7, "0.123 ms")]


def test_a_number_on_the_page_counts_only_with_its_unit():
    page = "\n".join([
        "zero-copy at 8K, ms:", "", "| what | 2K | 8K |", "|---|---|---|",
        "| p95 | 0.221 | 0.262 |", "| share | 88% | 41 |", "", "took 11 min 47 s",
    ])
    on_page = docs_numbers.page_quantities(page)
    assert {("0.262", "ms"), ("88", "%"), ("41", "ms"), ("11", "min"), ("47", "s")} <= on_page
    assert ("0.262", "%") not in on_page
    text = "p95 0.221-0.262 ms; 88% of a copy; 0.262% of it; 41 ms"
    assert docs_numbers.unquoted(text, on_page) == [(1, "0.262%")]


def test_a_stale_page_fails_the_check_and_make_numbers_fixes_it(tmp_path, capsys):
    folder = tmp_path / "measurements"
    shutil.copytree(numbers.MEASUREMENTS, folder)
    page = tmp_path / "numbers.md"
    args = ["--measurements", str(folder), "--page", str(page)]
    assert numbers.main(args) == 0
    assert page.read_text(encoding="utf-8") == numbers.PAGE.read_text(encoding="utf-8")
    record = json.loads((folder / "2026-11-27-h100-exp006-c052e96.json").read_text(encoding="utf-8"))
    record["tables"][0]["rows"][2][1] = "0.999"
    measurement.write_measurement(folder / "2026-11-27-h100-exp006-c052e96.json", record)
    capsys.readouterr()
    assert numbers.main(args + ["--check"]) == 1
    assert "is not what" in capsys.readouterr().err
    assert numbers.main(args) == 0 and numbers.main(args + ["--check"]) == 0
    assert "| 8K | 0.999 |" in page.read_text(encoding="utf-8")


def test_a_newer_file_of_a_series_replaces_the_older_on_the_page(tmp_path):
    older = _measurement("2026-11-27 17:41 UTC", "0.262")
    newer = _measurement("2026-12-01 09:00 UTC", "0.301")
    measurement.write_measurement(tmp_path / "a-old.json", older)
    measurement.write_measurement(tmp_path / "b-new.json", newer)
    measurement.write_measurement(tmp_path / "c-other.json", {**older, "series": "another machine", "title": "Other"})
    page = numbers.render_page(numbers.load_measurements(tmp_path))
    current, earlier = page.split("## Earlier measurements")
    assert "0.301" in current and "0.262" in current.split("### Other")[1]
    assert "0.262" not in current.split("### Other")[0]
    assert "[a-old.json](measurements/a-old.json)" in earlier and "0.262" not in earlier


@pytest.mark.parametrize("change, message", [
    ({"date": "yesterday"}, "date 'yesterday'"),
    ({"section": "misc"}, "section 'misc' is not one of"),
    ({"command": ""}, "missing field 'command'"),
    ({"tables": [{"columns": ["a", "b"], "rows": [["1"]]}]}, "rows of as many cells"),
    ({"tables": "8K: 0.25 ms"}, "'tables' must be a list"),
    (["not", "an", "object"], "not a measurement"),
])
def test_a_bad_measurement_file_is_one_line_naming_it(tmp_path, capsys, change, message):
    record = change if isinstance(change, list) else {**_measurement("2026-11-27", "1"), **change}
    (tmp_path / "bad.json").write_text(json.dumps(record))
    assert numbers.main(["--measurements", str(tmp_path), "--page", str(tmp_path / "p.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.json" in err and message in err
    assert not (tmp_path / "p.md").exists()


def _measurement(date, p95):
    return {
        "series": "EXP-006 restore, NVIDIA H100", "section": "restore", "title": "EXP-006 on the H100",
        "machine": "a lent H100", "date": date, "command": "kvcache-bench exp006", "runs": "100 calls",
        "source": "a test", "tables": [{"columns": ["context", "p95, ms"], "rows": [["8K", p95]]}],
    }
