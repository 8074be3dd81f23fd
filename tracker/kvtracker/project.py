"""Where things are: asv.conf.json's settings, and the branch history from git.

Paths in asv.conf.json are relative to the file's directory (asv runs from there).
"""

import os
import re
import subprocess
from dataclasses import dataclass, field

from asv.config import Config
from asv.util import UserError as AsvUserError

from .errors import UserError

DEFAULT_CONFIG = "asv.conf.json"
DEFAULT_THRESHOLD = 0.10


@dataclass(frozen=True)
class Project:
    """The settings the tracker reads; a missing asv.conf.json leaves them None."""

    results_dir: str | None
    html_dir: str | None
    repo_dir: str  # the git repository whose history orders the commits
    branch: str  # "HEAD" when asv.conf.json names none
    commit_url: str | None  # asv's show_commit_url; the hash is appended
    config_dir: str  # asv.conf.json's directory (the current one without it)
    regressions_thresholds: dict = field(default_factory=dict)  # asv's: {regex: relative threshold}

    def results_dir_or(self, given):
        """``given`` (--results) if set, else asv.conf.json's results_dir; a ``UserError`` if neither."""
        results_dir = given or self.results_dir
        if results_dir is None:
            raise UserError(f"no {DEFAULT_CONFIG} here: run from the project root or pass --results DIR")
        return results_dir

    def threshold_for(self, benchmark, given=None):
        """The relative change that counts for ``benchmark`` (asv's name with its parameters):
        ``given`` (--threshold) if set; else, as ``asv publish`` reads ``regressions_thresholds``,
        the largest threshold whose regex matches the name from its start; else ``DEFAULT_THRESHOLD``."""
        if given is not None:
            return given
        matching = [t for regex, t in self.regressions_thresholds.items() if re.match(regex, benchmark)]
        return max(matching) if matching else DEFAULT_THRESHOLD


def load_project(config_path=None):
    """Read ``config_path`` (default asv.conf.json if it exists; without it, the current
    directory is the repository). A ``config_path`` given but missing is a ``UserError``."""
    if config_path is not None and not os.path.exists(config_path):
        raise UserError(f"config file {config_path} not found: pass asv.conf.json's path to --config")
    config_path = config_path or DEFAULT_CONFIG
    if not os.path.exists(config_path):
        return Project(None, None, os.getcwd(), "HEAD", None, os.getcwd())
    try:
        config = Config.load(config_path)
    except (AsvUserError, OSError, ValueError) as error:
        raise UserError(f"cannot read {config_path}: {' '.join(str(error).split())}")
    base = os.path.dirname(os.path.abspath(config_path))
    repo = config.repo if os.path.isdir(os.path.join(base, config.repo)) else "."
    url = config.show_commit_url if config.show_commit_url not in (None, "", "#") else _github_commit_url()
    return Project(
        results_dir=os.path.join(base, config.results_dir),
        html_dir=os.path.join(base, config.html_dir),
        repo_dir=os.path.normpath(os.path.join(base, repo)),
        branch=config.branches[0] or "HEAD",
        commit_url=url,
        config_dir=base,
        regressions_thresholds=_thresholds(config, config_path),
    )


def _thresholds(config, config_path):
    """asv.conf.json's ``regressions_thresholds`` as ``{regex: float}``; a ``UserError`` naming a bad one."""
    found = {}
    for regex, value in (getattr(config, "regressions_thresholds", None) or {}).items():
        try:
            re.compile(regex)
            found[regex] = float(value)
        except (re.error, TypeError, ValueError) as error:
            raise UserError(f"cannot read regressions_thresholds[{regex!r}] in {config_path}: {error}")
        if not found[regex] > 0:
            raise UserError(f"regressions_thresholds[{regex!r}] in {config_path} must be a positive fraction, not {value!r}")
    return found


def first_parent_commits(repo_dir, branch, warn=None):
    """Full hashes along ``branch``'s first-parent history, oldest first. Where there is no
    local ``branch`` (a fresh clone has only ``origin/BRANCH`` of most branches) the remote
    one is read, and ``warn`` is told so."""
    if _git(repo_dir, "rev-parse", "--git-dir") is None:
        raise UserError(f"{repo_dir} is not a git repository: asv.conf.json's \"repo\" must be a clone of the project")
    for name in (branch, f"origin/{branch}"):
        if _git(repo_dir, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}") is not None:
            break
    else:
        raise UserError(
            f"no branch {branch} in {repo_dir}, nor origin/{branch}: fetch it (git fetch origin {branch}), "
            "or name the tracked branch in asv.conf.json's \"branches\""
        )
    if name != branch and warn is not None:
        warn(f"no local branch {branch} in {repo_dir}: reading origin/{branch} (git branch {branch} origin/{branch} makes one)")
    return _git(repo_dir, "rev-list", "--first-parent", "--reverse", name, "--").split()


def resolve_commit(repo_dir, rev):
    """The full hash that ``rev`` (short or full hash, branch, tag) names in ``repo_dir``."""
    out = (
        None
        if rev.startswith("-")
        else _git(repo_dir, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    )
    if out is None:
        raise UserError(f"unknown commit {rev}: not a commit, branch or tag in {repo_dir}")
    return out.strip()


def _git(repo_dir, *args):
    """git's stdout, or None when git fails (not a repository, unknown revision)."""
    try:
        done = subprocess.run(["git", "-C", repo_dir, *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def _github_commit_url():
    """The commit URL of the repository a GitHub Actions job runs in, or None outside one."""
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    return f"{server}/{repository}/commit/" if server and repository else None
