"""scripts/ab_versions.py --record: a real A/A run (HEAD's package against this tree's) written
as a measurement file that the numbers page takes."""

import re
import subprocess
import sys
from pathlib import Path

from kvbench import numbers

ROOT = Path(__file__).resolve().parent.parent


def test_record_holds_what_the_run_printed(tmp_path):
    record_path = tmp_path / "ab.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ab_versions.py"), "HEAD", "--contexts", "256", "--rounds", "1",
         "--zero-copy-rounds", "2", "--record", str(record_path), "--machine", "the test machine"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )
    (name, record), = numbers.load_measurements(tmp_path)
    assert record["series"] == "store A/B, the test machine" and record["section"] == "store-ab"
    assert record["command"].startswith("python scripts/ab_versions.py HEAD --contexts 256 --rounds 1")
    rows = record["tables"][0]["rows"]
    assert [row[:2] for row in rows] == [["256", "store"], ["256", "concat"], ["256", "zero-copy"]]
    printed = [line for line in done.stdout.splitlines() if line.startswith("256 tokens")]
    for row, line in zip(rows, printed):
        ratio_p50, ratio_p95 = re.findall(r"new/old (\d+\.\d\d)", line)
        assert row[4] == f"{ratio_p50} / {ratio_p95}"
    assert "This tree against HEAD, on the test machine" in numbers.render_page([(name, record)])


def test_record_into_a_missing_folder_is_refused_before_measuring(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ab_versions.py"), "HEAD", "--record", str(tmp_path / "no" / "ab.json")],
        capture_output=True, text=True,
    )
    assert done.returncode == 2 and "--record" in done.stderr and "folder does not exist" in done.stderr
