"""``kvcache-bench exp006``: a real small run through the library, its files, its judgments,
and its one-line refusals of bad arguments."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kvcache
from kvbench import cli, measurement
from kvbench.environment import git_state
from kvbench.exp006.stats import CONDITIONAL_GO, GO, NO_GO, judge, reference_contexts, summarize, verdict

PRESET, CONTEXTS, RUNS = "gemma3-1b", (512, 1024), 5
STRATEGIES = ("zero_copy", "concat", "gather")
ROOT = Path(__file__).resolve().parents[1]
FILES = ("exp_006_timings.json", "EXP-006-results.md", "exp_006_histogram.png", "exp_006_scaling.png")


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return tmp_path_factory.mktemp("record") / "measurement.json"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, record):
    out = tmp_path_factory.mktemp("exp006")
    argv = ["exp006", "--preset", PRESET, "--contexts", ",".join(map(str, CONTEXTS)), "--runs", str(RUNS),
            "--warmup", "1", "--strategy", *STRATEGIES, "--out", str(out), "--record", str(record),
            "--record-machine", "the test machine"]
    assert cli.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def report(run_dir):
    return json.loads((run_dir / "exp_006_timings.json").read_text())


def _result(report, strategy, context):
    return next(r for r in report["results"] if r["strategy"] == strategy and r["context"] == context)


def test_writes_every_file(run_dir):
    for name in FILES:
        assert (run_dir / name).stat().st_size > 0, name
    for name in FILES[2:]:
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(FILES)  # no partial files left


def test_json_holds_every_sample_and_consistent_stats(report):
    spec = kvcache.ModelCacheSpec.from_preset(PRESET)
    assert report["contexts"] == list(CONTEXTS) and report["strategies"] == list(STRATEGIES)
    assert report["runs"] == {s: RUNS for s in STRATEGIES}
    assert len(report["results"]) == len(CONTEXTS) * len(STRATEGIES)
    for r in report["results"]:
        samples = np.asarray(r["samples_ms"])
        assert samples.size == RUNS and (samples > 0).all()
        stats = r["stats"]
        assert stats["samples"] == RUNS
        assert stats["p50"] == pytest.approx(np.percentile(samples, 50))
        assert stats["p95"] == pytest.approx(np.percentile(samples, 95))
        assert stats["p99"] == pytest.approx(np.percentile(samples, 99))
        assert stats["mean"] == pytest.approx(samples.mean())
        assert stats["std"] == pytest.approx(samples.std())
        assert (stats["min"], stats["max"]) == (samples.min(), samples.max())
        n = r["context"]
        assert r["kv_bytes"] == spec.kv_bytes(n)
        assert r["blocks"] == sum(spec.blocks_needed(i, n) for i in range(spec.n_layers))
        assert r["table"] == ("scattered" if r["strategy"] == "gather" else "contiguous")


def test_json_describes_machine_backend_versions_and_commit(report):
    assert report["machine"]["cores"] >= 1 and report["machine"]["platform"]
    assert len(report["machine"]["load_average_at_end"]) == 3 and report["started_utc"].endswith("+00:00")
    assert report["backend"]["default_device"].startswith("Device(")
    assert isinstance(report["backend"]["metal_available"], bool)
    assert isinstance(report["backend"]["cuda_available"], bool)
    assert set(report["versions"]) == {"mlx", "mlx-lm", "kvcache", "python"}
    commit = report["git"]["commit"]
    assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)


def test_judgments_follow_the_numbers_in_the_json(report, run_dir):
    page = (run_dir / "EXP-006-results.md").read_text()
    judged = report["judgment"]
    assert (judged["reference_context"], judged["half_context"]) == (1024, 512)
    for strategy in STRATEGIES:
        stats = _result(report, strategy, 1024)["stats"]
        half = _result(report, strategy, 512)["stats"]
        by_name = {j["criterion"]: j for j in judged["strategies"][strategy]["criteria"]}
        assert by_name["p95 < 5 ms"]["passed"] == (stats["p95"] < 5)
        assert by_name["std < 20% of mean"]["passed"] == (stats["std"] < 0.2 * stats["mean"])
        assert by_name["p99 < 10 ms"]["passed"] == (stats["p99"] < 10)
        scaling = by_name["mean-time ratio (context / half) in [1.5, 2.5]"]
        assert scaling["value"] == pytest.approx(stats["mean"] / half["mean"])
        expected = None if strategy == "zero_copy" else 1.5 <= scaling["value"] <= 2.5
        assert scaling["passed"] == expected
        go = stats["p95"] < 5 and stats["std"] < 0.2 * stats["mean"]
        expected_verdict = NO_GO if stats["p95"] > 10 else GO if go else CONDITIONAL_GO
        assert judged["strategies"][strategy]["verdict"] == expected_verdict
        assert f"**{expected_verdict}**" in next(line for line in page.splitlines() if line.startswith(f"- {strategy}"))
        p95_word = "PASS" if stats["p95"] < 5 else "FAIL"
        assert f"- p95 < 5 ms (primary): {p95_word}" in page


def test_record_is_a_measurement_file_with_the_runs_numbers(report, record):
    (name, record), = measurement.load_measurements(record.parent)
    assert record["series"] == "EXP-006 restore, the test machine" and record["section"] == "restore"
    assert record["command"] == report["command"] and "--record" not in record["command"]
    assert record["date"] == f"{report['started_utc'][:10]} {report['started_utc'][11:16]} UTC"
    p50_p95, verdicts = record["tables"]
    assert p50_p95["columns"] == ["context", *STRATEGIES]
    stats = _result(report, "concat", 1024)["stats"]
    assert p50_p95["rows"][1] == ["1K", *(
        f"{measurement.ms_text(_result(report, s, 1024)['stats']['p50'])} / {measurement.ms_text(_result(report, s, 1024)['stats']['p95'])}"
        for s in STRATEGIES)]
    assert float(p50_p95["rows"][1][2].split(" / ")[1]) == pytest.approx(stats["p95"], rel=0.01)
    assert verdicts["rows"] == [[report["judgment"]["strategies"][s]["verdict"] for s in STRATEGIES]]
    sys.path.insert(0, str(ROOT / "tools"))
    import numbers_page

    assert "### EXP-006 on the test machine" in numbers_page.render_page([(name, record)])


def test_ms_text_keeps_three_significant_digits():
    assert [measurement.ms_text(v) for v in (0.2504, 5.194, 42.66, 1147.3)] == ["0.250", "5.19", "42.7", "1147"]


def test_refuses_to_overwrite_an_earlier_run(run_dir, capsys):
    before = (run_dir / "exp_006_timings.json").read_bytes()
    assert cli.main(["exp006", "--preset", PRESET, "--contexts", "512", "--runs", "1", "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert (run_dir / "exp_006_timings.json").read_bytes() == before


@pytest.mark.parametrize(
    "args, named",
    [
        (["--strategy", "zero_copy", "scatter"], "--strategy 'scatter'"),
        (["--preset", "gemma9"], "--preset"),
        (["--runs", "0"], "--runs 0"),
        (["--copy-runs", "0"], "--copy-runs 0"),
        (["--warmup", "-1"], "--warmup -1"),
        (["--contexts", "2k,4k"], "--contexts '2k,4k'"),
        (["--contexts", "0,512"], "--contexts '0,512'"),
        (["--contexts", ""], "--contexts ''"),
        (["--record", "/no/such/folder/m.json"], "--record /no/such/folder/m.json"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, named, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["exp006", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kvcache-bench exp006: ") and named in err
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "results"
    out.write_text("keep me")
    assert cli.main(["exp006", "--out", str(out)]) == 2
    assert "is a file" in capsys.readouterr().err and out.read_text() == "keep me"


def test_summarize_uses_linear_percentiles_and_population_std():
    stats = summarize(list(range(1, 101)))
    assert (stats["p50"], stats["p95"], stats["p99"]) == pytest.approx((50.5, 95.05, 99.01))
    assert (stats["mean"], stats["std"]) == pytest.approx((50.5, np.std(np.arange(1, 101))))
    assert (stats["min"], stats["max"], stats["samples"]) == (1, 100, 100)


def _stats(p95, mean=None, std=0.0, p99=None):
    mean = p95 if mean is None else mean
    return {"p50": mean, "p95": p95, "p99": p95 if p99 is None else p99, "mean": mean, "std": std}


@pytest.mark.parametrize(
    "stats, expected",
    [
        (_stats(4.9, mean=4.0, std=0.5), GO),
        (_stats(4.9, mean=4.0, std=0.9), CONDITIONAL_GO),  # fast but unsteady: std 22.5% of mean
        (_stats(5.0, mean=4.5), CONDITIONAL_GO),
        (_stats(10.0), CONDITIONAL_GO),
        (_stats(10.1), NO_GO),
    ],
)
def test_verdict_follows_the_seeds_success_criteria(stats, expected):
    assert verdict(stats, judge(stats)) == expected


def test_scaling_is_judged_on_copies_only():
    at_8k, at_4k = _stats(800.0), _stats(400.0)
    by_name = lambda js: {j["criterion"].split()[0]: j for j in js}  # noqa: E731
    assert by_name(judge(at_8k, at_4k, "concat"))["mean-time"]["passed"] is True
    assert by_name(judge(at_8k, _stats(200.0), "gather"))["mean-time"]["passed"] is False
    zero = by_name(judge(_stats(0.3), _stats(0.3), "zero_copy"))["mean-time"]
    assert zero["passed"] is None and zero["value"] == pytest.approx(1.0)
    assert by_name(judge(at_8k, None, "concat"))["mean-time"]["value"] is None


def test_reference_context_is_8k_when_measured_else_the_largest():
    assert reference_contexts([2048, 4096, 8192, 16384]) == (8192, 4096)
    assert reference_contexts([512, 1024]) == (1024, 512)
    assert reference_contexts([1000, 3000]) == (3000, None)


def test_git_state_outside_a_checkout_or_without_git_is_unknown(tmp_path, monkeypatch):
    assert git_state(tmp_path) == {"commit": "unknown", "dirty": "unknown"}
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_state(tmp_path) == {"commit": "unknown", "dirty": "unknown"}


BARE_GPU_MACHINE = """
import sys
class NotInstalled:  # the GPU machine has only mlx, mlx-lm, numpy and matplotlib
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("asv", "asv_runner", "hypothesis", "pytest", "virtualenv"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
from kvbench import cli, measurement
sys.exit(cli.main(sys.argv[1:]))
"""


def test_runs_where_only_mlx_numpy_and_matplotlib_are_installed(tmp_path):
    out = tmp_path / "out"
    argv = ["exp006", "--preset", PRESET, "--contexts", "256", "--runs", "1", "--warmup", "0", "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", BARE_GPU_MACHINE, *argv], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert all((out / name).exists() for name in FILES)
