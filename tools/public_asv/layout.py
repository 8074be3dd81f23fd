"""Lay out an asv project folder over public asv results, for the tracker and for asv itself.

    python tools/public_asv/layout.py PROJECT

reads PROJECT's entry in ``projects.json`` and writes ``$PUBLIC_ASV_DATA/PROJECT`` (default
``/work/public-data/PROJECT``):

- ``results/``: the results repository's ``results_path`` at ``results_commit``, extracted
  afresh (a rerun replaces it). Files of asv's results format 1 are converted to format 2
  with asv's own ``Results.update`` / ``Machine.update`` (asv 0.6 refuses format 1).
- ``asv.conf.json``: ``repo`` is the project's git repository, ``branches`` its branch,
  ``results_dir`` and ``html_dir`` beside the file.
- ``order: asv-dates`` only: ``standin.git``, a repository of empty commits, one per commit
  with results, in the order of the commit dates asv recorded (oldest first), each commit's
  message naming the project's commit; the results name the stand-in commits instead, and
  ``standin-map.json`` maps each stand-in hash back to the project's.

Repositories are read from ``$PUBLIC_ASV_MIRRORS/OWNER+NAME/repo`` (default ``/work/.mirror``,
where the session's ``fetch`` tool puts them), or from ``$PUBLIC_ASV_REPO_<OWNER>_<NAME>``
(any git directory; ``-`` and ``.`` in the names as ``_``). Nothing is written outside the
project folder; the repositories are only read.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECTS = os.path.join(HERE, "projects.json")
DEFAULT_DATA = "/work/public-data"
DEFAULT_MIRRORS = "/work/.mirror"


class LayoutError(Exception):
    """A one-line message naming what is missing and what to do."""


def load_projects(path=PROJECTS):
    """``{name: entry}`` of ``projects.json`` (keys starting with ``_`` are comments)."""
    with open(path, encoding="utf-8") as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def data_dir(name):
    return os.path.join(os.environ.get("PUBLIC_ASV_DATA", DEFAULT_DATA), name)


def git_dir_of(repo):
    """The local git directory of GitHub repository ``owner/name`` (see the module docstring)."""
    override = "PUBLIC_ASV_REPO_" + repo.replace("/", "_").replace("-", "_").replace(".", "_")
    path = os.environ.get(override) or os.path.join(
        os.environ.get("PUBLIC_ASV_MIRRORS", DEFAULT_MIRRORS), repo.replace("/", "+"), "repo"
    )
    if _git(path, "rev-parse", "--git-dir") is None:
        raise LayoutError(
            f"no git repository of {repo} at {path}: fetch github:{repo} (or `git clone --mirror "
            f"https://github.com/{repo} DIR` and set {override}=DIR)"
        )
    return path


def _git(git_dir, *args, stdin=None):
    """git's stdout as text, or None when git fails."""
    done = subprocess.run(
        ["git", "--git-dir", git_dir, *args], input=stdin, capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def extract_results(git_dir, commit, path, target):
    """Write the tree ``commit:path`` of ``git_dir`` to ``target`` (replaced if it exists)."""
    if _git(git_dir, "cat-file", "-e", f"{commit}:{path}") is None:
        raise LayoutError(f"{commit}:{path} is not in {git_dir}: fetch the results repository again")
    staging = tempfile.mkdtemp(prefix="public-asv-", dir=os.path.dirname(target))
    try:
        archive = subprocess.run(
            ["git", "--git-dir", git_dir, "archive", "--format=tar", commit, path],
            capture_output=True, check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", staging], input=archive, check=True)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(os.path.join(staging, path), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def result_files(results_dir):
    """Paths of asv's results files: RESULTS/MACHINE/*.json but machine.json."""
    for machine in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, machine)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if name.endswith(".json") and name != "machine.json":
                    yield os.path.join(folder, name)


def upgrade_format_1(results_dir):
    """Convert files of asv's results format 1 to format 2 in place; returns how many."""
    from asv.machine import Machine
    from asv.results import Results

    converted = 0
    for path in result_files(results_dir):
        with open(path, encoding="utf-8") as f:
            version = json.load(f).get("version")
        if version == 1:
            Results.update(path)
            converted += 1
    for machine in os.listdir(results_dir):
        path = os.path.join(results_dir, machine, "machine.json")
        if os.path.exists(path):
            Machine.update(path)
    return converted


def build_standin(results_dir, standin_dir):
    """A repository of one empty commit per commit with results, ordered by asv's commit dates;
    rewrites the results to name the stand-in commits. Returns ``{stand-in hash: original}``."""
    files = list(result_files(results_dir))
    dates = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        dates[d["commit_hash"]] = d.get("date") or 0
    originals = sorted(dates, key=lambda c: (dates[c], c))
    if os.path.exists(standin_dir):
        shutil.rmtree(standin_dir)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", standin_dir], check=True)
    standin = _fast_import(standin_dir, originals, dates)
    for path in files:
        _rename_commit(path, standin)
    return {new: old for old, new in standin.items()}


def _fast_import(standin_dir, originals, dates):
    """Commit ``originals`` in order with git fast-import; ``{original: stand-in hash}``."""
    stream = []
    for i, commit in enumerate(originals, start=1):
        when = int(dates[commit] // 1000)
        message = f"stands in for {commit}\n"
        stream += [f"commit refs/heads/main", f"mark :{i}",
                   f"committer public-asv <public-asv@localhost> {when} +0000",
                   f"data {len(message.encode())}", message.rstrip("\n")]
        if i > 1:
            stream.append(f"from :{i - 1}")
        stream.append("")
    marks = os.path.join(standin_dir, "marks")
    subprocess.run(["git", "--git-dir", standin_dir, "fast-import", "--quiet", f"--export-marks={marks}"],
                   input="\n".join(stream) + "\n", text=True, check=True)
    with open(marks, encoding="utf-8") as f:
        by_mark = dict(line.split() for line in f)
    os.remove(marks)
    return {commit: by_mark[f":{i}"] for i, commit in enumerate(originals, start=1)}


def _rename_commit(path, standin):
    """Point one results file at its stand-in commit; the file name follows asv's
    HASH[:8]-ENV.json."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    new = standin[d["commit_hash"]]
    d["commit_hash"] = new
    folder, name = os.path.split(path)
    os.remove(path)
    with open(os.path.join(folder, new[:8] + name[name.index("-"):]), "w", encoding="utf-8") as f:
        json.dump(d, f, separators=(",", ":"))


def write_conf(folder, name, entry, repo_dir):
    """asv.conf.json for the tracker and ``asv publish``."""
    conf = {
        "version": 1,
        "project": name,
        "project_url": f"https://github.com/{entry['project_repo']}",
        "repo": repo_dir,
        "branches": [entry["branch"]],
        "dvcs": "git",
        "environment_type": "virtualenv",
        "results_dir": "results",
        "html_dir": "html",
    }
    if entry.get("order", "git") == "git":
        conf["show_commit_url"] = f"https://github.com/{entry['project_repo']}/commit/"
    with open(os.path.join(folder, "asv.conf.json"), "w", encoding="utf-8") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")


def lay_out(name, entry):
    """Build the project folder; returns its path."""
    folder = data_dir(name)
    os.makedirs(folder, exist_ok=True)
    results_git = git_dir_of(entry["results_repo"])
    results_dir = os.path.join(folder, "results")
    extract_results(results_git, entry["results_commit"], entry["results_path"], results_dir)
    converted = upgrade_format_1(results_dir)
    if converted:
        print(f"layout: converted {converted} results files from asv's format 1 to 2", file=sys.stderr)
    order = entry.get("order", "git")
    if order == "asv-dates":
        standin_dir = os.path.join(folder, "standin.git")
        mapping = build_standin(results_dir, standin_dir)
        with open(os.path.join(folder, "standin-map.json"), "w", encoding="utf-8") as f:
            json.dump(mapping, f, indent=0)
        repo_dir = standin_dir
    elif order == "git":
        repo_dir = git_dir_of(entry["project_repo"])
        if _git(repo_dir, "rev-parse", "--verify", "--quiet", f"refs/heads/{entry['branch']}") is None:
            raise LayoutError(f"{repo_dir} has no local branch {entry['branch']}: fetch github:{entry['project_repo']} again")
    else:
        raise LayoutError(f"unknown order {order!r} for {name} in {PROJECTS}: 'git' or 'asv-dates'")
    write_conf(folder, name, entry, repo_dir)
    return folder


def main(argv):
    projects = load_projects()
    if len(argv) != 1 or argv[0] not in projects:
        print(f"usage: layout.py PROJECT (one of {', '.join(sorted(projects))})", file=sys.stderr)
        return 2
    try:
        print(lay_out(argv[0], projects[argv[0]]))
    except LayoutError as error:
        print(f"layout: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
