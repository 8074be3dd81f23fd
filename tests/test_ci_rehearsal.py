"""A rehearsal of the benchmark workflows as GitHub runs them, over a tiny project.

The workflows' jobs run here as a runner runs them: the ``run:`` steps in the order of the
YAML, under ``bash --noprofile --norc -eo pipefail``, with the environment the workflow, the
job and the step set (their ``${{ }}`` expressions evaluated from a small event context that
the test builds: push, workflow_dispatch, pull_request_target, workflow_run), each ``if:``
evaluated as GitHub does (``success() &&`` implied where no status function is named), and
``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``, ``RUNNER_TEMP``, job outputs and ``needs``.
The self-hosted jobs share one workspace, kept between jobs (``clean: false``, then
``scripts/ci-workspace.sh``); a GitHub-hosted job gets a fresh one. The ``uses:`` steps are
emulated: checkout fetches from origin (all branches with ``fetch-depth: 0``, else the one
commit) and checks the ref out into the workspace, cleaning it first unless ``clean: false``;
upload-artifact and download-artifact copy the named paths to and from a folder per run (an
upload of nothing with ``if-no-files-found: warn`` makes no artifact and no ``artifact-id``,
and hidden files go only with ``include-hidden-files``); the Pages steps keep the dashboard in
a folder. What is not emulated: ``scripts/runner-check.sh`` cannot pass on Linux (it checks
for macOS, Metal and pmset), so exactly that step is skipped; ``gh`` is GitHub's API, which
cannot be reached: a stand-in on PATH records each call and answers the two reads that
``ci-pr-comment.sh`` makes (the PR's head, the comments so far); concurrency groups are not
needed, as the runs here follow one another.

origin is a bare repository, which also holds the results branch. The project is a tiny
package with a tiny asv suite of its own (a sleep of 1 ms per call, 3 ms after the planted
slowdown), with this project's asv.conf.json, workflows and scripts copied in; only
scripts/venv.sh is a stand-in that names this interpreter (as in tests/test_results_safety.py).
The sequence: main job 1 (a dispatch measuring 6 commits) -> a push with the planted slowdown
-> main job 2 (flags it, re-measures it, decides) -> main job 3 (a dispatch with a backfill
range whose commits are all measured: nothing new) -> a PR from a branch -> its comment
job -> main job 4 (a push after the PR). It checks that results and verdicts survive every
job, that nothing is measured again once decided, that the PR's gate used main's history,
that the job summary and the PR comment hold real numbers, and that nothing of the PR reaches
the results branch.
"""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from kvtracker import render, stats
from kvtracker.read import read_measurements

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "mac-arm64-1"  # the workflows' ASV_MACHINE
REPOSITORY = "owner/tiny"
BENCHMARK = "bench_tiny.Tiny.time_work"
SAMPLES = 20  # 2 rounds of 10, per measurement
PR_NUMBER = 7
SELF_HOSTED = ["self-hosted", "macOS", "ARM64"]
SKIPPED_STEP = "bash scripts/runner-check.sh"  # needs macOS: the one step not run here


# --- GitHub's expressions: the few forms the workflows use ----------------------------------------

TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(==|!=|&&|\|\||!|\(|\)|,)|([A-Za-z_][\w.*-]*))")


def tokens(text):
    found, at = [], 0
    while at < len(text.rstrip()):
        match = TOKEN.match(text, at)
        assert match, f"cannot read the expression {text!r} at {text[at:]!r}"
        found.append(match.group(1) and ("str", match.group(1)[1:-1].replace("''", "'"))
                     or match.group(2) and ("op", match.group(2)) or ("name", match.group(3)))
        at = match.end()
    return found


def truthy(value):
    return value not in (None, "", False, 0)


def loose(value):
    """What GitHub compares: strings case-insensitively, null as the empty string here."""
    return "" if value is None else str(value).lower()


class Expression:
    """A recursive-descent evaluator of ``||``, ``&&``, ``!``, ``==``, ``!=``, parentheses,
    string literals, context paths (with ``*``) and the functions the workflows call."""

    def __init__(self, text, context, functions):
        self.tokens, self.context, self.functions = tokens(text), context, functions

    def value(self):
        result = self.either()
        assert not self.tokens, f"unread: {self.tokens}"
        return result

    def take(self, op):
        if self.tokens and self.tokens[0] == ("op", op):
            self.tokens.pop(0)
            return True
        return False

    def either(self):
        left = self.both()
        while self.take("||"):
            right = self.both()
            left = left if truthy(left) else right
        return left

    def both(self):
        left = self.negation()
        while self.take("&&"):
            right = self.negation()
            left = right if truthy(left) else left
        return left

    def negation(self):
        if self.take("!"):
            return not truthy(self.negation())
        left = self.primary()
        for op in ("==", "!="):
            if self.take(op):
                equal = loose(left) == loose(self.primary())
                return equal if op == "==" else not equal
        return left

    def primary(self):
        if self.take("("):
            inner = self.either()
            assert self.take(")")
            return inner
        kind, text = self.tokens.pop(0)
        if kind == "str":
            return text
        if self.take("("):
            args = []
            while not self.take(")"):
                args.append(self.either())
                self.take(",")
            return self.functions[text](*args)
        if text in ("true", "false"):
            return text == "true"
        return lookup(self.context, text.split("."))


def lookup(value, path):
    for i, key in enumerate(path):
        if key == "*":
            return [lookup(item, path[i + 1:]) for item in value or []]
        value = value.get(key) if isinstance(value, dict) else None
    return value


def evaluate(text, context, functions):
    text = text.strip()
    if text.startswith("${{") and text.endswith("}}") and text.count("${{") == 1:
        text = text[3:-2]
    return Expression(text, context, functions).value()


def substitute(text, context, functions):
    """A string with each ``${{ expr }}`` replaced by its value, as GitHub renders it."""
    def render(match):
        value = evaluate(match.group(1), context, functions)
        return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(text, bool):  # YAML's true and false, as GitHub passes them on: strings
        return str(text).lower()
    return re.sub(r"\$\{\{(.*?)\}\}", render, str(text))


STATUS_FUNCTIONS = ("success()", "failure()", "cancelled()", "always()")


def condition(text, context, functions):
    """An ``if:``: ``success() && (...)`` unless it names a status function itself."""
    if text is None:
        return functions["success"]()
    text = str(text).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    if not any(name in text for name in STATUS_FUNCTIONS):
        text = f"success() && ({text})"
    return truthy(evaluate(text, context, functions))


# --- the runner ----------------------------------------------------------------------------------

def git(*args, cwd, check=True):
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True).stdout.strip()


GH_STAND_IN = """#!/usr/bin/env bash
# gh stand-in: records each call; answers the PR's head and the (empty) list of comments;
# a POST or PATCH keeps the body it was given.
printf '%s\\n' "$*" >>"{log}"
case "$*" in
  *"/pulls/"*) cat "{head}" ;;
  *"--paginate"*"/comments"*) ;;
  *"--method POST"*|*"--method PATCH"*)
    for arg; do case $arg in body=@*) cp "${{arg#body=@}}" "{posted}/$(date +%s%N).md" ;; esac; done
    echo "https://github.com/{repository}/pull/{pr}#issuecomment-1" ;;
  *) echo "gh stand-in: no answer for: $*" >&2; exit 1 ;;
esac
"""


class Runner:
    """Runs workflow files of the project in ``origin`` the way GitHub and its runners do."""

    def __init__(self, base, origin):
        self.base, self.origin = base, origin
        self.workspace = base / "self-hosted" / "_work" / "tiny" / "tiny"  # kept between jobs
        self.artifacts, self.pages = base / "artifacts", base / "pages"
        self.gh_log, self.posted = base / "gh.log", base / "posted"
        self.run_id, self.jobs_run, self.artifacts_made = 1000, 0, 0
        self.runs = []
        tools = base / "tools"
        for folder in (self.workspace, self.artifacts, self.pages, self.posted, tools, base / "home-self-hosted"):
            folder.mkdir(parents=True, exist_ok=True)
        (tools / "gh").write_text(GH_STAND_IN.format(log=self.gh_log, head=base / "pr-head.txt", posted=self.posted,
                                                     repository=REPOSITORY, pr=PR_NUMBER))
        (tools / "gh").chmod(0o755)
        # The runners' own python3 and tools; not this test's virtualenv (the results job on
        # ubuntu-latest does not install the project).
        venv_bin = os.path.dirname(sys.executable)
        path = [p for p in os.environ["PATH"].split(os.pathsep) if p and os.path.realpath(p) != os.path.realpath(venv_bin)]
        real_home = os.path.expanduser("~")
        self.env = {
            "PATH": os.pathsep.join([str(tools), *path]), "LANG": "C.UTF-8",
            "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", os.path.join(real_home, ".cache")),
            "XDG_CONFIG_HOME": os.environ.get("XDG_CONFIG_HOME", os.path.join(real_home, ".config")),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "CI": "true", "GITHUB_ACTIONS": "true",
            "GITHUB_REPOSITORY": REPOSITORY, "GITHUB_SERVER_URL": "https://github.com",
        }

    # -- a workflow run --

    def run(self, workflow_file, event_name, event, sha, inputs=None):
        """Run one workflow for one event; a dict with its conclusion, jobs and run id."""
        self.run_id += 1
        workflow = YAML(typ="safe").load(git("show", f"{sha}:.github/workflows/{workflow_file}", cwd=self.origin))
        assert triggered(workflow, event_name, event), f"{workflow_file} does not run on {event_name}"
        dispatch = (workflow["on"].get("workflow_dispatch") or {}) if event_name == "workflow_dispatch" else {}
        defaults = {name: spec.get("default", "") for name, spec in dispatch.get("inputs", {}).items()}
        github = {"event_name": event_name, "event": event, "sha": sha, "ref": "refs/heads/main",
                  "repository": REPOSITORY, "run_id": str(self.run_id), "token": "read-or-write-token",
                  "server_url": "https://github.com"}
        context = {"github": github, "inputs": {**defaults, **(inputs or {})}, "needs": {}, "env": {}}
        run = {"id": self.run_id, "workflow": workflow["name"], "jobs": {}, "event": event_name,
               "display_title": substitute(workflow.get("run-name", workflow["name"]), context, self.functions(context, None))}
        for job_id, job in workflow["jobs"].items():
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            context["needs"] = {n: {"result": run["jobs"][n]["result"], "outputs": run["jobs"][n]["outputs"]} for n in needs}
            all_needed = all(run["jobs"][n]["result"] == "success" for n in needs)
            functions = self.functions(context, None, success=lambda: all_needed)
            if not condition(job.get("if"), context, functions):
                run["jobs"][job_id] = {"result": "skipped", "outputs": {}, "log": "", "summary": ""}
                continue
            run["jobs"][job_id] = self.run_job(workflow, job, context)
        failed = any(j["result"] == "failure" for j in run["jobs"].values())
        run["conclusion"] = "failure" if failed else "success"
        self.runs.append(run)
        return run

    def functions(self, context, workspace, success=lambda: True, failure=lambda: False):
        def hash_files(pattern):
            matches = sorted((workspace or Path("/nonexistent")).glob(pattern))
            files = [m for m in matches if m.is_file()]
            return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest() if files else ""
        return {"success": success, "failure": failure, "cancelled": lambda: False, "always": lambda: True,
                "hashFiles": hash_files, "contains": lambda haystack, needle: (
                    needle in haystack if isinstance(haystack, list) else loose(needle) in loose(haystack)),
                "format": lambda fmt, *args: re.sub(r"\{(\d+)\}", lambda m: str(args[int(m.group(1))]), fmt)}

    def run_job(self, workflow, job, context):
        self_hosted = job["runs-on"] == SELF_HOSTED
        self.jobs_run += 1
        job_dir = self.base / f"job-{self.jobs_run}"
        temp = job_dir / "runner-temp"
        temp.mkdir(parents=True)
        if self_hosted:
            workspace, home = self.workspace, self.base / "home-self-hosted"
        else:
            workspace, home = job_dir / "workspace", job_dir / "home"
            workspace.mkdir()
            home.mkdir()
        context = {**context, "runner": {"temp": str(temp), "os": "macOS" if self_hosted else "Linux"},
                   "steps": {}, "env": {**workflow.get("env", {}), **job.get("env", {})}}
        state = {"failed": False, "log": [], "summary": []}
        for step in job["steps"]:
            functions = self.functions(context, workspace, success=lambda: not state["failed"],
                                       failure=lambda: state["failed"])
            if not condition(step.get("if"), context, functions):
                continue
            if step.get("run") == SKIPPED_STEP:
                state["log"].append(f"== skipped here (needs macOS): {SKIPPED_STEP}")
                continue
            outputs, ok = self.run_step(step, context, functions, workspace, home, temp, state)
            if step.get("id"):
                context["steps"][step["id"]] = {"outputs": outputs, "outcome": "success" if ok else "failure"}
            if not ok and not step.get("continue-on-error"):
                state["failed"] = True
        functions = self.functions(context, workspace)
        outputs = {name: substitute(value, context, functions) for name, value in (job.get("outputs") or {}).items()}
        return {"result": "failure" if state["failed"] else "success", "outputs": outputs,
                "log": "\n".join(state["log"]), "summary": "".join(state["summary"]), "workspace": workspace}

    def run_step(self, step, context, functions, workspace, home, temp, state):
        name = step.get("name", step.get("run", step.get("uses")))
        env_values = {key: substitute(value, context, functions) for key, value in
                      {**context["env"], **(step.get("env") or {})}.items()}
        with_values = {key: substitute(value, context, functions) for key, value in (step.get("with") or {}).items()}
        state["log"].append(f"== {name}")
        if "uses" in step:
            action = step["uses"].split("@")[0]
            try:
                outputs = getattr(self, action.split("/")[1].replace("-", "_"))(with_values, workspace, context)
                return outputs, True
            except StepFailed as error:
                state["log"].append(f"{action} failed: {error}")
                return {}, False
        files = {key: temp / f"{key.lower()}-{len(state['log'])}" for key in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")}
        for path in files.values():
            path.write_text("")
        script = temp / f"step-{len(state['log'])}.sh"
        script.write_text(step["run"])
        github = context["github"]
        env = {**self.env, "HOME": str(home), "RUNNER_TEMP": str(temp), "GITHUB_WORKSPACE": str(workspace),
               "GITHUB_SHA": github["sha"], "GITHUB_REF": github["ref"], "GITHUB_EVENT_NAME": github["event_name"],
               "GITHUB_RUN_ID": github["run_id"], **{k: str(v) for k, v in files.items()}, **env_values}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=600)
        state["log"].append(done.stdout + done.stderr + f"(exit {done.returncode})")
        state["summary"].append(files["GITHUB_STEP_SUMMARY"].read_text())
        outputs = dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines() if "=" in line)
        return outputs, done.returncode == 0

    # -- the actions, emulated --

    def checkout(self, with_values, workspace, context):
        if with_values.get("clean", "true") != "false" and (workspace / ".git").exists():
            git("clean", "-ffdx", cwd=workspace)
            git("reset", "--hard", "HEAD", cwd=workspace)
        if not (workspace / ".git").exists():
            git("init", "-q", cwd=workspace)
            git("remote", "add", "origin", str(self.origin), cwd=workspace)
        ref = with_values.get("ref") or context["github"]["sha"]
        if with_values.get("fetch-depth") == "0":
            git("fetch", "-q", "--prune", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*", cwd=workspace)
            git("fetch", "-q", "origin", ref, cwd=workspace)
        else:
            git("fetch", "-q", "--depth=1", "origin", ref, cwd=workspace)
        if with_values.get("ref"):  # a commit: detached, as checkout leaves it
            git("checkout", "-q", "--force", "--detach", ref, cwd=workspace)
        else:  # the event's branch (github.ref) at the event's commit
            branch = context["github"]["ref"].removeprefix("refs/heads/")
            git("checkout", "-q", "--force", "-B", branch, ref, cwd=workspace)
        return {}

    def upload_artifact(self, with_values, workspace, context):
        paths = [workspace / p.strip() for p in with_values["path"].splitlines() if p.strip()]
        hidden = with_values.get("include-hidden-files") == "true"
        files = []
        for path in paths:
            found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
            files += [f for f in found if hidden or not any(part.startswith(".") for part in f.relative_to(workspace).parts)]
        if not files:
            if with_values.get("if-no-files-found", "warn") == "error":
                raise StepFailed(f"no files found at {with_values['path']}")
            return {}  # warn: no artifact, no artifact-id
        root = Path(os.path.commonpath([p if p.is_dir() else p.parent for p in paths]))
        target = self.artifacts / str(context["github"]["run_id"]) / with_values["name"]
        for f in files:
            (target / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target / f.relative_to(root))
        self.artifacts_made += 1
        return {"artifact-id": str(self.artifacts_made)}

    def download_artifact(self, with_values, workspace, context):
        source = self.artifacts / (with_values.get("run-id") or str(context["github"]["run_id"])) / with_values["name"]
        if not source.is_dir():
            raise StepFailed(f"no artifact {with_values['name']}")
        target = workspace / with_values.get("path", ".")
        shutil.copytree(source, target, dirs_exist_ok=True)
        return {}

    def upload_pages_artifact(self, with_values, workspace, context):
        shutil.copytree(workspace / with_values["path"], self.pages / str(context["github"]["run_id"]))
        return {}

    def deploy_pages(self, with_values, workspace, context):
        return {"page_url": "https://owner.github.io/tiny/"}


class StepFailed(Exception):
    pass


def triggered(workflow, event_name, event):
    """Whether the workflow's ``on:`` takes this event (the branch, type and workflow filters used)."""
    on = workflow["on"]
    if event_name not in on:
        return False
    spec = on[event_name] or {}
    if event_name == "pull_request_target":
        return event["action"] in spec.get("types", [event["action"]]) and event["pull_request"]["base"]["ref"] in spec["branches"]
    if event_name == "push":
        return "main" in spec.get("branches", ["main"])
    if event_name == "workflow_run":
        return event["workflow_run"]["name"] in spec["workflows"] and "completed" in spec["types"]
    return True


# --- the tiny project ------------------------------------------------------------------------------

TINY_BENCHMARK = '''"""The tiny project's benchmark: one call per sample, 2 rounds of 10."""
import tinyproj


class Tiny:
    number = 1
    repeat = 10
    rounds = 2
    warmup_time = 0

    def time_work(self):
        tinyproj.work()
'''
TINY_PYPROJECT = """[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "kvcache"  # asv uninstalls the distribution that asv.conf.json's "project" names before each install
version = "0.1"

[tool.setuptools]
packages = ["tinyproj"]
"""
VENV_STAND_IN = """#!/usr/bin/env bash
# Test stand-in for scripts/venv.sh: the tracker's virtualenv is the one running the tests.
echo "{python}"
"""


def work(seconds):
    return f"import time\n\n\ndef work():\n    time.sleep({seconds})\n"


class Developer:
    """A clone of origin where commits are made and pushed."""

    def __init__(self, path, origin):
        self.path, self.origin = path, origin
        (path / "tinyproj").mkdir(parents=True)
        (path / "benchmarks").mkdir()
        shutil.copytree(ROOT / ".github", path / ".github")
        (path / "scripts").mkdir()
        for script in [*ROOT.glob("scripts/*.sh"), ROOT / "scripts" / "ci-summary.py"]:
            shutil.copy(script, path / "scripts" / script.name)
        (path / "scripts" / "venv.sh").write_text(VENV_STAND_IN.format(python=sys.executable))
        shutil.copy(ROOT / "asv.conf.json", path)
        (path / ".gitignore").write_text("/.asv/\n/.venv/\n/out/\n")
        (path / "pyproject.toml").write_text(TINY_PYPROJECT)
        (path / "benchmarks" / "__init__.py").write_text("")
        (path / "benchmarks" / "bench_tiny.py").write_text(TINY_BENCHMARK)
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "origin", str(origin))

    def git(self, *args):
        return git("-c", "user.name=dev", "-c", "user.email=dev@example.com", *args, cwd=self.path)

    def commit(self, message, seconds=None, extra=None):
        if seconds is not None:
            (self.path / "tinyproj" / "__init__.py").write_text(work(seconds))
        if extra:
            (self.path / extra).write_text(message + "\n")
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


# --- reading what the jobs left --------------------------------------------------------------------

def branch_tree(origin, into):
    """The results branch's files, written into ``into``; {} of them when there is no branch."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "asv-results"], cwd=origin, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def samples_per_commit(results_dir):
    """{commit: samples of the tiny benchmark} in a results directory."""
    return {m.commit: len(m.samples) for m in read_measurements(str(results_dir), print) if m.benchmark == BENCHMARK}


def verdicts_in(results_dir):
    path = Path(results_dir) / "confirmations.json"
    return json.loads(path.read_text())["verdicts"] if path.exists() else []


def branch_blob(origin, path):
    return git("rev-parse", f"asv-results:{path}", cwd=origin, check=False)


def job_text(run, job_id):
    job = run["jobs"][job_id]
    return f"{run['workflow']} / {job_id}: {job['result']}\n{job['log']}"


# --- the rehearsal ---------------------------------------------------------------------------------

@pytest.fixture
def rehearsal(tmp_path):
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    return Developer(tmp_path / "dev", origin), Runner(tmp_path / "github", origin)


def main_job(runner, event_name, sha, inputs=None):
    event = {"ref": "refs/heads/main", "after": sha} if event_name == "push" else {"ref": "refs/heads/main", "inputs": inputs}
    run = runner.run("benchmarks-main.yml", event_name, event, sha, inputs)
    for job_id in ("benchmark", "results", "deploy"):
        assert run["jobs"][job_id]["result"] == "success", "\n".join(job_text(run, j) for j in run["jobs"])
    return run


def test_the_workflows_keep_results_and_verdicts_and_gate_prs_on_main_s_history(rehearsal, tmp_path):
    dev, runner = rehearsal
    history = [dev.commit("start", seconds=0.001, extra="README")]
    history += [dev.commit(f"change {i}", extra="README") for i in range(1, 6)]
    dev.git("push", "-q", "origin", "main")

    # 1. A first run by hand on the new runner: the last 6 commits.
    run1 = main_job(runner, "workflow_dispatch", history[-1], {"range": "", "commits": "6"})
    branch = branch_tree(runner.origin, tmp_path / "branch-1")
    assert samples_per_commit(branch) == {c: SAMPLES for c in history}, job_text(run1, "benchmark")
    assert verdicts_in(branch) == []
    assert (runner.pages / str(run1["id"]) / "p95.html").exists()  # the dashboard went to Pages

    # 2. A push with the planted slowdown: measured, flagged (a level far beyond the noise),
    #    re-measured once with the last commit at the old level, and decided.
    slow = dev.commit("slower work", seconds=0.003)
    dev.git("push", "-q", "origin", "main")
    run2 = main_job(runner, "push", slow)
    log2 = run2["jobs"]["benchmark"]["log"]
    [line] = re.findall(r"^re-measuring .+ at ((?:[0-9a-f]{8} )+)$", log2, re.MULTILINE)
    # P, then the flag's candidates. P is the last commit of the reference level: the one before
    # the first candidate, or an earlier one when noise on a busy machine ends the reference's
    # segment sooner. The candidates are consecutive and end at the step (the commit before it
    # is one when its first run measured it slow).
    reference, *suspects = line.split()
    order = history + [slow]
    [p_commit] = [c for c in history if c.startswith(reference)]
    candidates = [c for c in order if c[:8] in suspects]
    assert len(candidates) == len(suspects) and candidates[-1] == slow, log2
    first = order.index(candidates[0])
    assert order.index(p_commit) < first and order[first:] == candidates, log2
    branch = branch_tree(runner.origin, tmp_path / "branch-2")
    after_job2 = samples_per_commit(branch)
    assert after_job2 == {**{c: SAMPLES for c in history}, **{c: 2 * SAMPLES for c in [p_commit, *candidates]}}, log2
    [verdict] = verdicts_in(branch)
    assert (verdict["commit"], verdict["confirmed"], verdict["culprit"]) == (candidates[0], True, slow)
    summary = run2["jobs"]["benchmark"]["summary"]
    [row] = [line for line in summary.splitlines() if line.startswith("| regression | ")]
    cells = [c.strip() for c in row.strip()[1:-1].split(" | ")]
    assert cells[1:3] == [BENCHMARK, MACHINE] and cells[3].startswith(f"[{slow[:12]}]")
    assert cells[4] in ("p95", "median", "p95+median"), row  # which moved most plainly depends on the load
    before, after = (float(re.fullmatch(r"(\d+\.\d+) ms", c).group(1)) for c in cells[5:7])
    # Sleeps of 1 ms and 3 ms, as measured. The new level is the median of the flag's commits from
    # its first candidate on, and a load can measure the commit before the step slow enough to be
    # one (above the middle of the two levels): the median is then still above 2 ms.
    assert before > 1.0 and after > 2.0 and after > 1.5 * before, row
    assert cells[7].startswith("+"), row

    # 3. A run by hand whose backfill range holds only measured commits, and nothing new on
    #    main: asv is not called for either, and the decided flag is not measured again.
    run3 = main_job(runner, "workflow_dispatch", slow, {"range": f"{history[2]}..main", "commits": ""})
    log3 = run3["jobs"]["benchmark"]["log"]
    branch = branch_tree(runner.origin, tmp_path / "branch-3")
    assert samples_per_commit(branch) == after_job2, log3  # nothing measured again
    assert verdicts_in(branch) == [verdict]
    assert "nothing to backfill" in log3 and "nothing to measure" in log3 and "no new flag to re-measure" in log3, log3
    assert "regression" in run3["jobs"]["benchmark"]["summary"]  # still flagged, from the kept verdict
    slow_blob = branch_blob(runner.origin, f"{MACHINE}/{slow[:8]}-{result_env(branch, slow)}.json")

    # 4. A pull request from a branch: head twice as slow as main.
    dev.git("checkout", "-q", "-b", "feature")
    head = dev.commit("slower still", seconds=0.006)
    dev.git("push", "-q", "origin", "feature")
    dev.git("checkout", "-q", "main")
    (runner.base / "pr-head.txt").write_text(head + "\n")
    pull_request = {"number": PR_NUMBER, "head": {"sha": head, "ref": "feature", "repo": {"full_name": REPOSITORY}},
                    "base": {"sha": slow, "ref": "main"}, "labels": []}
    event = {"action": "opened", "number": PR_NUMBER, "pull_request": pull_request}
    labelled = YAML(typ="safe").load(git("show", f"{slow}:.github/workflows/benchmarks-pr-label.yml", cwd=runner.origin))
    assert not triggered(labelled, "pull_request_target", event)  # only a push to a PR ("synchronize")
    pr_run = runner.run("benchmarks-pr.yml", "pull_request_target", event, slow)
    assert pr_run["display_title"] == f"benchmarks of PR #{PR_NUMBER} at {head}"
    compare = pr_run["jobs"]["compare"]
    gate_rows = [line for line in compare["summary"].splitlines() if line.startswith(f"| `{BENCHMARK}`")]
    assert gate_rows and f"HEAD `{head[:8]}` vs BASE `{slow[:8]}`" in compare["summary"], job_text(pr_run, "compare")
    ci_row = [c.strip() for c in gate_rows[-1].strip()[1:-1].split(" | ")]
    assert ci_row[7] == "rounds+history" and re.fullmatch(r"\d+\.\d\d", ci_row[6]), gate_rows  # main's history judged it
    # The numbers are the p95 of what the job measured, and a rounds-only gate differs.
    measured = {m.commit: m for m in read_measurements(str(compare["workspace"] / ".asv" / "results"), print)
                if m.benchmark == BENCHMARK}
    base_p95, head_p95 = stats.p95(measured[slow].samples), stats.p95(measured[head].samples)
    shown = render.display_unit("ms", [base_p95])
    assert ci_row[2:4] == [render.amount(base_p95, shown), render.amount(head_p95, shown)], gate_rows
    assert base_p95 > 3.0 and head_p95 > 6.0, (base_p95, head_p95)  # sleeps of 3 and 6 ms, and what the load adds
    alone = rounds_only_gate(compare["workspace"], tmp_path / "rounds-only", slow, head)
    assert alone[6:8] == ["none", "rounds"] and alone[6:8] != ci_row[6:8]

    # 5. Its comment, posted by the workflow_run job through the gh stand-in.
    workflow_run = {"event": "pull_request_target", "conclusion": pr_run["conclusion"], "id": str(pr_run["id"]),
                    "display_title": pr_run["display_title"], "name": pr_run["workflow"],
                    "html_url": f"https://github.com/{REPOSITORY}/actions/runs/{pr_run['id']}"}
    comment_run = runner.run("benchmarks-pr-comment.yml", "workflow_run", {"workflow_run": workflow_run}, slow)
    assert comment_run["jobs"]["comment"]["result"] == "success", job_text(comment_run, "comment")
    [posted] = list(runner.posted.iterdir())
    body = posted.read_text()
    assert body.startswith("<!-- kvcache-benchmarks -->\n### kvcache-tracker gate: ")
    assert gate_rows[-1] in body and "rounds+history" in body
    assert f"repos/{REPOSITORY}/pulls/{PR_NUMBER} --jq .head.sha" in runner.gh_log.read_text()

    # 6. The next push to main: the PR's results stay off the results branch; the base's
    #    results there are main's own, not the PR job's measurement of it.
    later = dev.commit("docs", extra="NOTES")
    dev.git("push", "-q", "origin", "main")
    run4 = main_job(runner, "push", later)
    branch = branch_tree(runner.origin, tmp_path / "branch-4")
    assert not list((branch / MACHINE).glob(f"{head[:8]}-*")), "a PR's results reached the results branch"
    assert branch_blob(runner.origin, f"{MACHINE}/{slow[:8]}-{result_env(branch, slow)}.json") == slow_blob
    assert samples_per_commit(branch) == {**after_job2, later: SAMPLES}, run4["jobs"]["benchmark"]["log"]
    assert verdicts_in(branch) == [verdict] and "re-measuring " not in run4["jobs"]["benchmark"]["log"]


def result_env(results_dir, commit):
    [path] = (Path(results_dir) / MACHINE).glob(f"{commit[:8]}-*.json")
    return path.name[len(commit[:8]) + 1:-len(".json")]


def rounds_only_gate(workspace, into, base, head):
    """The gate's row over BASE's and HEAD's results alone (no history of main): its cells."""
    results = workspace / ".asv" / "results"
    (into / MACHINE).mkdir(parents=True)
    for name in ("benchmarks.json",):
        shutil.copy(results / name, into / name)
    for path in (results / MACHINE).iterdir():
        if path.name == "machine.json" or path.name.startswith((base[:8], head[:8])):
            shutil.copy(path, into / MACHINE / path.name)
    done = subprocess.run([Path(sys.executable).parent / "kvcache-tracker", "gate", base, head, "--results", str(into),
                           "--machine", MACHINE], cwd=workspace, capture_output=True, text=True)
    rows = [line for line in done.stdout.splitlines() if line.startswith(f"| `{BENCHMARK}`")]
    assert rows, done.stdout + done.stderr
    return [c.strip() for c in rows[-1].strip()[1:-1].split(" | ")]


# --- the evaluator against the workflows' own conditions, per event ----------------------------

def workflow_file(name):
    return YAML(typ="safe").load((ROOT / ".github" / "workflows" / name).read_text())


def pr_event(fork, action, label=None, labels=()):
    repo = "someone/tiny" if fork else REPOSITORY
    return {"action": action, "label": {"name": label} if label else None,
            "pull_request": {"head": {"repo": {"full_name": repo}}, "labels": [{"name": n} for n in labels]}}


CONDITIONS = [  # (workflow, job, event, needs, whether the job runs), as GitHub decides it
    ("benchmarks-pr.yml", "compare", pr_event(False, "opened"), {}, True),
    ("benchmarks-pr.yml", "compare", pr_event(False, "synchronize"), {}, True),
    ("benchmarks-pr.yml", "compare", pr_event(False, "labeled", "run-benchmarks"), {}, False),
    ("benchmarks-pr.yml", "compare", pr_event(True, "opened"), {}, False),
    ("benchmarks-pr.yml", "compare", pr_event(True, "synchronize", labels=["run-benchmarks"]), {}, False),
    ("benchmarks-pr.yml", "compare", pr_event(True, "labeled", "run-benchmarks"), {}, True),
    ("benchmarks-pr.yml", "compare", pr_event(True, "labeled", "bug"), {}, False),
    ("benchmarks-pr-label.yml", "unlabel", pr_event(True, "synchronize", labels=["run-benchmarks"]), {}, True),
    ("benchmarks-pr-label.yml", "unlabel", pr_event(False, "synchronize", labels=["run-benchmarks"]), {}, False),
    ("benchmarks-pr-label.yml", "unlabel", pr_event(True, "synchronize", labels=["bug"]), {}, False),
    ("benchmarks-pr-comment.yml", "which", {"workflow_run": {"event": "pull_request_target", "conclusion": "success"}}, {}, True),
    ("benchmarks-pr-comment.yml", "which", {"workflow_run": {"event": "pull_request_target", "conclusion": "failure"}}, {}, True),
    ("benchmarks-pr-comment.yml", "which", {"workflow_run": {"event": "pull_request_target", "conclusion": "cancelled"}}, {}, False),
    ("benchmarks-pr-comment.yml", "which", {"workflow_run": {"event": "pull_request", "conclusion": "success"}}, {}, False),
    ("benchmarks-main.yml", "results", {}, {"benchmark": {"result": "failure", "outputs": {"results": "17"}}}, True),
    ("benchmarks-main.yml", "results", {}, {"benchmark": {"result": "success", "outputs": {"results": ""}}}, False),
    ("benchmarks-main.yml", "deploy", {}, {"benchmark": {"result": "failure", "outputs": {"dashboard": "18"}}}, True),
]


@pytest.mark.parametrize("name, job_id, event, needs, runs", CONDITIONS)
def test_the_evaluator_reads_the_workflows_conditions_as_github_does(name, job_id, event, needs, runs):
    job = workflow_file(name)["jobs"][job_id]
    context = {"github": {"event": event, "repository": REPOSITORY}, "needs": needs}
    functions = {"success": lambda: all(n["result"] == "success" for n in needs.values()), "failure": lambda: False,
                 "cancelled": lambda: False, "always": lambda: True,
                 "contains": lambda haystack, needle: needle in haystack}
    assert condition(job.get("if"), context, functions) is runs


def test_a_step_condition_on_a_file_is_read_from_the_workspace(tmp_path):
    [step] = [s for s in workflow_file("benchmarks-pr.yml")["jobs"]["compare"]["steps"] if s.get("name") == "Report in the job summary"]
    runner = Runner(tmp_path / "github", tmp_path / "origin.git")
    assert condition(step["if"], {}, runner.functions({}, tmp_path)) is False
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "pr-comment.md").write_text("report")
    assert condition(step["if"], {}, runner.functions({}, tmp_path)) is True


@pytest.mark.parametrize("earlier_step_failed, runs", [(False, True), (True, False)])
def test_a_condition_without_a_status_function_runs_only_after_success(earlier_step_failed, runs):
    [step] = [s for s in workflow_file("tests.yml")["jobs"]["test"]["steps"] if s.get("run") == "make test"]
    functions = {"success": lambda: not earlier_step_failed, "failure": lambda: earlier_step_failed,
                 "cancelled": lambda: False, "always": lambda: True}
    assert condition(step["if"], {"env": {"MLX_DEVICE": "metal"}}, functions) is runs
