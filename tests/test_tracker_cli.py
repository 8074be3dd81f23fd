"""``kvcache-tracker p95`` and ``gate`` on results written by asv's own ``Results`` class.

The samples are generated with planted changes at known commits of a real git repository:
a median slowdown, a slowdown in the tail only (1 call in 10), and commits that change
nothing. Bad input must give one line on stderr and exit code 2, and never touch results.
(test_tracker_e2e.py does the same with results from real asv runs.)
"""

import hashlib
import html
import re
import json
import os
import shutil

import numpy as np
import pytest
from asv.results import Results
from asv.runner import BenchmarkResult
from asv.util import write_json

from kvtracker import cli

from conftest import asv_repo, git

MACHINE = "box"
ENV = "virtualenv-py3.11"
RESTORE = "bench_reconstruct.Reconstruct8k.time_reconstruct_8k"
ZERO_COPY = f"{RESTORE}('zero_copy')"
CONCAT = f"{RESTORE}('concat')"
TRACK = "bench_tail.RestoreTail.track_p95_ms"
N_SAMPLES = 200

# Commit messages, in branch order, and how the restore behaves at each (seconds per call).
HISTORY = [
    "base",
    "comment only",
    "comment only",
    "sleep in every call",  # EVERY_CALL
    "comment only",
    "comment only",
    "sleep in 1 call of 10",  # ONE_IN_TEN
    "comment only",
    "comment only",
]
EVERY_CALL, ONE_IN_TEN = 3, 6


def restore_samples(rng, commit_index):
    """Zero-copy restore samples: ~0.3 ms; +5 ms per call from EVERY_CALL; +30 ms in 1 of 10 from ONE_IN_TEN."""
    seconds = 0.0003 + rng.exponential(0.00005, N_SAMPLES)
    if commit_index >= EVERY_CALL:
        seconds += 0.005
    if commit_index >= ONE_IN_TEN:
        seconds[::10] += 0.030
    return list(seconds)


def save_results(results_dir, commit, date, benchmarks, record_samples=True, env=ENV, machine=MACHINE, versions=None):
    """Write one results file as ``asv run`` does; ``benchmarks``: {name: (params, samples per
    combination)}; ``versions``: {name: asv version} where not "1"."""
    results = Results({"machine": machine, "python": "3.11"}, {}, commit, date, "3.11", env, {})
    for name, (params, samples) in benchmarks.items():
        values = [float(np.nanmedian(s)) if s else None for s in samples]
        numbers = [1 if s else None for s in samples]
        outcome = BenchmarkResult(
            result=values, samples=samples, number=numbers, errcode=0, stderr="", profile=None
        )
        results.add_result(
            {"name": name, "version": (versions or {}).get(name, "1"), "params": params}, outcome, record_samples=record_samples
        )
    results.save(str(results_dir))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A git repository with HISTORY on main, an asv.conf.json, and asv results for every commit."""
    repo = asv_repo(
        tmp_path / "repo",
        '// asv config\n{"version": 1, "repo": ".", "branches": ["main"], "results_dir": "results",'
        ' "html_dir": "html", "show_commit_url": "https://example.org/c/"}\n',
    )
    commits = []
    for message in HISTORY:
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", message)
        commits.append(git(repo, "rev-parse", "HEAD"))
    results = repo / "results"
    os.makedirs(results / MACHINE)
    write_json(str(results / MACHINE / "machine.json"), {"machine": MACHINE}, api_version=1)
    rng = np.random.default_rng(0)
    for i, commit in enumerate(commits):
        samples = restore_samples(rng, i)
        save_results(
            results,
            commit,
            1_700_000_000_000 + i,
            {
                RESTORE: ([["'zero_copy'", "'concat'"]], [samples, list(rng.uniform(0.9, 1.1, 20))]),
                TRACK: ([], [[1000 * float(np.quantile(samples, 0.95))]]),
            },
        )
    monkeypatch.chdir(repo)
    return repo, commits


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tree_digest(path):
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                digest.update(name.encode() + f.read())
    return digest.hexdigest()


def assert_one_line_error(code, err, command, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"kvcache-tracker {command}: ")
    for word in words:
        assert word in lines[0]


def test_p95_flags_exactly_the_planted_changes(project, capsys, tmp_path):
    repo, commits = project
    out_json = tmp_path / "flags.json"
    code, out, err = run_cli(capsys, "p95", "--json", str(out_json))
    assert code == 0, err
    flags = json.loads(out_json.read_text())["flags"]
    found = {(f["kind"], f["benchmark"], f["commit"]) for f in flags}
    assert found == {
        ("regression", ZERO_COPY, commits[EVERY_CALL]),  # median slowdown
        ("regression", ZERO_COPY, commits[ONE_IN_TEN]),  # tail-only slowdown
        ("regression", TRACK, commits[EVERY_CALL]),
        ("regression", TRACK, commits[ONE_IN_TEN]),
    }
    by_commit = {(f["benchmark"], f["commit"]): f for f in flags}
    assert by_commit[ZERO_COPY, commits[EVERY_CALL]]["statistic"] == "p95+median"
    assert by_commit[ZERO_COPY, commits[ONE_IN_TEN]]["statistic"] == "p95"  # the median stayed
    for f in flags:
        assert f["after"] > 2 * f["before"] and f["change"] > 1
        assert f["previous_commit"] == commits[commits.index(f["commit"]) - 1]
        assert f["commit_url"] == "https://example.org/c/" + f["commit"]
    assert ZERO_COPY in out and "4 flag(s)" in out


def test_p95_waits_for_later_commits_before_flagging(project, capsys, tmp_path):
    """With the tail-only slowdown measured at only 2 commits so far, it is tentative, not a flag."""
    repo, commits = project
    for commit in commits[ONE_IN_TEN + 2 :]:
        os.remove(repo / "results" / MACHINE / f"{commit[:8]}-{ENV}.json")
    out_json = tmp_path / "flags.json"
    code, out, err = run_cli(capsys, "p95", "--json", str(out_json))
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert {f["commit"] for f in data["flags"]} == {commits[EVERY_CALL]}
    assert {(f["benchmark"], f["commit"]) for f in data["tentative"]} >= {(ZERO_COPY, commits[ONE_IN_TEN])}
    assert "tentative" in out


def test_p95_sets_apart_a_flag_that_re_measurement_dismissed(project, capsys, tmp_path):
    repo, commits = project
    verdicts = tmp_path / "confirmations.json"
    verdicts.write_text(json.dumps({"verdicts": [
        {"benchmark": ZERO_COPY, "machine": MACHINE, "env": ENV, "commit": commits[ONE_IN_TEN], "confirmed": False},
        {"benchmark": TRACK, "machine": MACHINE, "env": ENV, "commit": commits[ONE_IN_TEN], "confirmed": True},
    ]}))
    out_json = tmp_path / "flags.json"
    code, out, err = run_cli(capsys, "p95", "--json", str(out_json), "--confirmations", str(verdicts))
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert [(f["benchmark"], f["commit"]) for f in data["dismissed"]] == [(ZERO_COPY, commits[ONE_IN_TEN])]
    assert (TRACK, commits[ONE_IN_TEN]) in {(f["benchmark"], f["commit"]) for f in data["flags"]}
    assert "1 dismissed by re-measurement" in out


def test_p95_flags_a_budget_overrun_where_it_starts(project, capsys, tmp_path):
    repo, commits = project
    budgets = tmp_path / "budgets.json"
    budgets.write_text(
        '{"budgets_ms": {"%s": 20.0, "%s": 2000.0, "bench_typo.X.time_y": 1}}' % (ZERO_COPY, RESTORE)
    )
    out_json = tmp_path / "flags.json"
    code, _, err = run_cli(capsys, "p95", "--budgets", str(budgets), "--json", str(out_json))
    assert code == 0, err
    assert "the budgets for bench_typo.X.time_y match no benchmark" in err
    budget_flags = [f for f in json.loads(out_json.read_text())["flags"] if f["kind"] == "budget"]
    assert [(f["benchmark"], f["commit"], f["budget_ms"]) for f in budget_flags] == [
        (ZERO_COPY, commits[ONE_IN_TEN], 20.0)
    ]
    assert budget_flags[0]["after"] > 20.0 > budget_flags[0]["before"]


def test_p95_page_is_written_and_linked_from_asvs_index(project, capsys):
    repo, commits = project
    import asv

    html = repo / "html"
    html.mkdir()
    shutil.copy(os.path.join(os.path.dirname(asv.__file__), "www", "index.html"), html / "index.html")
    for _ in range(2):  # linking twice adds one link
        code, _, err = run_cli(capsys, "p95")
        assert code == 0, err
    index = (html / "index.html").read_text()
    assert index.count('href="p95.html"') == 1
    page = (html / "p95.html").read_text()
    assert page.count("<div class='chart'") == 3  # one plot per series: zero_copy, concat, track
    assert f"https://example.org/c/{commits[ONE_IN_TEN]}" in page  # the flag links to its commit
    # Each file named with the hash of its contents: no cache pairs this page with an older data.js.
    [(script, script_hash, data, data_hash)] = re.findall(
        r"<script defer src='([^'?]+)\?v=(\w+)' data-p95-data='([^'?]+)\?v=(\w+)'>", page
    )
    assert re.findall(r"(?:src|href)='([^']+\.(?:js|css)(?:\?[^']*)?)'", page) == [f"{script}?v={script_hash}"]
    assert (script, data) == ("p95/p95.js", "p95/data.js")
    assert script_hash == hashlib.sha256((html / script).read_bytes()).hexdigest()[:12]
    assert data_hash == hashlib.sha256((html / data).read_bytes()).hexdigest()[:12]
    p95_js = (html / "p95" / "p95.js").read_text()
    assert re.findall(r"Promise\.all\(\[(.*?)\]\)", p95_js) == ['load(ASSETS + "uPlot.iife.min.js"), load(DATA)']
    assert 'DATA = document.currentScript.getAttribute("data-p95-data")' in p95_js
    assert all((html / "p95" / name).is_file() for name in ("data.js", "uPlot.iife.min.js"))  # nothing from elsewhere
    code, _, err = run_cli(capsys, "p95", "--threshold", "0.25")  # other data: another hash in the page
    assert code == 0, err
    page = (html / "p95.html").read_text()
    new_hash = hashlib.sha256((html / data).read_bytes()).hexdigest()[:12]
    assert new_hash != data_hash and f"data-p95-data='p95/data.js?v={new_hash}'" in page


# The p95 page: its overview table (p95.html) and its plots' data (p95/data.js).

H200 = "h200"


def overview_rows(page):
    """``[(status, benchmark, machine, commit URL)]`` of the page's overview table, in order."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        (re.search(r"<td class='status'>([^<]+)<", row).group(1).strip(), html.unescape(re.search(r"title='([^']+)'", row).group(1)),
         re.search(r"data-machine='([^']+)'", row).group(1), re.search(r"class='commit' href='([^']+)'", row).group(1))
        for row in re.findall(r"<tr class=.*?</tr>", body)
    ]


def plot_data(html_dir):
    """``{(benchmark, machine): series}`` of p95/data.js, and the whole of it."""
    text = (html_dir / "p95" / "data.js").read_text()
    data = json.loads(text.removeprefix("window.P95_DATA = ").rstrip().removesuffix(";"))
    page = (html_dir / "p95.html").read_text()
    sections = re.findall(r"<section id='s(\d+)' data-machine='([^']+)'>.*?<code>([^<]+)</code>", page)
    return {(html.unescape(name), machine): data["series"][int(n)] for n, machine, name in sections}, data


def add_h200(repo, commits):
    """A second machine: zero_copy 50% slower from commit 5 on; concat twice as slow at commits
    3-6 only (a regression that went away); the track 50% higher at the last 2 commits only
    (a new level not yet held long enough)."""
    os.makedirs(repo / "results" / H200)
    write_json(str(repo / "results" / H200 / "machine.json"), {"machine": H200}, api_version=1)
    rng = np.random.default_rng(1)
    for i, commit in enumerate(commits):
        zero_copy = 0.0001 * (1 + rng.uniform(0, 0.05, N_SAMPLES)) * (1.5 if i >= 5 else 1)
        concat = 0.1 * (1 + rng.uniform(0, 0.05, 20)) * (2 if 3 <= i <= 6 else 1)
        track = 0.1 * (1 + rng.uniform(0, 0.05)) * (1.5 if i >= len(commits) - 2 else 1)
        save_results(
            repo / "results", commit, 1_700_000_000_000 + i,
            {RESTORE: ([["'zero_copy'", "'concat'"]], [list(zero_copy), list(concat)]), TRACK: ([], [[track]])},
            machine=H200,
        )


def test_linking_the_page_replaces_asvs_index_whole_and_keeps_its_mode(tmp_path):
    import asv

    from kvtracker import html_page

    html = tmp_path / "html"
    html.mkdir()
    index, reader = html / "index.html", tmp_path / "held-by-a-reader"
    shutil.copy(os.path.join(os.path.dirname(asv.__file__), "www", "index.html"), index)
    index.chmod(0o640)
    before = index.read_text()
    os.link(index, reader)  # what a browser or a publishing step that opened the old index sees
    assert html_page.link_from_index(str(html))
    assert index.read_text().count('href="p95.html"') == 1 and reader.read_text() == before
    assert index.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in html.iterdir()] == ["index.html"]  # no temporary file left


def test_p95_page_opens_with_the_flagged_benchmark_and_its_commit(project, capsys, tmp_path):
    repo, commits = project
    budgets = tmp_path / "budgets.json"
    budgets.write_text('{"budgets_ms": {"%s": 500.0}}' % CONCAT)  # concat takes ~1 s: over budget
    add_h200(repo, commits)
    code, _, err = run_cli(capsys, "p95", "--budgets", str(budgets))
    assert code == 0, err
    page = (repo / "html" / "p95.html").read_text()
    rows = overview_rows(page)
    assert rows[0][0] == "regression" and rows[0][2] == MACHINE and rows[0][1] in (ZERO_COPY, TRACK)
    assert rows[0][3] == f"https://example.org/c/{commits[ONE_IN_TEN]}"  # the newest flag, linked
    assert [(status, name, machine) for status, name, machine, _ in rows][2:] == [
        ("regression", ZERO_COPY, H200),  # +50%: after box's two +500% ones
        ("over budget", CONCAT, MACHINE),
        ("tentative", TRACK, H200),
        ("ok", CONCAT, H200),  # flagged at commit 3, back from commit 7 on
    ]
    assert rows[2][3] == f"https://example.org/c/{commits[5]}"
    assert rows[3][3] == f"https://example.org/c/{commits[0]}"  # over budget from the first commit on
    assert rows[4][3] == f"https://example.org/c/{commits[7]}"  # tentative: where the new level starts
    assert rows[5][3] == f"https://example.org/c/{commits[7]}"  # ok: its last change point
    series, _ = plot_data(repo / "html")
    assert [3, "regression"] in series[CONCAT, H200]["marks"]
    assert re.search(r"<select id='machine'><option value=''>all</option><option value='box'>box</option>"
                     r"<option value='h200'>h200</option></select>", page)
    assert ">Reconstruct8k reconstruct_8k (zero_copy)</a>" in page


def test_p95_page_with_one_machine_has_no_machine_picker(project, capsys):
    assert run_cli(capsys, "p95")[0] == 0
    page = (project[0] / "html" / "p95.html").read_text()
    assert "<select" not in page and len(overview_rows(page)) == 3


def test_p95_page_plots_the_budget_the_threshold_band_and_the_marks(project, capsys, tmp_path):
    repo, commits = project
    budgets = tmp_path / "budgets.json"
    budgets.write_text('{"budgets_ms": {"%s": 100.0}}' % ZERO_COPY)  # never reached
    verdicts = tmp_path / "confirmations.json"
    verdicts.write_text(json.dumps({"verdicts": [
        {"benchmark": ZERO_COPY, "machine": MACHINE, "env": ENV, "commit": commits[ONE_IN_TEN], "confirmed": False},
    ]}))
    out_json = tmp_path / "p95.json"
    code, _, err = run_cli(capsys, "p95", "--budgets", str(budgets), "--confirmations", str(verdicts), "--json", str(out_json))
    assert code == 0, err
    series, data = plot_data(repo / "html")
    zero_copy = series[ZERO_COPY, MACHINE]
    assert zero_copy["budget"] == 100.0 and series[CONCAT, MACHINE]["budget"] is None
    assert zero_copy["threshold"] == 0.10 and data["commitUrl"] == "https://example.org/c/"
    assert [data["commits"][x] for x in zero_copy["x"]] == commits
    [flag] = [f for f in json.loads(out_json.read_text())["flags"] if f["benchmark"] == ZERO_COPY and f["kind"] == "regression"]
    # The reference level (the threshold band's floor): the first level, then each flagged one
    # from its commit on (the rule moves on at the dismissed one too: dismissing is the main job's).
    [(start, before), (at_flag, after), (at_dismissed, last)] = zero_copy["ref"]
    assert (start, at_flag, at_dismissed) == (0, EVERY_CALL, ONE_IN_TEN)
    assert (before, after) == (pytest.approx(flag["before"], rel=1e-3), pytest.approx(flag["after"], rel=1e-3))
    assert last > 5 * after
    assert len(zero_copy["low"]) == len(zero_copy["high"]) == len(zero_copy["p95"]) == len(commits)
    marks = dict((i, kind) for i, kind in zero_copy["marks"])
    assert marks[EVERY_CALL] == "regression" and marks[ONE_IN_TEN] == "dismissed"
    page = (repo / "html" / "p95.html").read_text()
    assert overview_rows(page)[0][1:] == (ZERO_COPY, MACHINE, f"https://example.org/c/{commits[EVERY_CALL]}")
    assert "dismissed regression +" in page  # listed under the plot, apart from the flags


def test_gate_fails_on_median_and_tail_regressions_only(project, capsys):
    repo, commits = project
    code, out, _ = run_cli(capsys, "gate", commits[EVERY_CALL - 1], commits[EVERY_CALL])
    assert code == 1 and "**regression**" in out
    code, out, _ = run_cli(capsys, "gate", commits[ONE_IN_TEN - 1][:7], commits[ONE_IN_TEN][:10])  # short hashes
    assert code == 1 and f"`{ZERO_COPY}`" in out
    code, out, _ = run_cli(capsys, "gate", commits[0], commits[1])
    assert code == 0 and "no p95 regression" in out
    code, out, _ = run_cli(capsys, "gate", "main~1", "main")  # branch names
    assert code == 0


def test_gate_comment_opens_with_the_verdict_then_the_flagged_rows_then_all_rows_folded(project, capsys):
    repo, commits = project
    code, out, _ = run_cli(capsys, "gate", commits[EVERY_CALL - 1], commits[EVERY_CALL])
    assert code == 1
    assert re.fullmatch(r"### kvcache-tracker gate: \*\*\d+ p95 regression\(s\)\*\*", out.splitlines()[0])
    shown, _, folded = out.partition("<details>")
    flagged = [line for line in shown.splitlines() if line.startswith("| `")]
    every = [line for line in folded.splitlines() if line.startswith("| `")]
    assert flagged and all("**regression**" in line for line in flagged)
    assert len(every) > len(flagged) and every[: len(flagged)] == flagged  # the rest only folded


def test_gate_compares_each_environment_with_itself_and_names_it(project, capsys):
    repo, commits = project
    for i in (EVERY_CALL - 1, EVERY_CALL):
        rng = np.random.default_rng(10 + i)
        save_results(
            repo / "results",
            commits[i],
            0,
            {RESTORE: ([["'zero_copy'"]], [restore_samples(rng, 0)])},
            env="other-env",
        )
    code, out, _ = run_cli(capsys, "gate", commits[EVERY_CALL - 1], commits[EVERY_CALL])
    assert code == 1  # the default environment regressed; the other one did not
    assert f"| `{ZERO_COPY} [other-env]` |" in out and f"| `{ZERO_COPY} [{ENV}]` |" in out
    verdict, _, details = out.partition("<details>")
    assert "**2 p95 regression(s)**" in verdict and verdict.count("**regression**") == 2  # ENV's zero_copy, its track
    assert f"| `{ZERO_COPY} [other-env]` |" in details  # every row, folded


def test_gate_without_samples_compares_point_values_and_says_so(project, capsys):
    repo, commits = project
    results = repo / "results"
    for i in (0, EVERY_CALL):
        rng = np.random.default_rng(i)
        save_results(
            results,
            commits[i],
            0,
            {RESTORE: ([["'zero_copy'"]], [restore_samples(rng, i)])},
            record_samples=False,
        )
    code, out, err = run_cli(capsys, "gate", commits[0], commits[EVERY_CALL])
    assert code == 1 and "rounds" not in out.split("all ")[0]
    assert "history" in out  # the point values, with the branch's spread as the noise
    code, out, err = run_cli(capsys, "p95")
    assert code == 0 and "asv's medians are tracked there" in err


def test_p95_skips_a_corrupt_results_file_and_names_it(project, capsys, tmp_path):
    repo, commits = project
    bad = repo / "results" / MACHINE / f"{commits[ONE_IN_TEN - 1][:8]}-{ENV}.json"
    bad.write_text(bad.read_text()[:200])  # truncated
    before = tree_digest(repo / "results")
    out_json = tmp_path / "flags.json"
    code, out, err = run_cli(capsys, "p95", "--json", str(out_json))
    assert code == 0
    assert f"skipping unreadable results file {bad}" in err
    flagged = {f["commit"] for f in json.loads(out_json.read_text())["flags"]}
    assert commits[ONE_IN_TEN] in flagged  # the others were still read
    assert tree_digest(repo / "results") == before


def test_bad_input_gives_one_line_and_exit_2(project, capsys, tmp_path):
    repo, commits = project
    before = tree_digest(repo / "results")
    assert_one_line_error(
        *run_cli(capsys, "p95", "--results", str(tmp_path / "nowhere"))[::2], "p95", "does not exist"
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        *run_cli(capsys, "p95", "--results", str(tmp_path / "empty"))[::2], "p95", "no readable asv results"
    )
    assert_one_line_error(
        *run_cli(capsys, "gate", "nosuchcommit", "main")[::2], "gate", "unknown commit nosuchcommit"
    )
    assert_one_line_error(
        *run_cli(capsys, "gate", commits[0], "main", "--machine", "other")[::2],
        "gate",
        "unknown machine other",
        MACHINE,
    )
    git(
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "not benchmarked",
    )
    assert_one_line_error(
        *run_cli(capsys, "gate", commits[0], "main")[::2], "gate", "no results for HEAD main"
    )
    budgets = tmp_path / "budgets.json"
    for text, words in [
        ('{"budgets_ms": {"x": -1}}', ["budget of x", "positive"]),
        ('{"budgets": 5}', ["malformed budgets file"]),
        ('{"budgets_ms": {', ["cannot read budgets file"]),
    ]:
        budgets.write_text(text)
        assert_one_line_error(
            *run_cli(capsys, "p95", "--budgets", str(budgets))[::2], "p95", str(budgets), *words
        )
    assert_one_line_error(*run_cli(capsys, "p95", "--threshold", "0")[::2], "p95", "--threshold")
    assert_one_line_error(*run_cli(capsys, "p95", "--config", "nowhere.json")[::2], "p95", "nowhere.json")
    (repo / "asv.conf.json").write_text('{"version": 1, "repo": ".", ')
    assert_one_line_error(
        *run_cli(capsys, "gate", commits[0], commits[1])[::2], "gate", "cannot read asv.conf.json"
    )
    assert tree_digest(repo / "results") == before


def append_samples(results_dir, commit, name, params, samples_per_combination):
    """Add samples to a commit's results as ``asv run --append-samples`` does."""
    [path] = (results_dir / MACHINE).glob(f"{commit[:8]}-*.json")
    results = Results.load(str(path))
    values = [float(np.median(s)) if s else None for s in samples_per_combination]
    outcome = BenchmarkResult(
        result=values, samples=samples_per_combination, number=[1 if s else None for s in samples_per_combination],
        errcode=0, stderr="", profile=None,
    )
    results.add_result({"name": name, "version": "1", "params": params}, outcome, record_samples=True, append_samples=True)
    results.save(str(results_dir))


def plan_lines(out):
    """``[(regex, before, [suspects])]`` from ``confirm --plan``'s output."""
    return [(parts[0], parts[1], parts[2:]) for parts in (line.split() for line in out.splitlines())]


def remeasure(repo, commits, lines, slow_from, slow_until=len(HISTORY)):
    """Append a re-measurement of every commit that ``lines`` name to ZERO_COPY: commits from
    index ``slow_from`` measure as EVERY_CALL's slowdown makes them (and no later slowdown from
    ``slow_until`` on), the commits before as the base."""
    rng = np.random.default_rng(42)
    index = {c: i for i, c in enumerate(commits)}
    for regex, before, suspects in lines:
        if "zero_copy" not in regex:
            continue
        for commit in [before, *suspects]:
            i = index[commit]
            again = restore_samples(rng, min(i, slow_until - 1) if i >= slow_from else 0)
            append_samples(repo / "results", commit, RESTORE, [["'zero_copy'", "'concat'"]], [again, None])


def test_confirm_keeps_a_flag_the_re_measurement_shows_and_dismisses_one_it_does_not(project, capsys, tmp_path):
    repo, commits = project
    flags_json, plan, verdicts = tmp_path / "p95.json", tmp_path / "plan.json", tmp_path / "confirmations.json"
    assert run_cli(capsys, "p95", "--json", str(flags_json))[0] == 0
    code, out, err = run_cli(capsys, "confirm", "--plan", str(plan), "--flags", str(flags_json), "--confirmations", str(verdicts))
    assert code == 0, err
    lines = plan_lines(out)
    assert sorted((before, suspects[0]) for _, before, suspects in lines) == sorted(
        [(commits[i - 1], commits[i]) for i in (EVERY_CALL, ONE_IN_TEN)] * 2  # zero_copy and the track
    )
    assert all(re.search(regex, name) for regex, _, _ in lines for name in [ZERO_COPY, TRACK] if name in regex.replace("\\", ""))

    # The re-measurement: the every-call slowdown shows again; the tail one does not (the
    # commit measures like the one before it: its first measurement was a slow process).
    rng = np.random.default_rng(42)
    for regex, before, suspects in lines:
        if "zero_copy" not in regex:
            continue
        for commit in [before, *suspects]:
            i = commits.index(commit)
            again = restore_samples(rng, i if i < ONE_IN_TEN else ONE_IN_TEN - 1)
            append_samples(repo / "results", commit, RESTORE, [["'zero_copy'", "'concat'"]], [again, None])
    code, out, err = run_cli(capsys, "confirm", "--decide", str(plan), "--confirmations", str(verdicts))
    assert code == 0, err
    decided = {(v["benchmark"], v["commit"]): v for v in json.loads(verdicts.read_text())["verdicts"]}
    assert decided[ZERO_COPY, commits[EVERY_CALL]]["confirmed"] is True
    assert decided[ZERO_COPY, commits[EVERY_CALL]]["culprit"] == commits[EVERY_CALL]
    assert decided[ZERO_COPY, commits[ONE_IN_TEN]]["confirmed"] is False
    assert "dismissed" in out and "stands" in out

    # The re-measured samples joined the results (appended): the dismissed flag is reported
    # apart, or gone where the added samples moved the level back.
    code, out, err = run_cli(capsys, "p95", "--json", str(flags_json), "--confirmations", str(verdicts))
    report = json.loads(flags_json.read_text())
    assert (ZERO_COPY, commits[ONE_IN_TEN]) not in {(f["benchmark"], f["commit"]) for f in report["flags"]}
    assert (ZERO_COPY, commits[EVERY_CALL]) in {(f["benchmark"], f["commit"]) for f in report["flags"]}

    # Decided flags are not planned again.
    code, out, _ = run_cli(capsys, "confirm", "--plan", str(plan), "--flags", str(flags_json), "--confirmations", str(verdicts))
    planned = {c for regex, _, suspects in plan_lines(out) if "zero_copy" in regex for c in suspects}
    assert not planned & {commits[EVERY_CALL], commits[ONE_IN_TEN]}


def test_confirm_names_the_first_candidate_whose_re_measurement_is_slow(project, capsys, tmp_path):
    repo, commits = project
    flags_json, plan, verdicts = tmp_path / "p95.json", tmp_path / "plan.json", tmp_path / "confirmations.json"
    run_cli(capsys, "p95", "--json", str(flags_json))
    _, out, _ = run_cli(capsys, "confirm", "--plan", str(plan), "--flags", str(flags_json), "--confirmations", str(verdicts))
    lines = [line for line in plan_lines(out) if "zero_copy" in line[0] and line[2][0] == commits[EVERY_CALL]]
    assert lines[0][2][:2] == [commits[EVERY_CALL], commits[EVERY_CALL + 1]]  # the next commit is a candidate
    # Re-measured, the flagged commit is at the old level and the next one is slow: as if the
    # first measurement of EVERY_CALL had been a slow process just before the real step.
    remeasure(repo, commits, lines, slow_from=EVERY_CALL + 1)
    assert run_cli(capsys, "confirm", "--decide", str(plan), "--confirmations", str(verdicts))[0] == 0
    [verdict] = [v for v in json.loads(verdicts.read_text())["verdicts"] if v["benchmark"] == ZERO_COPY]
    assert (verdict["confirmed"], verdict["culprit"]) == (True, commits[EVERY_CALL + 1])
    run_cli(capsys, "p95", "--json", str(flags_json), "--confirmations", str(verdicts))
    named = [f for f in json.loads(flags_json.read_text())["flags"] if f["benchmark"] == ZERO_COPY and f["kind"] == "regression"]
    assert (commits[EVERY_CALL + 1], commits[EVERY_CALL]) in {(f["commit"], f["previous_commit"]) for f in named}


def planned_and_remeasured(project, capsys, tmp_path):
    """``(plan path, plan)`` of the planted flags, their commits measured again (every-call slowdown only)."""
    repo, commits = project
    flags_json, plan = tmp_path / "p95.json", tmp_path / "plan.json"
    assert run_cli(capsys, "p95", "--json", str(flags_json))[0] == 0
    assert run_cli(capsys, "confirm", "--plan", str(plan), "--flags", str(flags_json))[0] == 0
    planned = json.loads(plan.read_text())
    lines = [(f"^{re.escape(f['benchmark'])}$", f["before"], f["suspects"]) for f in planned["flags"]]
    remeasure(repo, commits, lines, slow_from=EVERY_CALL, slow_until=ONE_IN_TEN)
    return plan, planned


def test_confirm_decide_that_fails_while_writing_leaves_the_verdicts_as_they_were(project, capsys, tmp_path):
    from fractions import Fraction

    from kvtracker import confirm

    repo, _ = project
    _, plan = planned_and_remeasured(project, capsys, tmp_path)
    verdicts = tmp_path / "confirmations.json"
    verdicts.write_text(json.dumps({"verdicts": [{"benchmark": TRACK, "machine": MACHINE, "env": ENV, "commit": "c" * 40, "confirmed": True}]}))
    before = verdicts.read_text()
    for flag in plan["flags"]:
        flag["change"] = Fraction(flag["change"]).limit_denominator(1000)  # compares as a number; JSON cannot write it
    with pytest.raises(TypeError, match="Fraction"):
        confirm.decide(plan, str(repo / "results"), str(verdicts))
    assert verdicts.read_text() == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name,text,words", [
    ("p95.json", '{"series": []}', ["'flags'"]),
    ("p95.json", '[{"benchmark": "b"}]', ["'flags'"]),
    ("p95.json", '{"flags": {"benchmark": "b"}}', ["'flags'", "list"]),
    ("p95.json", '{"flags": [{"benchmark": "b", "commit": "c", "kind": "regression"}]}', ["flag 0", "machine", "env", "previous_commit"]),
    ("p95.json", '{"flags": [3]}', ["flag 0", "benchmark"]),
    ("confirmations.json", '{"verdicts": [{"benchmark": "b", "machine": "m", "env": "e"}]}', ["verdict 0", "commit", "confirmed"]),
    ("confirmations.json", '{"verdicts": 5}', ["'verdicts'", "list"]),
    ("confirmations.json", '[]', ["'verdicts'"]),
])
def test_confirm_plan_with_malformed_input_gives_one_line_naming_the_file_and_what_is_missing(project, capsys, tmp_path, name, text, words):
    flags_json, verdicts = tmp_path / "p95.json", tmp_path / "confirmations.json"
    assert run_cli(capsys, "p95", "--json", str(flags_json))[0] == 0
    (tmp_path / name).write_text(text)
    code, _, err = run_cli(capsys, "confirm", "--plan", str(tmp_path / "plan.json"), "--flags", str(flags_json), "--confirmations", str(verdicts))
    assert_one_line_error(code, err, "confirm", str(tmp_path / name), *words)
    if name == "confirmations.json":  # p95 reads the verdicts too
        assert_one_line_error(*run_cli(capsys, "p95", "--confirmations", str(verdicts))[::2], "p95", str(verdicts), *words)


@pytest.mark.parametrize("malformed,words", [
    ({}, ["'flags'"]),
    ({"flags": [{"benchmark": ZERO_COPY}]}, ["flag 0", "counts", "change", "statistic"]),
    ("verdicts", ["verdict 0", "confirmed"]),
])
def test_confirm_decide_with_malformed_input_gives_one_line_and_writes_nothing(project, capsys, tmp_path, malformed, words):
    plan, _ = planned_and_remeasured(project, capsys, tmp_path)
    verdicts = tmp_path / "confirmations.json"
    verdicts.write_text('{"verdicts": []}')
    if malformed == "verdicts":
        verdicts.write_text('{"verdicts": [{"benchmark": "b", "machine": "m", "env": "e", "commit": "c"}]}')
        bad = verdicts
    else:
        plan.write_text(json.dumps(malformed))
        bad = plan
    before = verdicts.read_text()
    code, _, err = run_cli(capsys, "confirm", "--decide", str(plan), "--confirmations", str(verdicts))
    assert_one_line_error(code, err, "confirm", str(bad), *words)
    assert verdicts.read_text() == before


def test_gate_without_samples_or_history_does_not_judge_and_says_so(project, capsys):
    repo, commits = project
    results = repo / "results" / MACHINE
    for path in results.glob("*.json"):
        if path.name != "machine.json" and not any(path.name.startswith(c[:8]) for c in commits[:2]):
            path.unlink()
    code, out, err = run_cli(capsys, "gate", commits[0], commits[1])
    assert code == 0 and "no noise estimate" in out
    assert "not judged" in err


def test_nan_and_all_zero_samples_are_reported_not_crashed_on(project, capsys, tmp_path):
    repo, commits = project
    nan_samples = [float("nan")] * 5 + restore_samples(np.random.default_rng(7), 0)[5:]
    save_results(repo / "results", commits[1], 0, {RESTORE: ([["'zero_copy'", "'concat'"]], [nan_samples, [0.0] * 20])})
    save_results(repo / "results", commits[2], 0, {RESTORE: ([["'zero_copy'", "'concat'"]], [restore_samples(np.random.default_rng(8), 0), [0.0] * 20])})
    before = tree_digest(repo / "results")
    out_json = tmp_path / "p95.json"
    code, out, err = run_cli(capsys, "p95", "--json", str(out_json))
    assert code == 0, err
    [zero_copy] = [s for s in json.loads(out_json.read_text())["series"] if s["benchmark"] == ZERO_COPY]
    assert zero_copy["points"][1]["n_samples"] == N_SAMPLES - 5  # the NaN samples dropped
    assert "a p95 of 0 or not a number" in err and CONCAT in err
    code, out, err = run_cli(capsys, "gate", commits[1], commits[2])
    assert code == 0 and "no p95" in out and "a p95 of 0 or less" in err
    assert tree_digest(repo / "results") == before


@pytest.mark.parametrize("environment,expected", [
    ({"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "team/kvcache"}, "https://github.com/team/kvcache/commit/"),
    ({}, None),
])
def test_without_show_commit_url_commits_link_to_the_github_actions_repository(tmp_path, monkeypatch, environment, expected):
    from kvtracker.project import load_project

    config = tmp_path / "asv.conf.json"
    config.write_text('{"version": 1, "repo": ".", "branches": ["main"], "results_dir": "results", "html_dir": "html"}\n')
    for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert load_project(str(config)).commit_url == expected
    config.write_text(config.read_text().replace('"html"', '"html", "show_commit_url": "https://example.org/c/"'))
    assert load_project(str(config)).commit_url == "https://example.org/c/"  # the config's wins



def test_a_new_benchmark_version_starts_a_new_series_and_a_retired_benchmark_is_set_apart(project, capsys, tmp_path):
    """asv starts a new series when a benchmark's version changes and shows none of a benchmark
    gone from benchmarks.json: neither is flagged, gated across, or shown as a current row."""
    repo, commits = project
    rng = np.random.default_rng(3)
    bumped, gone = "bench_new.Work.time_work", "bench_gone.Old.time_old"
    for i, commit in enumerate(commits):
        version = "1" if i < EVERY_CALL else "2"  # version 2 measures a workload 10x the size
        samples = list(0.001 * (1 if version == "1" else 10) + rng.exponential(0.0001, 50))
        old = list(rng.uniform(1e-3, 2e-3, 50) * (1 + 5 * (i >= 5)))
        save_results(repo / "results", commit, 1_700_000_000_000 + i, {bumped: ([], [samples]), gone: ([], [old])}, versions={bumped: version})
    write_json(str(repo / "results" / "benchmarks.json"), {bumped: {"version": "2", "rounds": 1}, RESTORE: {"version": "1"}, TRACK: {"version": "1"}}, api_version=2)
    out_json = tmp_path / "flags.json"
    code, out, err = run_cli(capsys, "p95", "--json", str(out_json))
    assert code == 0, err
    report = json.loads(out_json.read_text())
    judged = {f["benchmark"] for f in report["flags"] + report["tentative"]}
    assert bumped not in judged and gone not in judged
    assert {(r["benchmark"], r["version"]) for r in report["retired"]} >= {(bumped, "1"), (gone, "1")}
    [current] = [s for s in report["series"] if s["benchmark"] == bumped]
    assert current["version"] == "2" and len(current["points"]) == len(commits) - EVERY_CALL
    assert gone not in {s["benchmark"] for s in report["series"]}
    assert "retired series, not judged" in out
    code, out, err = run_cli(capsys, "gate", commits[EVERY_CALL - 1], commits[EVERY_CALL])
    assert bumped not in out.split("<details>")[0]  # versions 1 and 2 are not compared


def test_a_series_of_asvs_medians_is_called_a_median_everywhere(tmp_path, capsys, monkeypatch):
    repo = asv_repo(tmp_path / "repo", '{"version": 1, "repo": ".", "branches": ["main"], "results_dir": "results", "html_dir": "html"}\n')
    commits = []
    for i in range(12):
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", f"c{i}")
        commits.append(git(repo, "rev-parse", "HEAD"))
    os.makedirs(repo / "results" / MACHINE)
    write_json(str(repo / "results" / MACHINE / "machine.json"), {"machine": MACHINE}, api_version=1)
    rng = np.random.default_rng(1)
    for i, commit in enumerate(commits):
        samples = list(rng.normal(1e-3 * (1.5 if i >= 8 else 1.0), 1e-5, 20))
        save_results(repo / "results", commit, 1_700_000_000_000 + i, {RESTORE: ([["'zero_copy'"]], [samples])}, record_samples=False)
    monkeypatch.chdir(repo)
    out_json = tmp_path / "p95.json"
    code, out, err = run_cli(capsys, "p95", "--no-html", "--json", str(out_json))
    assert code == 0, err
    report = json.loads(out_json.read_text())
    assert [s["statistic"] for s in report["series"]] == ["median"]
    [flag] = report["flags"]
    assert flag["statistic"] == "median" and [m["statistic"] for m in flag["moves"]] == ["median"]
    assert "median 1.00 ms -> 1.50 ms" in out and "p95" not in flag["message"]
    assert err.count("--record-samples") == 1
    code, out, _ = run_cli(capsys, "gate", commits[7], commits[8])
    assert "median" in out.splitlines()[0] and "| median |" in out


def test_thresholds_are_asvs_regressions_thresholds_unless_one_is_given(project, capsys, tmp_path):
    repo, commits = project
    config = (repo / "asv.conf.json").read_text().rstrip().rstrip("}")
    (repo / "asv.conf.json").write_text(config + ', "regressions_thresholds": {".*RestoreTail": 0.5, ".*track_p95": 0.3, "nomatch": 0.01}}\n')
    out_json = tmp_path / "p95.json"
    assert run_cli(capsys, "p95", "--no-html", "--json", str(out_json))[0] == 0
    thresholds = {s["benchmark"]: s["threshold"] for s in json.loads(out_json.read_text())["series"]}
    assert thresholds[TRACK] == 0.5 and thresholds[ZERO_COPY] == 0.10  # the largest match, as asv publish takes it
    assert run_cli(capsys, "p95", "--no-html", "--json", str(out_json), "--threshold", "0.2")[0] == 0
    assert {s["threshold"] for s in json.loads(out_json.read_text())["series"]} == {0.2}
    (repo / "asv.conf.json").write_text(config + ', "regressions_thresholds": {"(": 0.1}}\n')
    code, _, err = run_cli(capsys, "p95", "--no-html")
    assert_one_line_error(code, err, "p95", "regressions_thresholds")


@pytest.mark.parametrize("value,unit,shown", [
    (0.00123, "ms", "1.23 µs"), (0.13, "ms", "130 µs"), (5.4, "ms", "5.40 ms"), (1234.5, "ms", "1.23 s"),
    (2e-7, "ms", "0.200 ns"), (4.1, "probes", "4.10 probes"), (1234567, "instructions", "1.23M instructions"),
])
def test_values_print_in_a_unit_that_suits_them_never_as_zero(value, unit, shown):
    from kvtracker import render

    assert render.amount(value, render.display_unit(unit, [value])) == shown


def test_a_clone_without_the_local_branch_reads_origins_and_says_so(project, capsys, tmp_path, monkeypatch):
    repo, commits = project
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "the results, for the clone")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", "--detach")  # as CI checks out a commit
    git(clone, "branch", "-q", "-D", "main")
    monkeypatch.chdir(clone)
    out_json = tmp_path / "p95.json"
    code, out, err = run_cli(capsys, "p95", "--no-html", "--json", str(out_json))
    assert code == 0, err
    assert "no local branch main" in err and "reading origin/main" in err and "asv date" not in err
    assert commits[EVERY_CALL] in {f["commit"] for f in json.loads(out_json.read_text())["flags"]}
    git(clone, "remote", "remove", "origin")
    code, out, err = run_cli(capsys, "p95", "--no-html")
    assert "no branch main" in err and "git fetch origin main" in err


def test_a_verdict_is_found_again_for_the_same_change_and_not_for_a_new_commit():
    from kvtracker import confirm

    key = {"benchmark": "b", "machine": "m", "env": "e"}
    position = {f"c{i}": i for i in range(40)}
    stood = key | {"commit": "c30", "culprit": "c31", "confirmed": True, "remeasured": {"c30": 0.0, "c31": 0.2}}
    gone = key | {"commit": "c10", "culprit": None, "confirmed": False, "remeasured": {"c10": 0.0}}
    verdicts = {("b", "m", "e"): [stood, gone]}

    def flag(commit, *candidates):
        return key | {"commit": commit, "candidates": [commit, *candidates]}

    assert confirm.verdict_for(flag("c31"), verdicts, position) is stood  # its culprit
    assert confirm.verdict_for(flag("c33", "c34"), verdicts, position) is stood  # the change point moved by 2
    assert confirm.verdict_for(flag("c36", "c37"), verdicts, position) is None  # another change
    assert confirm.verdict_for(flag("c10"), verdicts, position) is gone
    assert confirm.verdict_for(flag("c10", "c11"), verdicts, position) is None  # c11 was never re-measured
