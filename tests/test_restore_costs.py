"""``kvcache-bench costs``: a real small run through the library, what its rows hold, and its
one-line refusals of bad arguments. Times are only checked to be there, never compared."""

import json
import os

import pytest

from kvbench import cli, measurement, restore_costs

PRESET, CONTEXTS = "gemma3-1b", (600, 1024)


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return tmp_path_factory.mktemp("record") / "measurement.json"


@pytest.fixture(scope="module")
def result(tmp_path_factory, record):
    out = tmp_path_factory.mktemp("costs") / "costs.json"
    argv = ["costs", "--preset", PRESET, "--contexts", ",".join(map(str, CONTEXTS)), "--runs", "2",
            "--zero-copy-runs", "5", "--json", str(out), "--record", str(record), "--record-machine", "the test machine"]
    assert cli.main(argv) == 0
    return json.loads(out.read_text())


def test_record_holds_the_printed_table(result, record):
    (name, measured), = measurement.load_measurements(record.parent)
    assert measured["series"] == "costs, the test machine" and measured["section"] == "costs"
    table = measured["tables"][0]
    assert table["columns"] == restore_costs.COLUMNS
    printed = []
    restore_costs.render(result, printed.append)
    assert printed[2:] == ["|" + "---|" * len(table["columns"])] + ["| " + " | ".join(row) + " |" for row in table["rows"]]
    assert [row[0] for row in table["rows"]] == [str(n) for n in CONTEXTS]
    p50, p95 = (float(x) for x in table["rows"][1][8].split(" / "))
    assert (p50, p95) == (pytest.approx(result["rows"][1]["zero_copy_p50_ms"], abs=5e-4),
                          pytest.approx(result["rows"][1]["zero_copy_p95_ms"], abs=5e-4))


def test_a_row_per_context_with_every_path_timed(result):
    assert [row["context"] for row in result["rows"]] == list(CONTEXTS)
    for row in result["rows"]:
        for path in ("plain_copy", "concat", "plain_copy_of_scattered", "gather", "plain_copy_of_live", "store_copies",
                     "store"):
            assert row[f"{path}_ms"] > 0
        assert row["concat_efficiency"] == pytest.approx(row["plain_copy_ms"] / row["concat_ms"])
        assert row["gather_same_buffers_efficiency"] == pytest.approx(row["plain_copy_of_scattered_ms"] / row["gather_ms"])
        assert row["store_efficiency"] == pytest.approx(row["plain_copy_of_live_ms"] / row["store_ms"])
        assert row["store_bookkeeping_ms"] == pytest.approx(row["store_ms"] - row["store_copies_ms"])
        assert row["zero_copy_p50_ms"] <= row["zero_copy_p95_ms"]


def test_the_scattered_table_has_one_buffer_per_block_array(result):
    from kvcache import ModelCacheSpec

    spec = ModelCacheSpec.from_preset(PRESET)
    for row in result["rows"]:
        blocks = spec.total_blocks_needed(row["context"])
        assert row["scattered_buffers"] == 2 * blocks  # keys and values of every block


def test_memory_a_restore_adds(result):
    for row in result["rows"]:
        assert row["zero_copy_peak_fraction"] <= 0.05  # shares the pool's buffers
        assert 0.95 <= row["concat_peak_fraction"] <= 1.05  # one private copy, no intermediate


@pytest.mark.parametrize("argv", [
    ["costs", "--contexts", "2k"],
    ["costs", "--preset", "no-such-model"],
    ["costs", "--runs", "0"],
    ["costs", "--record", "/no/such/folder/m.json"],
])
def test_bad_arguments_get_one_line(argv, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kvcache-bench costs:") and "\n" not in err


def test_the_costs_module_imports_without_matplotlib():
    """asv's environments install kvcache[cpu] alone: bench_bandwidth imports restore_costs there."""
    import subprocess
    import sys

    code = "import sys; sys.modules['matplotlib'] = None; import kvbench.restore_costs"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("option", ["--json", "--record"])
@pytest.mark.parametrize("where", ["missing folder", "a folder", "read-only folder"])
def test_an_output_that_cannot_be_written_is_refused_before_measuring(tmp_path, capsys, option, where):
    if where == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder")
        (tmp_path / "read-only").mkdir(mode=0o555)
    path = {"missing folder": tmp_path / "no-such-folder" / "out.json", "a folder": tmp_path,
            "read-only folder": tmp_path / "read-only" / "out.json"}[where]
    argv = ["costs", "--preset", PRESET, "--contexts", "16", "--runs", "1", "--zero-copy-runs", "1", option, str(path)]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert "measuring" not in out  # refused up front, not after minutes of measuring
    assert err.startswith(f"kvcache-bench costs: {option} {path}") and "\n" not in err.strip()
