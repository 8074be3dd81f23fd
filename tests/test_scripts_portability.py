"""The scripts the workflows run must work on macOS: its /bin/bash 3.2 and its BSD tools.

Three checks, each shown here to fail on the defect it targets:

- The macOS PATH: the scripts run, for real (asv and pip stubbed), with a PATH that holds only
  the commands of a stock macOS runner (``MACOS_COMMANDS``), each a stand-in that refuses the
  GNU-only options BSD's tool lacks (``GNU_ONLY``). A GNU-only command (``sha1sum``) is not found
  (exit 127); a GNU-only option exits 64.
- The bash 3.2 rule (``bash32_findings``): constructs that bash 3.2 refuses or runs differently,
  first of all an array expanded without a guard (``"${a[@]}"`` of an empty array is an
  "unbound variable" under ``set -u`` before bash 4.4). No Debian package has a bash that old,
  so this is a rule over the text, applied to every script and every workflow ``run:`` block.
  Given an old bash (``OLD_BASH=/path/to/bash``; on macOS, ``/bin/bash`` is 3.2), the macOS
  PATH tests run the scripts under it too, and a test shows it refusing the old scripts.
- shellcheck (Debian's package; .ci/run installs it and sets REQUIRE_SHELLCHECK, so that CI
  cannot skip it), at severity warning.
"""

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
WORKFLOWS = ROOT / ".github" / "workflows"

# The commands a stock macOS runner offers, that these scripts may use (docs/runner.md,
# "Portability", lists the sources): macOS's own BSD userland in /bin and /usr/bin, the Xcode
# Command Line Tools (git, make, python3), and on GitHub's hosted images also gh, jq and curl.
# No GNU coreutils, findutils, GNU sed or GNU grep: a command missing here is missing on the Mac.
MACOS_BASE = (
    "awk base64 basename bash cat chmod cksum cmp cp cut date df diff dirname du env expr false "
    "find grep gzip head hostname id kill ln ls mkdir mktemp mv od paste ps pwd readlink rm rmdir "
    "sed sh shasum sleep sort stat tail tar tee touch tr true uname uniq wc which xargs").split()
MACOS_ONLY = ["sw_vers", "pmset", "sysctl"]  # not on Linux: stubbed where a test needs them
XCODE_CLT = ["git", "make", "python3"]
HOSTED_IMAGE = ["gh", "jq", "curl"]
MACOS_COMMANDS = MACOS_BASE + XCODE_CLT + HOSTED_IMAGE

# Options of the GNU tools that their BSD counterparts on macOS lack (sh `case` patterns, tried
# on each argument and on each pair of an argument and the next). Every long option is GNU-only
# for these tools.
GNU_ONLY = {
    "base64": "--*|-w*", "basename": "--*", "cat": "--*|-A|-T", "chmod": "--*", "cp": "--*|-t",
    "cut": "--*", "date": "--*|-d|-d*|-I*", "df": "--*|-B*|--output*", "dirname": "--*",
    "du": "--*|-b|-B*", "find": "-printf|-regextype|-delete*", "grep": "--*|-P|-P*", "head": "--*|-n-*|'-n -'*",
    "ln": "--*|-r|-T", "ls": "--*", "mkdir": "--*", "mktemp": "--*|-p", "mv": "--*|-t",
    "readlink": "--*|-f|-e|-m", "rm": "--*", "sed": "--*|-r|-i|-z", "sort": "--*|-V",
    "stat": "--*|-c|-c*", "tail": "--*", "tar": "--*", "tee": "--*", "touch": "--*|-d",
    "tr": "--*", "uname": "--*|-o", "wc": "--*", "xargs": "--*|-r|-d",
}


OLD_BASH = os.environ.get("OLD_BASH") or (
    "/bin/bash" if sys.platform == "darwin" else None)  # macOS's own bash is 3.2


def write_executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture(scope="session")
def macos_path(tmp_path_factory):
    """A folder of stand-ins for MACOS_COMMANDS that exist here (python3: this interpreter)."""
    folder = tmp_path_factory.mktemp("macos-bin")
    for name in MACOS_COMMANDS:
        real = {"python3": sys.executable, "bash": OLD_BASH}.get(name) or shutil.which(name)
        if real is None:
            continue
        refuse = GNU_ONLY.get(name)
        check = (f'prev=; for arg do for word in "$arg" "$prev $arg"; do case "$word" in {refuse}) echo "macos-path: '
                 f'{name} $word: a GNU-only option (BSD {name} on macOS has no such option)" >&2; exit 64;; esac; '
                 f'done; prev=$arg; done\n') if refuse else ""
        write_executable(folder / name, f"#!/bin/sh\n{check}exec {real} \"$@\"\n")
    return str(folder)


def run_macos(command, cwd, path, env=None, stdin=None):
    """Run a bash command line with only the macOS stand-ins (and `extra` folders) on PATH."""
    environment = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C",
                   "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                   "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", **(env or {})}
    return subprocess.run([OLD_BASH or "/bin/bash", "-c", command], cwd=cwd, env=environment, input=stdin,
                          capture_output=True, text=True, timeout=120)


# --- the macOS PATH check, and that it fails on its defects --------------------------------------

def test_a_gnu_only_command_is_not_found_on_the_macos_path(macos_path, tmp_path):
    result = run_macos("set -euo pipefail; echo x | sha1sum | cut -c1-12", tmp_path, macos_path)
    assert result.returncode == 127 and "sha1sum: command not found" in result.stderr


@pytest.mark.parametrize("command", ["readlink -f .", "sed -i s/a/b/ f", "date -d yesterday", "stat -c %s f",
                                     "grep -P 'a' f", "head -n -1 f", "cut --characters=1 f", "xargs -r echo </dev/null"])
def test_a_gnu_only_option_is_refused_on_the_macos_path(macos_path, tmp_path, command):
    (tmp_path / "f").write_text("a\n")
    result = run_macos(command, tmp_path, macos_path)
    assert result.returncode == 64 and "a GNU-only option" in result.stderr


def test_the_portable_forms_pass_on_the_macos_path(macos_path, tmp_path):
    (tmp_path / "f").write_text("abc\n")
    result = run_macos("set -euo pipefail; shasum -a 1 f | cut -c1-12; head -c 2 f; echo; wc -c <f | tr -d ' ';"
                       " df -Pk . | awk 'NR == 2 { print \"df ok\" }'; date -u +%H >/dev/null; mktemp >/dev/null",
                       tmp_path, macos_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[1:4] == ["ab", "4", "df ok"]


# --- a project copy with the scripts, its .venv stubbed (no pip, no asv, no MLX) ------------------

STUB_LOG = "stub.log"
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >>"{log}"
{body}
"""


def stub(path, body="exit 0"):
    return write_executable(path, STUB.format(log=path.parents[3] / STUB_LOG, body=body))


def git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def project(tmp_path, macos_path):
    """A git repository with this project's scripts and config on a branch main (two commits),
    a clone of it whose origin/main is that main, and a .venv whose python is this interpreter
    (after venv.sh ran with a stub pip) and whose asv and kvcache-tracker are logging stubs."""
    origin = tmp_path / "origin"
    (origin / "scripts").mkdir(parents=True)
    copy_config(origin, "asv.conf.json")
    for script in SCRIPTS.glob("*.sh"):
        shutil.copy(script, origin / "scripts" / script.name)
    shutil.copy(SCRIPTS / "ci-summary.py", origin / "scripts")
    (origin / ".gitignore").write_text(".venv/\n.asv/\nout/\n")
    git("init", "-q", "-b", "main", cwd=origin)
    git("add", ".", cwd=origin)
    git("commit", "-q", "-m", "one", cwd=origin)
    git("commit", "-q", "--allow-empty", "-m", "two", cwd=origin)
    checkout = tmp_path / "work"
    git("clone", "-q", str(origin), str(checkout), cwd=tmp_path)
    (checkout / ".venv" / "bin").mkdir(parents=True)
    venv_bin = checkout / ".venv" / "bin"
    stub(venv_bin / "python")
    result = run_macos("bash scripts/venv.sh bench", checkout, macos_path)  # the stub "installs"
    assert result.returncode == 0, result.stderr
    (venv_bin / "python").unlink()
    (venv_bin / "python").symlink_to(sys.executable)
    stub(venv_bin / "asv", 'mkdir -p .asv/results .asv/html\n'
                           'case $1 in run|continuous) cat >/dev/null ;; compare) echo "| asv compare |" ;; esac')
    stub(venv_bin / "kvcache-tracker", 'case $1 in gate) printf "### kvcache-tracker gate: no p95 regression\\n| gate |\\n" ;; esac')
    (tmp_path / STUB_LOG).unlink()
    return checkout


def copy_config(folder, *more):
    """The files venv.sh hashes (the packages' configurations), and ``more``, into ``folder``."""
    for name in ("setup.cfg", "pyproject.toml", "tracker/pyproject.toml", *more):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, folder / name)


def stub_calls(project):
    log = project.parent / STUB_LOG
    return log.read_text().splitlines() if log.exists() else []


def project_with_venv(tmp_path, *scripts):
    """A project folder with setup.cfg, pyproject.toml, ``scripts`` and a stub .venv python."""
    root = tmp_path / "p"
    (root / "scripts").mkdir(parents=True)
    (root / ".venv" / "bin").mkdir(parents=True)
    copy_config(root)
    for name in scripts:
        shutil.copy(SCRIPTS / name, root / "scripts")
    stub(root / ".venv" / "bin" / "python")
    return root


def test_venv_sh_runs_on_the_macos_path_and_hashes_in_python(macos_path, tmp_path):
    root = project_with_venv(tmp_path, "venv.sh")
    result = run_macos("bash scripts/venv.sh test", root, macos_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"{root}/.venv/bin/python"
    assert f"python -m pip install -q -e {root}[test] -e {root}/tracker" in (tmp_path / STUB_LOG).read_text()
    again = run_macos("bash scripts/venv.sh test", root, macos_path)  # the stamp: nothing to do
    assert again.returncode == 0 and (tmp_path / STUB_LOG).read_text().count(f"-e {root}/tracker") == 1


def test_the_old_sha1sum_line_of_venv_sh_fails_on_the_macos_path(macos_path, tmp_path):
    root = tmp_path / "p"
    (root / "scripts").mkdir(parents=True)
    copy_config(root)
    text = (SCRIPTS / "venv.sh").read_text()
    old = '$(cat "$root/setup.cfg" "$root/pyproject.toml" | sha1sum | cut -c1-12)'
    text = re.sub(r"stamp=\"\$venv/\.installed-\$digest-", lambda _: f'stamp="$venv/.installed-{old}-', text)
    assert "sha1sum" in text
    (root / "scripts" / "venv.sh").write_text(text)
    result = run_macos("bash scripts/venv.sh test", root, macos_path)
    assert result.returncode == 127 and "sha1sum: command not found" in result.stderr


@pytest.mark.parametrize("asv_config", [None, "asv.conf.json"])
def test_main_job_runs_on_the_macos_path_with_and_without_asv_config(macos_path, project, asv_config):
    env = {"ASV_MACHINE": "mac-1", **({"ASV_CONFIG": asv_config} if asv_config else {})}
    result = run_macos("bash scripts/main-job.sh", project, macos_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    config = f" --config {asv_config}" if asv_config else ""
    calls = stub_calls(project)
    assert calls[0] == f"asv machine --yes --machine mac-1{config}"
    runs = [call for call in calls if call.startswith("asv run ")]
    assert runs and all(f"--machine mac-1{config} " in call for call in runs)
    assert runs[0].startswith("asv run --record-samples") and runs[0].endswith(" HASHFILE:-")
    assert f"asv publish{config}" in calls
    assert calls.index("kvcache-tracker vendor-html .asv/html") == calls.index(f"asv publish{config}") + 1
    p95 = [call for call in calls if call.startswith("kvcache-tracker p95 ")]
    assert p95 and all(call.endswith(config) for call in p95)
    assert asv_config or not [call for call in calls if "--config" in call]


def test_a_dashboard_that_cannot_be_vendored_still_gives_the_flags_then_exit_5(macos_path, project):
    venv_bin = project / ".venv" / "bin"
    stub(venv_bin / "kvcache-tracker", 'case $1 in vendor-html) echo "vendor-html: no npm" >&2; exit 2 ;;\n'
                                     'p95) echo "0 flag(s) (threshold 10%):" ;; esac')
    result = run_macos("bash scripts/main-job.sh", project, macos_path, {"ASV_MACHINE": "mac-1"})
    assert result.returncode == 5, result.stdout + result.stderr
    assert "still loads from CDNs" in result.stderr and "0 flag(s)" in result.stdout
    calls = stub_calls(project)
    assert calls.index("kvcache-tracker vendor-html .asv/html") < next(i for i, c in enumerate(calls) if c.startswith("kvcache-tracker p95 "))


def test_ci_main_backfill_runs_on_the_macos_path(macos_path, project):
    result = run_macos("bash scripts/ci-main.sh", project, macos_path,
                       {"ASV_MACHINE": "mac-1", "BACKFILL_RANGE": "main~1..main", "N": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "asv run --record-samples --skip-existing-commits --machine mac-1 HASHFILE:-" in stub_calls(project)


def test_ci_pr_runs_on_the_macos_path_and_refreshes_a_stale_local_main(macos_path, project):
    base, head = git("rev-parse", "main~1", cwd=project), git("rev-parse", "main", cwd=project)
    git("checkout", "-q", "--detach", head, cwd=project)
    git("branch", "-f", "main", base, cwd=project)  # a kept workspace's main from an earlier job
    result = run_macos("bash scripts/ci-pr.sh", project, macos_path,
                       {"ASV_MACHINE": "mac-1", "BASE_SHA": base, "HEAD_SHA": head, "PR_NUMBER": "7",
                        "GITHUB_ACTIONS": "true"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert git("rev-parse", "main", cwd=project) == head
    assert "asv run --record-samples --interleave-rounds --machine mac-1 HASHFILE:-" in stub_calls(project)
    comment = (project / "out" / "pr-comment.md").read_text()
    assert comment.startswith("### kvcache-tracker gate: no p95 regression\n| gate |\n")  # the verdict first
    verdict, _, folded = comment.partition("<details>")
    assert "| asv compare |" in folded and "| asv compare |" not in verdict
    assert (project / "out" / "pr-number.txt").read_text() == "7\n"


def test_pr_compare_says_there_is_no_verdict_first_when_the_gate_fails(macos_path, project):
    stub(project / ".venv" / "bin" / "kvcache-tracker", 'echo "kvcache-tracker gate: no results for HEAD" >&2; exit 2')
    base, head = git("rev-parse", "main~1", cwd=project), git("rev-parse", "main", cwd=project)
    result = run_macos(f"bash scripts/pr-compare.sh {base} {head}", project, macos_path, {"ASV_MACHINE": "mac-1"})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = (project / "out" / "pr-comment.md").read_text().splitlines()
    assert lines[0] == "### kvcache-tracker gate: no verdict (it exited 2; the run's log says why)"
    assert lines[2] == f"HEAD `{head[:8]}` vs BASE `{base[:8]}` on machine `mac-1`."


def test_ci_pr_leaves_a_local_main_alone_outside_github_actions(macos_path, project):
    base, head = git("rev-parse", "main~1", cwd=project), git("rev-parse", "main", cwd=project)
    git("checkout", "-q", "--detach", head, cwd=project)
    git("branch", "-f", "main", base, cwd=project)
    result = run_macos("bash scripts/ci-pr.sh", project, macos_path,
                       {"ASV_MACHINE": "mac-1", "BASE_SHA": base, "HEAD_SHA": head, "PR_NUMBER": "7"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert git("rev-parse", "main", cwd=project) == base


OLD_ASV_COMMON_LINE = 'bin=$(dirname "$(bash scripts/venv.sh bench | tail -n 1)")\n'


def break_venv(project):
    """venv.sh fails as on a Mac without its hash tool: the stamp is gone and pip fails."""
    for stamp in (project / ".venv").glob(".installed-*"):
        stamp.unlink()
    (project / ".venv" / "bin" / "python").unlink()
    stub(project / ".venv" / "bin" / "python", "echo 'pip: no network' >&2; exit 1")


@pytest.mark.skipif(OLD_BASH is None, reason="no bash older than 4.4 here (set OLD_BASH)")
def test_an_old_bash_refuses_the_unguarded_empty_array_the_main_job_had(macos_path, project):
    job = project / "scripts" / "main-job.sh"
    job.write_text(job.read_text().replace('${config_opts[@]+"${config_opts[@]}"}', '"${config_opts[@]}"'))
    result = run_macos("bash scripts/main-job.sh", project, macos_path, {"ASV_MACHINE": "mac-1"})
    assert result.returncode != 0 and "config_opts[@]: unbound variable" in result.stderr


def test_a_failed_venv_stops_the_main_job_with_its_own_message(macos_path, project):
    break_venv(project)
    result = run_macos("bash scripts/main-job.sh", project, macos_path, {"ASV_MACHINE": "mac-1"})
    assert result.returncode == 2
    assert "main-job: scripts/venv.sh bench failed" in result.stderr
    assert "No such file" not in result.stderr and stub_calls(project)[-1].startswith("python -m pip install")


def test_the_old_asv_common_hid_a_failed_venv_behind_a_consequential_error(macos_path, project):
    break_venv(project)
    common = project / "scripts" / "asv-common.sh"
    text = common.read_text()
    start = text.index("venv_python=$(")
    end = text.index('bin=$(dirname "$venv_python")\n') + len('bin=$(dirname "$venv_python")\n')
    common.write_text(text[:start] + OLD_ASV_COMMON_LINE + text[end:])
    result = run_macos("bash scripts/main-job.sh", project, macos_path, {"ASV_MACHINE": "mac-1"})
    assert result.returncode != 0 and "./asv: No such file or directory" in result.stderr


def test_results_branch_runs_on_the_macos_path_with_a_token(macos_path, project, tmp_path):
    remote = tmp_path / "results.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    results = project / ".asv" / "results" / "mac-1"
    results.mkdir(parents=True)
    (results / "aaaa1111-virtualenv.json").write_text("{}")
    (results / "aaaa1111-virtualenv.json.unreadable-1").write_text("{")
    env = {"RESULTS_REMOTE": str(remote), "GITHUB_TOKEN": "not-a-token"}
    pushed = run_macos("bash scripts/results-branch.sh push", project, macos_path, env)
    assert pushed.returncode == 0, pushed.stderr
    assert "not pushing mac-1/aaaa1111-virtualenv.json.unreadable-1" in pushed.stderr
    assert git("ls-tree", "-r", "--name-only", "asv-results", cwd=remote) == "mac-1/aaaa1111-virtualenv.json"
    shutil.rmtree(project / ".asv")
    fetched = run_macos("bash scripts/results-branch.sh fetch", project, macos_path, env)
    assert fetched.returncode == 0 and "restored 1 result files" in fetched.stdout, fetched.stderr


def test_ci_pr_comment_and_ci_summary_run_on_the_macos_path(macos_path, project, tmp_path):
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "pr-number.txt").write_text("7\n")
    (artifact / "pr-comment.md").write_text("report\n")
    env = {"PR_NUMBER": "7", "RUN_HEAD_SHA": "a" * 40}
    result = run_macos(f"bash scripts/ci-pr-comment.sh {artifact} --dry-run", project, macos_path, env)
    assert result.returncode == 0 and result.stdout.splitlines()[1] == "report", result.stderr
    summary = run_macos("python3 scripts/ci-summary.py .asv/p95.json", project, macos_path)
    assert summary.returncode == 0 and "was not written" in summary.stdout, summary.stderr


def test_ci_workspace_keeps_the_caches_and_removes_the_rest(macos_path, project):
    for relative in (".venv/lib/site.py", ".asv/env/abc/bin/python", ".asv/results/mac-1/a.json",
                     ".asv/html/index.html", ".asv/results.git/HEAD", "out/pr-comment.md", "stray.txt"):
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    result = run_macos("bash scripts/ci-workspace.sh", project, macos_path)
    assert result.returncode == 0, result.stderr
    left = sorted(str(path.relative_to(project)) for path in project.rglob("*")
                  if path.is_file() and ".git" not in path.relative_to(project).parts[:1])
    assert ".venv/lib/site.py" in left and ".asv/env/abc/bin/python" in left
    assert not [path for path in left if path.startswith((".asv/results", ".asv/html", "out/", "stray"))]
    assert "scripts/venv.sh" in left  # tracked files stay


# --- scripts/runner-check.sh, on a stubbed Mac ----------------------------------------------------

FAKE_MAC = {
    "uname": 'case $1 in -s) echo Darwin ;; -m) echo arm64 ;; esac',
    "sw_vers": "echo 14.5",
    "sysctl": "echo 0",
    "npm": "echo 10.9.2",
    "pmset": """case "$*" in
  "-g batt") echo "Now drawing from '${FAKE_POWER:-AC Power}'" ;;
  "-g therm") printf '%s\\n' "${FAKE_THERM:-Note: No thermal warning level has been recorded}" ;;
  "-g") printf 'System-wide power settings:\\n lowpowermode         %s\\n' "${FAKE_LOW_POWER:-0}" ;;
esac""",
}


@pytest.fixture
def fake_mac(tmp_path, macos_path):
    folder = tmp_path / "fake-mac"
    folder.mkdir()
    for name, body in FAKE_MAC.items():
        write_executable(folder / name, f"#!/bin/sh\n{body}\n")
    mlx = write_executable(folder / "mlx-python", '#!/bin/sh\necho "0.29.1|${FAKE_METAL:-True}|${FAKE_GPU:-ok}"\n')
    return f"{folder}:{macos_path}", str(mlx)


def runner_check(fake_mac, **env):
    path, mlx = fake_mac
    return run_macos("bash scripts/runner-check.sh", ROOT, path, {"PYTHON": mlx, "MIN_FREE_GB": "0", **env})


def test_runner_check_passes_on_a_quiet_mac(fake_mac):
    result = runner_check(fake_mac)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runner-check: macOS 14.5 on arm64" in result.stdout
    assert "runner-check: MLX 0.29.1; mx.metal.is_available(): True; a computation on the GPU: ok" in result.stdout
    assert result.stdout.splitlines()[-1] == "runner-check: ok"


def test_runner_check_reports_one_line_per_problem_and_fails(fake_mac):
    result = runner_check(fake_mac, FAKE_POWER="Battery Power", FAKE_LOW_POWER="1", FAKE_METAL="False",
                          FAKE_THERM="CPU_Speed_Limit = 70", MIN_FREE_GB="999999999")
    assert result.returncode == 1
    problems = [line.removeprefix("runner-check: PROBLEM: ") for line in result.stdout.splitlines() if "PROBLEM" in line]
    assert problems[:4] == [
        "MLX has no Metal device (mx.metal.is_available() is False)",
        "running on battery: connect the power adapter",
        "Low Power Mode is on: turn it off (System Settings, Battery or Energy)",
        "thermal pressure: the CPU is limited to 70% (pmset -g therm)"]
    assert re.fullmatch(r"only \d+ GB free on the workspace's volume: asv needs about 999999999 GB", problems[4])
    assert len(problems) == 5
    assert result.stderr.strip() == "runner-check: 5 problem(s): fix them before benchmarking on this machine"


def test_runner_check_reports_a_failed_gpu_computation_and_a_thermal_warning(fake_mac):
    result = runner_check(fake_mac, FAKE_GPU="failed: [metal] command buffer error",
                          FAKE_THERM="Thermal warning level set to 2")
    problems = [line for line in result.stdout.splitlines() if "PROBLEM" in line]
    assert result.returncode == 1 and problems == [
        "runner-check: PROBLEM: MLX's GPU computation failed: [metal] command buffer error",
        "runner-check: PROBLEM: thermal pressure: Thermal warning level set to 2 (pmset -g therm)"]


def test_runner_check_reports_a_missing_npm(fake_mac, tmp_path):
    (tmp_path / "fake-mac" / "npm").unlink()
    result = runner_check(fake_mac)
    problems = [line for line in result.stdout.splitlines() if "PROBLEM" in line]
    assert result.returncode == 1 and problems == [
        "runner-check: PROBLEM: no npm: the published dashboard needs it for its scripts (brew install node)"]


def test_runner_check_refuses_a_linux_machine():
    result = subprocess.run(["bash", SCRIPTS / "runner-check.sh"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHON": "/bin/false", "MIN_FREE_GB": "0"})
    if sys.platform == "darwin":
        pytest.skip("this machine is a Mac")
    assert result.returncode == 1 and "runner-check: PROBLEM: not macOS (Linux)" in result.stdout


# --- scripts/device/stage-commits.sh: a failure keeps the previous stage -------------------------

WHEEL_STAND_IN = """#!/bin/sh
# python -m pip wheel -q --no-deps -w DIR SRC: a wheel-named file in DIR ({body})
[ "$1 $2 $3" = "-m pip wheel" ] || exit 9
{body}
mkdir -p "$7" && echo wheel >"$7/kvcache-0-py3-none-any.whl"
"""
PREVIOUS_STAGE = {"commits.txt": "previous\n", "repo.bundle": "previous", "commits/previous/k.whl": "previous"}


@pytest.fixture
def staging(tmp_path):
    """``(repo, stage)``: a repository with stage-commits.sh on main (two commits) and a branch
    ``side`` off it (one commit), whose .airgap holds a previous stage."""
    repo = tmp_path / "repo"
    (repo / "scripts" / "device").mkdir(parents=True)
    shutil.copy(SCRIPTS / "device" / "stage-commits.sh", repo / "scripts" / "device")
    (repo / ".gitignore").write_text(".airgap/\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "one", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "two", cwd=repo)
    git("checkout", "-q", "-b", "side", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "side", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    for name, text in PREVIOUS_STAGE.items():
        (repo / ".airgap" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / ".airgap" / name).write_text(text)
    return repo, repo / ".airgap"


def stage(macos_path, repo, arg, wheel_body=":", extra_path=None):
    python = write_executable(repo.parent / "python", WHEEL_STAND_IN.format(body=wheel_body))
    path = f"{extra_path}:{macos_path}" if extra_path else macos_path
    return run_macos(f"bash scripts/device/stage-commits.sh {arg}", repo, path, {"PYTHON": str(python), "STAGE_WHEELS": "0"})


def assert_previous_stage_kept(stage_dir):
    assert tree_text(stage_dir) == PREVIOUS_STAGE  # nor a half-built one left beside it


def tree_text(folder):
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def test_stage_commits_runs_on_the_macos_path_and_replaces_the_previous_stage(macos_path, staging):
    repo, stage_dir = staging
    result = stage(macos_path, repo, "2")
    assert result.returncode == 0, result.stderr
    commits = git("rev-list", "main", cwd=repo).split()
    assert (stage_dir / "commits.txt").read_text().split() == commits
    assert sorted(p.name for p in (stage_dir / "commits").iterdir()) == sorted(commits)
    assert git("bundle", "verify", str(stage_dir / "repo.bundle"), cwd=repo) is not None
    assert not [p for p in stage_dir.iterdir() if p.name.startswith(".staging")]


def test_a_failed_wheel_build_keeps_the_previous_stage(macos_path, staging):
    repo, stage_dir = staging
    result = stage(macos_path, repo, "2", wheel_body='[ -e "$0.built" ] && exit 1; touch "$0.built"')  # the second fails
    assert result.returncode == 2 and "stage-commits: building the wheel of" in result.stderr
    assert_previous_stage_kept(stage_dir)


def test_a_failed_unpack_says_so_and_keeps_the_previous_stage(macos_path, staging, tmp_path):
    broken = tmp_path / "broken-tar"
    broken.mkdir()
    write_executable(broken / "tar", '#!/bin/sh\ncat >/dev/null; echo "tar: write error" >&2; exit 3\n')
    result = stage(macos_path, staging[0], "2", extra_path=broken)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith("stage-commits: unpacking ")
    assert_previous_stage_kept(staging[1])


def test_a_range_off_main_is_refused(macos_path, staging):
    repo, stage_dir = staging
    result = stage(macos_path, repo, "main~1..side")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "which is not on main: repo.bundle holds main's history only" in result.stderr
    assert_previous_stage_kept(stage_dir)


# --- scripts/ci-mlx-device.sh (the macOS tests leg) ----------------------------------------------

def mlx_device(macos_path, tmp_path, python_body):
    python = write_executable(tmp_path / "python", f"#!/bin/sh\n{python_body}\n")
    github_env = tmp_path / "github_env"
    result = run_macos(f"bash {SCRIPTS}/ci-mlx-device.sh {python}", tmp_path, macos_path, {"GITHUB_ENV": str(github_env)})
    return result, github_env.read_text().splitlines()


def test_mlx_device_keeps_metal_when_it_works(macos_path, tmp_path):
    result, env = mlx_device(macos_path, tmp_path, 'echo "MLX 0.29.1, mx.metal.is_available()=True"')
    assert result.returncode == 0 and "Metal works" in result.stdout and env == ["MLX_DEVICE=metal"]


def test_mlx_device_falls_back_to_the_cpu_when_metal_fails(macos_path, tmp_path):
    result, env = mlx_device(macos_path, tmp_path, '[ "$3" = gpu ] && { echo "no Metal device" >&2; exit 1; }\n'
                                                   'echo "MLX 0.29.1, mx.metal.is_available()=False"')
    assert result.returncode == 0, result.stderr
    assert "::warning title=MLX::no usable Metal device" in result.stdout
    assert env == ["MLX_DEVICE=cpu", f"PYTHONPATH={SCRIPTS}/ci-mlx-cpu"]


def test_mlx_device_says_none_when_mlx_aborts_at_import(macos_path, tmp_path):
    result, env = mlx_device(macos_path, tmp_path, 'echo "NSRangeException in mlx::core::metal::Device" >&2; exit 134')
    assert result.returncode == 0 and env == ["MLX_DEVICE=none"]
    assert "::warning title=MLX::MLX does not run on this runner" in result.stdout and "NSRangeException" in result.stdout


@pytest.mark.skipif(os.environ.get("MLX_DEVICE") == "none", reason="MLX does not run on this runner")
def test_the_cpu_sitecustomize_makes_cpu_mlx_s_default_device():
    code = "import mlx.core as mx; print(mx.default_device())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SCRIPTS / "ci-mlx-cpu")})
    assert result.returncode == 0 and "cpu" in result.stdout.lower(), result.stderr


# --- every script the workflows run is exercised above --------------------------------------------

def workflow_run_blocks():
    blocks = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_id, job in YAML(typ="safe").load(path.read_text())["jobs"].items():
            blocks += [(f"{path.name}/{job_id}", step["run"]) for step in job.get("steps", []) if "run" in step]
    return blocks


def scripts_reached(self_hosted_only=False):
    """Scripts the workflows run (only on the self-hosted runner: `self_hosted_only`), and
    those these scripts run or source, transitively."""
    blocks = [block for where, block in workflow_run_blocks()
              if not self_hosted_only or where in ("benchmarks-main.yml/benchmark", "benchmarks-pr.yml/compare")]
    pending = [name for block in blocks for name in re.findall(r"scripts/([\w.-]+)", block)]
    reached = set()
    while pending:
        name = pending.pop()
        if name not in reached and (SCRIPTS / name).is_file():
            reached.add(name)
            pending += re.findall(r"scripts/([\w.-]+\.(?:sh|py))", (SCRIPTS / name).read_text())
    return reached


EXERCISED_ON_THE_MACOS_PATH = {
    "venv.sh", "asv-common.sh", "main-job.sh", "publish.sh", "ci-main.sh", "pr-compare.sh", "ci-pr.sh", "results-branch.sh",
    "ci-pr-comment.sh", "ci-summary.py", "ci-workspace.sh", "runner-check.sh", "ci-mlx-device.sh", "test.sh"}


def test_every_script_the_workflows_reach_is_exercised_on_the_macos_path():
    assert scripts_reached() - EXERCISED_ON_THE_MACOS_PATH == set()


def test_the_self_hosted_runner_needs_none_of_the_hosted_image_s_extra_tools():
    # gh, jq and curl come with GitHub's macOS image, not with a stock Mac.
    command = re.compile(r"(^\s*|[;&|(]\s*|\$\(\s*|\b(then|do)\s+)(" + "|".join(HOSTED_IMAGE) + r")\s")
    reached = scripts_reached(self_hosted_only=True)
    assert {"ci-main.sh", "main-job.sh", "ci-pr.sh", "runner-check.sh"} <= reached
    users = {name for name in reached for _, line in code_lines((SCRIPTS / name).read_text()) if command.search(line)}
    assert users == set()
    assert command.search('ours=$(gh api "repos/x")') and command.search("  jq .x file")


def test_test_sh_runs_on_the_macos_path(macos_path, tmp_path):
    root = project_with_venv(tmp_path, "venv.sh", "test.sh")
    result = run_macos("bash scripts/test.sh -q tests", root, macos_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / STUB_LOG).read_text().splitlines()[-1] == "python -m pytest -q tests"


def test_workflow_steps_run_with_an_explicit_bash():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        assert YAML(typ="safe").load(path.read_text()).get("defaults", {}).get("run", {}).get("shell") == "bash", path.name


# --- the bash 3.2 rule ---------------------------------------------------------------------------

GUARDED = re.compile(r'\$\{(\w+)\[[@*]\](?::?[-+])"?\$\{\1\[[@*]\]\}"?\}')
ARRAY = re.compile(r"\$\{(\w+)\[[@*]\]([^}]?)")
BASH4 = [  # (pattern, what bash 3.2 does with it)
    (re.compile(r"\b(declare|local|typeset)\s+-\w*A"), "associative arrays are bash 4"),
    (re.compile(r"\b(declare|local|typeset)\s+-\w*n\b"), "namerefs are bash 4.3"),
    (re.compile(r"\b(declare|typeset)\s+-\w*g"), "declare -g is bash 4.2"),
    (re.compile(r"\b(mapfile|readarray|coproc)\b"), "mapfile, readarray and coproc are bash 4"),
    (re.compile(r"\$\{\w+(,,?|\^\^?)\}"), "case conversion ${v,,} ${v^^} is bash 4"),
    (re.compile(r"\$\{\w+@[QEPAaUuLK]\}"), "${v@Q} transformations are bash 4.4"),
    (re.compile(r"&>>|\|&|;;&"), "&>>, |& and ;;& are bash 4"),
    (re.compile(r"\bshopt\s+-s\s+(globstar|lastpipe|autocd)"), "globstar, lastpipe and autocd are bash 4"),
    (re.compile(r"\bwait\s+-n\b"), "wait -n is bash 4.3"),
    (re.compile(r"\$\{?(EPOCHSECONDS|EPOCHREALTIME|BASHPID)\b"), "EPOCHSECONDS, EPOCHREALTIME and BASHPID are bash 4/5"),
    (re.compile(r"\[\[\s+-v\s|\btest\s+-v\s"), "[[ -v name ]] is bash 4.2"),
    (re.compile(r"printf\s+['\"]?%\("), "printf %(fmt)T is bash 4.2"),
    (re.compile(r"\bread\b[^\n;|]*\s-t\s*[0-9]*\.[0-9]"), "a fractional read -t is bash 4"),
    (re.compile(r"\{-?\d+\.\.-?\d+\.\.-?\d+\}"), "a brace range with a step is bash 4"),
]


def code_lines(text):
    """(line number, line) of shell code: whole-line comments dropped, and ` # ...` tails."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        yield number, re.sub(r"\s#\s.*$", "", line)


def bash32_findings(text):
    """[(line number, problem)] of the constructs bash 3.2 refuses or runs differently."""
    findings = []
    for number, line in code_lines(text):
        unguarded = GUARDED.sub("", line)
        for match in ARRAY.finditer(unguarded):
            if match.group(2) not in ("+", "-", ":"):  # ${a[@]+...}, ${a[@]-...}, ${a[@]:-...}
                findings.append((number, f"${{{match.group(1)}[@]}} unguarded: an empty array is unbound under "
                                         f"set -u in bash 3.2; write ${{{match.group(1)}[@]+\"${{{match.group(1)}[@]}}\"}}"))
        findings += [(number, why) for pattern, why in BASH4 if pattern.search(line)]
    return findings


def shell_sources():
    sources = [(f"scripts/{path.name}", path.read_text()) for path in sorted(SCRIPTS.glob("*.sh"))]
    return sources + workflow_run_blocks()


@pytest.mark.parametrize("name, text", shell_sources(), ids=[name for name, _ in shell_sources()])
def test_scripts_and_workflow_steps_pass_the_bash32_rule(name, text):
    assert bash32_findings(text) == []


@pytest.mark.parametrize("snippet", [
    'opts=()\nasv run "${opts[@]}" HEAD',
    "asv run ${opts[*]} HEAD",
    'for x in "${opts[@]}"; do :; done',
    "declare -A seen=()",
    "local -n ref=$1",
    "mapfile -t lines <file",
    'echo "${name,,}"',
    'echo "${name@Q}"',
    "make test |& tee log",
    "shopt -s globstar",
    "wait -n",
    "echo $EPOCHSECONDS",
    "[[ -v ASV_CONFIG ]]",
    "printf '%(%H:%M)T' -1",
    "read -r -t 0.5 line",
    "echo {1..10..2}",
])
def test_the_bash32_rule_catches_what_bash32_refuses(snippet):
    assert bash32_findings(snippet) != []


@pytest.mark.parametrize("snippet", [
    'asv run ${opts[@]+"${opts[@]}"} HEAD',
    'echo "${#opts[@]}" "$@" "${1:-}" "${head:0:12}"',
    'x=${opts[@]:-none}',
    "# a comment may say \"${opts[@]}\"",
    'echo "$*"; read -r -d \'\' path',
])
def test_the_bash32_rule_passes_the_portable_forms(snippet):
    assert bash32_findings(snippet) == []


def test_bash32_rule_catches_the_unguarded_arrays_the_scripts_had():
    # main-job.sh, pr-compare.sh and asv-common.sh before the guard: ASV_CONFIG unset in CI.
    old = '"$bin/asv" publish "${config_opts[@]}"\n'
    assert bash32_findings(old) == [(1, bash32_findings(old)[0][1])]
    assert "unbound under set -u" in bash32_findings(old)[0][1]


# --- shellcheck ----------------------------------------------------------------------------------

def shellcheck(*paths):
    if shutil.which("shellcheck") is None:
        if os.environ.get("REQUIRE_SHELLCHECK"):
            pytest.fail("shellcheck is missing: .ci/run installs Debian's package")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    return subprocess.run(["shellcheck", "-x", "-P", "SCRIPTDIR/..", "-s", "bash", "-S", "warning", *paths],
                          cwd=ROOT, capture_output=True, text=True)


def test_shellcheck_finds_nothing_at_warning_level():
    result = shellcheck(*sorted(str(path) for path in [*SCRIPTS.glob("*.sh"), *SCRIPTS.glob("device/*.sh")]))
    assert result.returncode == 0, result.stdout


def test_shellcheck_catches_a_broken_script(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nset -u\nlocal_dir=$1\nif [ -n $local_dir ]; then cd $local_dir; fi\n')
    result = shellcheck(str(bad))
    assert result.returncode == 1 and "SC2070" in result.stdout
