"""Offline checks of the GitHub workflows and behaviour tests of the scripts they call.

The workflows run on machines we cannot reach from here, so what can be checked here is:
the files against GitHub's workflow schema (check-jsonschema), a security audit (zizmor, offline
audits only), the rules the team holds them to (pinned actions, least privilege, no expression
inside a shell command, fork PRs kept off the self-hosted runner), and the scripts themselves,
run for real: the results branch against a bare git "remote", the summary, the input checks.
"""

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
BIN = Path(sys.executable).parent
SCRIPTS = ROOT / "scripts"
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
SELF_HOSTED = ["self-hosted", "macOS", "ARM64"]
# Each suppression of a zizmor finding, reviewed: {(workflow file, audit)}.
REVIEWED_SUPPRESSIONS = {("benchmarks-pr-comment.yml", "dangerous-triggers"),
                         ("benchmarks-pr.yml", "dangerous-triggers"),
                         ("benchmarks-pr-label.yml", "dangerous-triggers")}


def load(path):
    return YAML(typ="safe").load(path.read_text())


def jobs():
    return [(path.name, job_id, job) for path in WORKFLOW_FILES for job_id, job in load(path)["jobs"].items()]


def steps():
    return [(name, job_id, step) for name, job_id, job in jobs() for step in job.get("steps", [])]


def test_the_five_workflows_exist():
    assert [path.name for path in WORKFLOW_FILES] == [
        "benchmarks-main.yml", "benchmarks-pr-comment.yml", "benchmarks-pr-label.yml", "benchmarks-pr.yml", "tests.yml"]


def test_workflows_match_github_schema():
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOW_FILES],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def high_severity_findings(path):
    """zizmor's offline audit of a workflow file or directory: [(audit, file)] of High severity."""
    result = subprocess.run([BIN / "zizmor", "--offline", "--format", "json", path],
                            capture_output=True, text=True)
    assert result.stdout.startswith("["), result.stderr
    return sorted((finding["ident"], re.search(r"[\w.-]+\.ya?ml", json.dumps(finding["locations"][0])).group())
                  for finding in json.loads(result.stdout) if finding["determinations"]["severity"] == "High")


def test_zizmor_finds_nothing_of_high_severity():
    assert high_severity_findings(WORKFLOWS) == []


def test_zizmor_check_catches_a_dangerous_workflow(tmp_path):
    (tmp_path / "bad.yml").write_text("""\
on: pull_request_target
permissions: {}
jobs:
  greet:
    runs-on: ubuntu-latest
    permissions: {}
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
""")
    assert high_severity_findings(tmp_path / "bad.yml") == [("dangerous-triggers", "bad.yml"), ("template-injection", "bad.yml")]


def test_only_reviewed_zizmor_suppressions():
    found = {(path.name, audit) for path in WORKFLOW_FILES
             for audit in re.findall(r"zizmor: ignore\[([\w-]+)\]", path.read_text())}
    assert found == REVIEWED_SUPPRESSIONS


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment():
    uses = [line.strip() for path in WORKFLOW_FILES for line in path.read_text().splitlines()
            if line.strip().startswith(("uses:", "- uses:"))]
    assert uses
    for line in uses:
        action, _, comment = line.split("uses:", 1)[1].partition("#")
        assert SHA_PIN.match(action.strip()), line
        assert re.fullmatch(r"v\d+\.\d+\.\d+", comment.strip()), line


def test_permissions_are_empty_at_the_top_and_widened_per_job():
    for path in WORKFLOW_FILES:
        assert load(path)["permissions"] == {}, path.name
    for name, job_id, job in jobs():
        assert "permissions" in job, f"{name}: job {job_id} must state its permissions"
        assert "write-all" not in str(job["permissions"])
    writers = {(name, job_id): job["permissions"] for name, job_id, job in jobs()
               if "write" in job["permissions"].values()}
    assert writers == {
        ("benchmarks-main.yml", "results"): {"contents": "write"},
        ("benchmarks-main.yml", "deploy"): {"pages": "write", "id-token": "write"},
        ("benchmarks-pr-comment.yml", "comment"): {
            "actions": "read", "contents": "read", "pull-requests": "write"},
        ("benchmarks-pr-label.yml", "unlabel"): {"pull-requests": "write"},
    }
    # None of them runs on the self-hosted runner, where a reviewed fork's code has run.
    assert all(jobs_by_id()[key]["runs-on"] == "ubuntu-latest" for key in writers)


def test_no_expression_inside_a_shell_command():
    for name, job_id, step in steps():
        assert "${{" not in step.get("run", ""), f"{name}/{job_id}: pass values through env:"


def jobs_by_id():
    return {(name, job_id): job for name, job_id, job in jobs()}


def test_checkouts_do_not_keep_credentials():
    checkouts = [(name, step) for name, _, step in steps() if step.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 5
    for name, step in checkouts:
        assert step["with"]["persist-credentials"] is False, name


def test_uploads_from_a_dot_folder_include_hidden_files():
    # upload-artifact >= 4.4 silently skips paths with a component starting with "." otherwise.
    uploads = [step["with"] for _, _, step in steps() if step.get("uses", "").startswith("actions/upload-artifact@")]
    dotted = [upload for upload in uploads if re.search(r"(^|/)\.\w", upload["path"])]
    assert [upload["path"] for upload in dotted] == [".asv/results", ".asv/html"]
    assert all(upload.get("include-hidden-files") is True for upload in dotted)


def test_only_the_results_steps_get_a_token():
    holders = [(name, step["run"]) for name, _, step in steps()
               if "github.token" in json.dumps(step.get("env", {}))]
    assert holders == [
        ("benchmarks-main.yml", "bash scripts/results-branch.sh fetch"),  # contents: read
        ("benchmarks-main.yml", "bash scripts/results-branch.sh push"),
        ("benchmarks-pr-comment.yml", 'bash scripts/ci-pr-comment.sh "$RUNNER_TEMP/pr-benchmarks"'),
        ("benchmarks-pr-label.yml",
         'gh api --method DELETE "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/labels/run-benchmarks" --silent'),
        ("benchmarks-pr.yml", "bash scripts/results-branch.sh fetch"),  # contents: read; never a push
    ]
    assert not [text for text in map(Path.read_text, WORKFLOW_FILES) if "secrets." in text]


def test_the_pr_job_restores_main_s_results_before_the_gate_and_pushes_nothing():
    runs = [step.get("run") for step in jobs_by_id()["benchmarks-pr.yml", "compare"]["steps"]]
    assert runs.index("bash scripts/results-branch.sh fetch") < runs.index("bash scripts/ci-pr.sh")
    assert not [run for run in runs if run and "push" in run]


def test_self_hosted_runner_gets_no_fork_code_without_the_label_and_no_write_token():
    self_hosted = {(name, job_id): job for name, job_id, job in jobs() if job["runs-on"] == SELF_HOSTED}
    assert set(self_hosted) == {("benchmarks-main.yml", "benchmark"), ("benchmarks-pr.yml", "compare")}
    assert all(job["permissions"] == {"contents": "read"} for job in self_hosted.values())
    condition = " ".join(self_hosted["benchmarks-pr.yml", "compare"]["if"].split())
    assert condition == (
        "(github.event.pull_request.head.repo.full_name == github.repository && github.event.action != 'labeled')"
        " || (github.event.pull_request.head.repo.full_name != github.repository && github.event.action == 'labeled'"
        " && github.event.label.name == 'run-benchmarks')")
    # pull_request_target runs main's copy of the file: a fork cannot edit the condition away.
    assert list(load(WORKFLOWS / "benchmarks-pr.yml")["on"]) == ["pull_request_target"]


def test_a_push_to_a_labelled_fork_pr_removes_the_label():
    workflow = load(WORKFLOWS / "benchmarks-pr-label.yml")
    assert workflow["on"] == {"pull_request_target": {"branches": ["main"], "types": ["synchronize"]}}
    job = workflow["jobs"]["unlabel"]
    assert " ".join(job["if"].split()) == (
        "github.event.pull_request.head.repo.full_name != github.repository"
        " && contains(github.event.pull_request.labels.*.name, 'run-benchmarks')")
    assert [step.get("uses") for step in job["steps"]] == [None]  # no checkout: no PR code


def test_self_hosted_jobs_keep_their_caches_and_check_the_runner_first():
    for key in [("benchmarks-main.yml", "benchmark"), ("benchmarks-pr.yml", "compare")]:
        first, *rest = jobs_by_id()[key]["steps"]
        assert first["uses"].startswith("actions/checkout@") and first["with"]["clean"] is False, key
        assert [step.get("run") for step in rest[:2]] == [
            "bash scripts/ci-workspace.sh", "bash scripts/runner-check.sh"], key


def test_main_runs_never_overlap_and_a_backfill_is_never_replaced_by_a_push():
    workflow = load(WORKFLOWS / "benchmarks-main.yml")
    assert workflow["concurrency"] == {
        "group": "benchmarks-main-mac-arm64-1-${{ github.event_name == 'workflow_dispatch'"
                 " && format('dispatch-{0}', github.run_id) || 'push' }}",
        "cancel-in-progress": False}


def test_comment_runs_group_by_pr_and_skipped_runs_never_join():
    workflow = load(WORKFLOWS / "benchmarks-pr-comment.yml")
    assert "concurrency" not in workflow and "concurrency" not in workflow["jobs"]["which"]
    which, comment = workflow["jobs"]["which"], workflow["jobs"]["comment"]
    assert " ".join(which["if"].split()) == (
        "github.event.workflow_run.event == 'pull_request_target' && (github.event.workflow_run.conclusion == 'success'"
        " || github.event.workflow_run.conclusion == 'failure')")
    assert comment["needs"] == "which"
    assert comment["concurrency"] == {"group": "benchmarks-pr-comment-${{ needs.which.outputs.pr }}",
                                      "cancel-in-progress": False}
    download = [step for step in comment["steps"] if step.get("uses", "").startswith("actions/download-artifact@")]
    assert download[0]["continue-on-error"] is True  # no artifact: the comment says the run failed


def parse_run_name(run_name, tmp_path):
    """Run the comment workflow's step that reads the PR and the head from the run's name."""
    step = load(WORKFLOWS / "benchmarks-pr-comment.yml")["jobs"]["which"]["steps"][0]
    output = tmp_path / "github_output"
    output.write_text("")
    result = subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True,
                            env={**os.environ, "RUN_NAME": run_name, "GITHUB_OUTPUT": str(output)})
    return result, dict(line.split("=", 1) for line in output.read_text().splitlines())


def test_the_run_name_carries_the_pr_and_the_head_to_the_comment(tmp_path):
    run_name = load(WORKFLOWS / "benchmarks-pr.yml")["run-name"]
    rendered = (run_name.replace("${{ github.event.pull_request.number }}", "42")
                .replace("${{ github.event.pull_request.head.sha }}", "ab" * 20))
    result, outputs = parse_run_name(rendered, tmp_path)
    assert result.returncode == 0 and outputs == {"pr": "42", "head": "ab" * 20}, result.stdout
    for forged in ["benchmarks of PR #42 at main", "benchmarks of PR #4$(id) at " + "ab" * 20, "anything"]:
        result, outputs = parse_run_name(forged, tmp_path)
        assert result.returncode == 1 and outputs == {} and "::error::" in result.stdout


def test_dispatch_inputs_go_through_env():
    workflow = load(WORKFLOWS / "benchmarks-main.yml")
    assert set(workflow["on"]["workflow_dispatch"]["inputs"]) == {"range", "commits"}
    env = {key: value for step in workflow["jobs"]["benchmark"]["steps"] for key, value in step.get("env", {}).items()}
    assert env["BACKFILL_RANGE"] == "${{ inputs.range }}" and env["N"] == "${{ inputs.commits }}"


def test_every_script_a_workflow_runs_exists():
    commands = [step["run"] for _, _, step in steps() if "run" in step]
    for command in commands:
        for script in re.findall(r"scripts/[\w.-]+", command):
            assert (ROOT / script).is_file(), command


# --- scripts/results-branch.sh against a bare "remote" -------------------------------------------

def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def git_env(monkeypatch, tmp_path):
    """A git identity and no outside configuration or token, for every subprocess."""
    for key, value in {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
                       "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                       "HOME": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)


@pytest.fixture
def remote(tmp_path, git_env):
    path = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(path), cwd=tmp_path)
    return path


def clone(tmp_path, remote, name):
    """A project checkout with the script, origin pointing at the bare remote."""
    path = tmp_path / name
    (path / "scripts").mkdir(parents=True)
    (path / "scripts" / "results-branch.sh").write_bytes((SCRIPTS / "results-branch.sh").read_bytes())
    git("init", "-q", cwd=path)
    git("commit", "-q", "--allow-empty", "-m", "project", cwd=path)
    git("remote", "add", "origin", str(remote), cwd=path)
    return path


def results_branch(checkout, command):
    return subprocess.run(["bash", "scripts/results-branch.sh", command], cwd=checkout,
                          capture_output=True, text=True)


def write(checkout, relative, text):
    path = checkout / ".asv" / "results" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def branch_files(remote):
    return dict(line.split("\t")[::-1] for line in
                git("ls-tree", "-r", "asv-results", cwd=remote).splitlines()) if git(
        "branch", "--list", "asv-results", cwd=remote) else {}


def branch_contents(remote, name):
    return git("show", f"asv-results:{name}", cwd=remote)


def test_fetch_without_the_branch_restores_nothing_and_succeeds(tmp_path, remote):
    checkout = clone(tmp_path, remote, "a")
    result = results_branch(checkout, "fetch")
    assert result.returncode == 0, result.stderr
    assert "no branch asv-results" in result.stdout
    assert list((checkout / ".asv" / "results").iterdir()) == []


def test_push_creates_the_branch_with_the_result_files(tmp_path, remote):
    checkout = clone(tmp_path, remote, "a")
    write(checkout, "benchmarks.json", "{}")
    write(checkout, "mac-1/aaaa1111-virtualenv.json", '{"a": 1}')
    result = results_branch(checkout, "push")
    assert result.returncode == 0, result.stderr
    assert set(branch_files(remote)) == {"benchmarks.json", "mac-1/aaaa1111-virtualenv.json"}
    assert branch_contents(remote, "mac-1/aaaa1111-virtualenv.json") == '{"a": 1}'


def test_a_second_push_keeps_the_first_results_even_when_deleted_locally(tmp_path, remote):
    checkout = clone(tmp_path, remote, "a")
    write(checkout, "mac-1/aaaa1111-virtualenv.json", "first")
    assert results_branch(checkout, "push").returncode == 0
    (checkout / ".asv" / "results" / "mac-1" / "aaaa1111-virtualenv.json").unlink()
    write(checkout, "mac-1/bbbb2222-virtualenv.json", "second")
    assert results_branch(checkout, "push").returncode == 0
    assert set(branch_files(remote)) == {"mac-1/aaaa1111-virtualenv.json", "mac-1/bbbb2222-virtualenv.json"}
    assert git("rev-list", "--count", "asv-results", cwd=remote) == "2"


def test_push_with_nothing_new_makes_no_commit(tmp_path, remote):
    checkout = clone(tmp_path, remote, "a")
    write(checkout, "mac-1/aaaa1111-virtualenv.json", "first")
    assert results_branch(checkout, "push").returncode == 0
    tip = git("rev-parse", "asv-results", cwd=remote)
    result = results_branch(checkout, "push")
    assert result.returncode == 0 and "nothing to push" in result.stdout
    assert git("rev-parse", "asv-results", cwd=remote) == tip


def test_fetch_restores_into_a_fresh_checkout_without_overwriting_local_files(tmp_path, remote):
    first = clone(tmp_path, remote, "a")
    write(first, "mac-1/aaaa1111-virtualenv.json", "from the branch")
    write(first, "mac-1/bbbb2222-virtualenv.json", "from the branch")
    assert results_branch(first, "push").returncode == 0
    second = clone(tmp_path, remote, "b")
    write(second, "mac-1/bbbb2222-virtualenv.json", "local")
    result = results_branch(second, "fetch")
    assert result.returncode == 0, result.stderr
    assert "restored 1 result files" in result.stdout
    results = second / ".asv" / "results" / "mac-1"
    assert (results / "aaaa1111-virtualenv.json").read_text() == "from the branch"
    assert (results / "bbbb2222-virtualenv.json").read_text() == "local"


def test_two_machines_pushing_in_turn_keep_both_results(tmp_path, remote):
    one, two = clone(tmp_path, remote, "a"), clone(tmp_path, remote, "b")
    assert results_branch(one, "fetch").returncode == 0
    assert results_branch(two, "fetch").returncode == 0
    write(one, "mac-1/aaaa1111-virtualenv.json", "one")
    write(two, "mac-2/aaaa1111-virtualenv.json", "two")
    assert results_branch(one, "push").returncode == 0
    assert results_branch(two, "push").returncode == 0
    assert set(branch_files(remote)) == {"mac-1/aaaa1111-virtualenv.json", "mac-2/aaaa1111-virtualenv.json"}


def verdict(commit, machine="mac-1", confirmed=True):
    return {"benchmark": "bench_tiny.Tiny.time_work", "machine": machine, "env": "virtualenv-py3.11",
            "commit": commit, "confirmed": confirmed}


def write_verdicts(checkout, *verdicts):
    write(checkout, "confirmations.json", json.dumps({"verdicts": list(verdicts)}))


def verdicts_on_branch(remote):
    return json.loads(branch_contents(remote, "confirmations.json"))["verdicts"]


def test_the_verdicts_travel_with_the_results(tmp_path, remote):
    first = clone(tmp_path, remote, "a")
    write(first, "mac-1/aaaa1111-virtualenv.json", "{}")
    write_verdicts(first, verdict("a" * 40))
    assert results_branch(first, "push").returncode == 0
    assert verdicts_on_branch(remote) == [verdict("a" * 40)]
    fresh = clone(tmp_path, remote, "b")  # a wiped workspace
    result = results_branch(fresh, "fetch")
    assert result.returncode == 0 and "restored 2 result files" in result.stdout, result.stderr
    assert json.loads((fresh / ".asv/results/confirmations.json").read_text())["verdicts"] == [verdict("a" * 40)]


def test_a_push_never_loses_a_verdict_that_another_job_pushed_meanwhile(tmp_path, remote):
    one, two = clone(tmp_path, remote, "a"), clone(tmp_path, remote, "b")
    write_verdicts(one, verdict("a" * 40))
    assert results_branch(one, "push").returncode == 0
    write_verdicts(one, verdict("a" * 40), verdict("b" * 40))  # job 1 decides another flag
    assert results_branch(one, "push").returncode == 0
    # Job 2 fetched before job 1's second push, then decided a flag of its own machine.
    write_verdicts(two, verdict("a" * 40), verdict("c" * 40, machine="mac-2"))
    result = results_branch(two, "push")
    assert result.returncode == 0, result.stderr
    assert "1 verdicts that asv-results holds were added to the local confirmations.json" in result.stdout
    assert verdicts_on_branch(remote) == [verdict("a" * 40), verdict("b" * 40), verdict("c" * 40, machine="mac-2")]
    assert json.loads((two / ".asv/results/confirmations.json").read_text())["verdicts"] == verdicts_on_branch(remote)


def test_fetch_adds_the_branch_s_verdicts_to_a_local_file(tmp_path, remote):
    one, two = clone(tmp_path, remote, "a"), clone(tmp_path, remote, "b")
    write_verdicts(one, verdict("a" * 40))
    assert results_branch(one, "push").returncode == 0
    write_verdicts(two, verdict("d" * 40))
    result = results_branch(two, "fetch")
    assert result.returncode == 0 and "1 verdicts of asv-results added" in result.stdout, result.stderr
    assert json.loads((two / ".asv/results/confirmations.json").read_text())["verdicts"] == [
        verdict("a" * 40), verdict("d" * 40)]


def test_a_local_verdicts_file_that_is_not_json_is_not_pushed_over_the_branch_s(tmp_path, remote):
    one, two = clone(tmp_path, remote, "a"), clone(tmp_path, remote, "b")
    write_verdicts(one, verdict("a" * 40))
    assert results_branch(one, "push").returncode == 0
    write(two, "confirmations.json", '{"verdicts": [')
    result = results_branch(two, "push")
    assert result.returncode == 2 and "cannot merge the branch's confirmations.json" in result.stderr
    assert verdicts_on_branch(remote) == [verdict("a" * 40)]
    assert (two / ".asv/results/confirmations.json").read_text() == '{"verdicts": ['  # left as it was


def test_an_unreachable_remote_fails_with_one_clear_line(tmp_path, git_env, monkeypatch):
    checkout = clone(tmp_path, tmp_path / "missing.git", "a")
    result = results_branch(checkout, "fetch")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"results-branch: cannot reach {tmp_path / 'missing.git'} (see git's message above)"


def test_an_unknown_command_is_refused(tmp_path, remote):
    result = results_branch(clone(tmp_path, remote, "a"), "pull")
    assert (result.returncode, result.stderr.strip()) == (2, "results-branch: unknown command 'pull': use fetch or push")


# --- scripts/ci-summary.py -----------------------------------------------------------------------

def summary(tmp_path, report_text, **env):
    report = tmp_path / "p95.json"
    if report_text is not None:
        report.write_text(report_text)
    out = tmp_path / "summary.md"
    environment = {**os.environ, "GITHUB_STEP_SUMMARY": str(out), **env}
    result = subprocess.run([sys.executable, SCRIPTS / "ci-summary.py", report], env=environment,
                            capture_output=True, text=True)
    return result, out.read_text() if out.exists() else ""


SLOW_FROM = 4  # the commit from which time_a and time_b are twice as slow (7 commits)


@pytest.fixture(scope="module")
def real_p95_report(tmp_path_factory):
    """``(p95.json's text, commits)``: ``kvcache-tracker p95 --json`` over asv results that asv's
    own ``Results`` class wrote, for 7 commits of a git repository: ``time_a`` and ``time_b``
    twice as slow from commit 4 (a re-measurement dismissed ``time_b``'s flag, in the default
    verdicts file RESULTS_DIR/confirmations.json), ``time_c`` over its 5 ms budget from commit 5."""
    from asv.results import Results
    from asv.runner import BenchmarkResult
    from asv.util import write_json

    repo = tmp_path_factory.mktemp("p95-project")
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "asv.conf.json").write_text(
        '{"version": 1, "repo": ".", "branches": ["main"], "results_dir": "results", "html_dir": "html"}')
    (repo / "benchmarks").mkdir()
    (repo / "benchmarks" / "budgets.json").write_text('{"budgets_ms": {"bench_x.X.time_c": 5.0}}')
    rng = random.Random(0)
    commits = []
    for i in range(7):
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", f"c{i}", cwd=repo)
        commits.append(git("rev-parse", "HEAD", cwd=repo))
        results = Results({"machine": "mac-1", "python": "3.11"}, {}, commits[-1], 1_700_000_000_000 + i,
                          "3.11", "virtualenv-py3.11", {})
        for name, seconds in (("time_a", 0.002 if i >= SLOW_FROM else 0.001),
                              ("time_b", 0.002 if i >= SLOW_FROM else 0.001),
                              ("time_c", 0.006 if i >= 5 else 0.001)):
            samples = [seconds * (1 + rng.uniform(0, 0.02)) for _ in range(20)]
            outcome = BenchmarkResult(result=[sorted(samples)[10]], samples=[samples], number=[1], errcode=0,
                                      stderr="", profile=None)
            results.add_result({"name": f"bench_x.X.{name}", "version": "1", "params": []}, outcome,
                               record_samples=True)
        results.save(str(repo / "results"))
    write_json(str(repo / "results" / "mac-1" / "machine.json"), {"machine": "mac-1"}, api_version=1)
    dismissed = {"benchmark": "bench_x.X.time_b", "machine": "mac-1", "env": "virtualenv-py3.11",
                 "commit": commits[SLOW_FROM], "confirmed": False, "culprit": None}
    (repo / "results" / "confirmations.json").write_text(json.dumps({"verdicts": [dismissed]}))
    done = subprocess.run([BIN / "kvcache-tracker", "p95", "--no-html", "--json", "p95.json"], cwd=repo,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return (repo / "p95.json").read_text(), commits


def test_summary_shows_each_flag_s_statistic_before_after_and_change_from_a_real_p95_report(tmp_path, real_p95_report):
    report_text, commits = real_p95_report
    report = json.loads(report_text)
    result, text = summary(tmp_path, report_text, GITHUB_ACTIONS="true",
                           GITHUB_SERVER_URL="https://github.com", GITHUB_REPOSITORY="o/r")
    assert result.returncode == 0, result.stderr
    cells = [[c.strip() for c in line.strip()[1:-1].split(" | ")] for line in text.splitlines()
             if line.startswith("| ") and "bench_x" in line]
    rows = {row[1]: row for row in cells}
    assert set(rows) == {"bench_x.X.time_a", "bench_x.X.time_c"}  # time_b's flag was dismissed
    kind, _, machine, commit, statistic, before, after, change, budget = rows["bench_x.X.time_a"]
    assert (kind, machine, statistic) == ("regression", "mac-1", "p95+median")  # every call slower
    assert commit == f"[{commits[SLOW_FROM][:12]}](https://github.com/o/r/commit/{commits[SLOW_FROM]})"
    number = re.compile(r"(\d+\.\d+) ms")
    assert 1.0 <= float(number.fullmatch(before).group(1)) <= 1.03  # the samples: 1 ms + up to 2%
    assert 2.0 <= float(number.fullmatch(after).group(1)) <= 2.06
    assert change == "+100%" and budget == ""
    kind, _, _, commit, statistic, before, after, change, budget = rows["bench_x.X.time_c"]
    assert (kind, statistic, budget, commit[1:13]) == ("budget", "p95", "5.00 ms", commits[5][:12])
    assert 6.0 <= float(number.fullmatch(after).group(1)) <= 6.2
    [dismissed] = report["dismissed"]
    assert f"1 flag(s) dismissed by re-measurement (noise, not the code):\n- {dismissed['message']}" in text
    annotations = result.stdout.splitlines()
    assert len(annotations) == 2 and all(line.startswith("::warning title=p95 ") for line in annotations)
    assert any("p95 1.0" in line and "-> 2.0" in line for line in annotations), annotations


def test_summary_without_flags_says_so(tmp_path):
    result, text = summary(tmp_path, '{"flags": []}')
    assert result.returncode == 0 and "No p95 regression and no budget exceeded." in text


def test_summary_of_a_missing_report_explains_and_succeeds(tmp_path):
    result, text = summary(tmp_path, None)
    assert result.returncode == 0 and "was not written" in text


@pytest.mark.parametrize("report_text, message", [
    ("{not json", "is not JSON"), ('{"flags": {}}', 'has no "flags" list')])
def test_summary_of_a_malformed_report_fails_with_one_line(tmp_path, report_text, message):
    result, text = summary(tmp_path, report_text)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr
    assert text == ""


# --- input checks of the CI entry scripts (they stop before any real work) -----------------------

def run_script(name, *args, **env):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("ASV_MACHINE", "N", "BACKFILL_RANGE", "BASE_SHA", "HEAD_SHA", "PR_NUMBER",
                                  "RUN_HEAD_SHA", "RUN_URL", "RUN_CONCLUSION")}
    return subprocess.run(["bash", SCRIPTS / name, *args], env={**environment, **env},
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("env, message", [
    ({}, "set ASV_MACHINE"),
    ({"ASV_MACHINE": "mac 1; rm"}, "ASV_MACHINE 'mac 1; rm' may hold only"),
    ({"ASV_MACHINE": "mac-1", "N": "ten"}, "N (commits to measure) must be a positive integer, got 'ten'"),
    ({"ASV_MACHINE": "mac-1", "BACKFILL_RANGE": "--help"}, "BACKFILL_RANGE '--help' is not a git range"),
    ({"ASV_MACHINE": "mac-1", "BACKFILL_RANGE": "v0.1..main; ls"}, "is not a git range"),
])
def test_ci_main_refuses_bad_input(env, message):
    result = run_script("ci-main.sh", **env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("ci-main: ") and message in result.stderr


@pytest.mark.parametrize("env, message", [
    ({"BASE_SHA": "main", "HEAD_SHA": "f" * 40, "PR_NUMBER": "1"}, "BASE_SHA must be a full 40-character"),
    ({"BASE_SHA": "a" * 40, "HEAD_SHA": "f" * 40, "PR_NUMBER": "1 2"}, "PR_NUMBER must be a pull request number"),
])
def test_ci_pr_refuses_bad_input(env, message):
    result = run_script("ci-pr.sh", **env)
    assert result.returncode == 2 and message in result.stderr


# --- scripts/ci-pr-comment.sh --dry-run (the body; posting needs GitHub) -------------------------

def artifact(tmp_path, number, report):
    (tmp_path / "pr-number.txt").write_text(number)
    (tmp_path / "pr-comment.md").write_text(report)
    return tmp_path


MEASURED = {"PR_NUMBER": "42", "RUN_HEAD_SHA": "c" * 40}


def test_comment_body_starts_with_the_marker_and_holds_the_report(tmp_path):
    result = run_script("ci-pr-comment.sh", str(artifact(tmp_path, "42\n", "| a | b |\n")), "--dry-run",
                        RUN_URL="https://github.com/o/r/actions/runs/1", **MEASURED)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "<!-- kvcache-benchmarks -->" and lines[1] == "| a | b |"
    assert lines[-1] == "[Workflow run](https://github.com/o/r/actions/runs/1)"


def test_comment_body_of_a_huge_report_is_truncated_below_githubs_limit(tmp_path):
    result = run_script("ci-pr-comment.sh", str(artifact(tmp_path, "42", "x" * 100_000)), "--dry-run", **MEASURED)
    assert result.returncode == 0 and len(result.stdout) < 65_536 and "(truncated" in result.stdout


@pytest.mark.parametrize("number", ["", "0", "12; rm -rf /", "$(id)", "1e3"])
def test_comment_refuses_an_artifact_whose_pr_number_is_not_a_number(tmp_path, number):
    result = run_script("ci-pr-comment.sh", str(artifact(tmp_path, number, "report")), "--dry-run", **MEASURED)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().endswith("pr-number.txt does not hold a pull request number")


def test_comment_refuses_an_artifact_that_names_another_pr(tmp_path):
    result = run_script("ci-pr-comment.sh", str(artifact(tmp_path, "41", "report")), "--dry-run", **MEASURED)
    assert result.returncode == 2 and result.stdout == ""
    assert "the artifact names PR #41, but the measured run was for PR #42" in result.stderr


def test_comment_says_the_run_failed_when_it_left_no_report(tmp_path):
    result = run_script("ci-pr-comment.sh", str(tmp_path / "not-downloaded"), "--dry-run", **MEASURED,
                        RUN_CONCLUSION="failure", RUN_URL="https://github.com/o/r/actions/runs/9")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "<!-- kvcache-benchmarks -->", "### Benchmarks", "",
        f"The benchmark run for {'c' * 12} ended (failure) before it uploaded a report: its log says why.",
        "", "", "[Workflow run](https://github.com/o/r/actions/runs/9)"]


def test_comment_posts_nothing_for_a_successful_run_without_a_report(tmp_path):
    result = run_script("ci-pr-comment.sh", str(tmp_path / "not-downloaded"), "--dry-run", **MEASURED,
                        RUN_CONCLUSION="success")
    assert result.returncode == 0 and "nothing to post" in result.stdout
    assert "kvcache-benchmarks" not in result.stdout


@pytest.mark.parametrize("env, message", [
    ({"RUN_HEAD_SHA": "c" * 40}, "PR_NUMBER must be a pull request number"),
    ({"PR_NUMBER": "42", "RUN_HEAD_SHA": "main"}, "RUN_HEAD_SHA must be a full 40-character commit hash")])
def test_comment_needs_the_measured_pr_and_head(tmp_path, env, message):
    result = run_script("ci-pr-comment.sh", str(artifact(tmp_path, "42", "report")), "--dry-run", **env)
    assert result.returncode == 2 and message in result.stderr
