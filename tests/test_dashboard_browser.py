"""The published dashboard in a real browser: asv's index and the p95 page, rendered by headless Chromium.

Results are written with asv's own API (``Results``, ``Benchmarks``) over a real git history,
then published by real ``asv publish`` and ``kvcache-tracker p95 --html``; the html directory is
served over http on 127.0.0.1 and Chromium loads it, runs its scripts and dumps the DOM.
Script errors are read from Chromium's console log (``--enable-logging=stderr``).

Chromium runs offline: every host but 127.0.0.1 resolves to nothing
(``--host-resolver-rules``), and its net log (``--log-net-log``) records every request the
pages started. The dashboard must render with none of them for another host:
``kvcache-tracker vendor-html`` (tracker/kvtracker/vendor_html.py) has put the scripts and styles asv's
index.html takes from CDNs into the html directory. Everything
the browser runs is what ``asv publish``, ``kvcache-tracker p95`` and ``vendor-html`` wrote.
"""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse

import numpy as np
import pytest
from asv.benchmarks import Benchmarks
from asv.config import Config
from asv.results import Results
from asv.runner import BenchmarkResult
from asv.util import write_json
from matplotlib import image

from kvtracker import cli

from conftest import asv_repo, git

MAC_CHROME = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"  # GitHub's macOS runners


def find_browser():
    """Chromium (Debian's package), or Google Chrome (GitHub's Ubuntu and macOS runners)."""
    found = [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    found.append(MAC_CHROME if os.path.exists(MAC_CHROME) else None)
    return next((path for path in found if path), None)


CHROMIUM = find_browser()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium or google-chrome: install Debian's chromium package (.ci/run does: apt-get install chromium)",
)

MACHINE = "dash-box"
STEADY_MACHINE = "dash-steady"  # a second machine, where nothing slows down
ENV = "virtualenv-py3.11"
RESTORE = "bench_reconstruct.Reconstruct8k.time_reconstruct_8k"
ZERO_COPY = f"{RESTORE}('zero_copy')"
POOL = "bench_pool.PoolOps.time_allocate_free"
BUDGET_MS = 5.0
N_COMMITS = 6
SLOW_FROM = 3  # zero_copy restores take +8 ms per call from this commit on (3 commits of history before it)
PLANTED_CDN = "https://code.jquery.com/jquery-3.3.1.min.js"
MISSING_DATA = "p95/no-data.js?v=000000000000"  # planted-no-data.html's data: no such file
CONSOLE_ERROR = re.compile(r"Uncaught|Failed to load resource|Error", re.IGNORECASE)

def benchmark_info(name, params, param_names):
    """A benchmarks.json entry as asv's discovery writes it."""
    return {
        "name": name,
        "type": "time",
        "unit": "seconds",
        "params": params,
        "param_names": param_names,
        "version": "1",
        "code": f"def {name.rsplit('.', 1)[-1]}(): pass",
        "number": 1,
        "repeat": 0,
        "rounds": 1,
        "min_run_count": 2,
        "sample_time": 0.01,
        "warmup_time": 0,
        "timeout": 60,
    }


BENCHMARKS = [
    benchmark_info(RESTORE, [["'zero_copy'", "'gather'"]], ["strategy"]),
    benchmark_info(POOL, [], []),
]


def samples_at(rng, commit_index, slows=True):
    """Per benchmark, the samples of each parameter combination (seconds per call)."""
    zero_copy = 0.001 + rng.exponential(0.0001, 100)
    if slows and commit_index >= SLOW_FROM:
        zero_copy += 0.008
    gather = 0.003 + rng.exponential(0.0001, 100)
    pool = 0.0002 + rng.exponential(0.00001, 100)
    return {RESTORE: [list(zero_copy), list(gather)], POOL: [list(pool)]}


def save_results(results_dir, commit, date, samples, machine=MACHINE):
    """One results file, as ``asv run --record-samples`` writes it."""
    results = Results({"machine": machine, "python": "3.11"}, {}, commit, date, "3.11", ENV, {})
    for info in BENCHMARKS:
        per_combination = samples[info["name"]]
        outcome = BenchmarkResult(
            result=[float(np.median(s)) for s in per_combination],
            samples=per_combination,
            number=[1] * len(per_combination),
            errcode=0,
            stderr="",
            profile=None,
        )
        results.add_result(info, outcome, record_samples=True)
    results.save(results_dir)


def publish_planted(root):
    """``(html_dir, commits)``: asv's dashboard and the p95 page over N_COMMITS planted commits,
    in a new git repository at ``root``, its CDN files served from the html directory."""
    repo = asv_repo(
        root,
        '{"version": 1, "project": "kvcache", "repo": ".", "branches": ["main"], "results_dir": "results",'
        ' "html_dir": "html", "show_commit_url": "https://example.org/c/"}\n',
    )
    (repo / "budgets.json").write_text(json.dumps({"budgets_ms": {ZERO_COPY: BUDGET_MS}}))
    commits = []
    for i in range(N_COMMITS):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {i}")
        commits.append(git(repo, "rev-parse", "HEAD"))
    conf = Config.load(str(repo / "asv.conf.json"))
    conf.results_dir = str(repo / "results")  # asv resolves it against the working directory
    Benchmarks(conf, BENCHMARKS).save()
    rng = np.random.default_rng(0)
    for machine in (MACHINE, STEADY_MACHINE):
        write_json(str(repo / "results" / machine / "machine.json"), {"machine": machine}, api_version=1)
        for i, commit in enumerate(commits):
            date = 1_700_000_000_000 + 3_600_000 * i
            save_results(conf.results_dir, commit, date, samples_at(rng, i, slows=machine == MACHINE), machine)
    done = subprocess.run(
        [sys.executable, "-m", "asv", "publish"], cwd=repo, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    code = cli.main(["p95", "--config", str(repo / "asv.conf.json"), "--budgets", str(repo / "budgets.json")])
    assert code == 0
    assert cli.main(["vendor-html", str(repo / "html")]) == 0
    return repo / "html", commits


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return publish_planted(tmp_path_factory.mktemp("dash") / "repo")


class Server:
    """The published html directory served over http on 127.0.0.1, remembering failed requests."""

    def __init__(self, html_dir):
        self.failed = []  # (path, status) of every request answered with an error
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_request(self, code="-", size="-"):
                if int(code) >= 400 and self.path != "/favicon.ico":  # asked for by any page without one
                    server.failed.append((self.path, int(code)))

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(html_dir))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.thread.join()


def plant_pages(html_dir):
    """The controls: a page with a script error and a missing script, one that uses a CDN, and
    the p95 page with its data missing."""
    (html_dir / "planted-error.html").write_text(
        "<html><body><p>planted</p><script>null.planted();</script><script src='missing.js'></script></body></html>"
    )
    (html_dir / "planted-cdn.html").write_text(f"<html><body><script src='{PLANTED_CDN}'></script></body></html>")
    page = (html_dir / "p95.html").read_text()
    (html_dir / "planted-no-data.html").write_text(re.sub(r"data-p95-data='[^']*'", f"data-p95-data='{MISSING_DATA}'", page))


@pytest.fixture(scope="module")
def server(published):
    html_dir, _ = published
    plant_pages(html_dir)
    running = Server(html_dir)
    yield running
    running.stop()


def chromium(url, tmp_path, *extra):
    """Load ``url`` in headless Chromium with no host but 127.0.0.1 reachable; ``(DOM after its
    scripts ran, console log lines, URLs the page requested from other hosts)``."""
    net_log = tmp_path / "net-log.json"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={net_log}",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        *extra,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console, requests_elsewhere(net_log, "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url)))


def requests_elsewhere(net_log, origin):
    """URLs of the requests that documents of ``origin`` started for other hosts, from Chromium's net log.

    A request a page starts (a script, a style, an XHR, a frame) names that page's origin as its
    initiator; Chromium's own (its updater, clock, account and autofill checks, which no flag
    turns off in every version) name none.
    """
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job and event.get("params", {}).get("initiator") == origin
    ]
    return [url for url in urls if not url.startswith(origin + "/")]


def errors_loading(server, url, tmp_path, *extra):
    """Load ``server.url + url``; ``(DOM, console errors, failed requests, requests that left the site)``."""
    server.failed.clear()
    dom, console, elsewhere = chromium(server.url + url, tmp_path, *extra)
    return dom, [line for line in console if CONSOLE_ERROR.search(line)], list(server.failed), elsewhere


def test_console_errors_are_caught(server, tmp_path):
    """The control: a script error reaches the console log, a missing script the server's."""
    _, errors, failed, left = errors_loading(server, "/planted-error.html", tmp_path, "--dump-dom")
    assert len(errors) == 1 and "Uncaught TypeError" in errors[0] and "planted" in errors[0]
    assert failed == [("/missing.js", 404)] and left == []


def test_a_request_to_a_cdn_is_caught(server, tmp_path):
    """The control: a page that loads a CDN script is seen asking for it (and failing, offline)."""
    _, _, _, left = errors_loading(server, "/planted-cdn.html", tmp_path, "--dump-dom")
    assert left == [PLANTED_CDN]


def test_asv_index_renders_the_benchmarks_offline_without_script_errors(server, tmp_path):
    dom, errors, failed, left = errors_loading(server, "/index.html", tmp_path, "--dump-dom")
    assert errors == [] and failed == [] and left == []
    assert "failed to load" not in dom  # not redirected to asv's error.html
    grid = re.findall(r'class="benchmark-text"[^>]*>([^<]+)<', dom)  # drawn by asv's summarygrid.js
    assert sorted(grid) == sorted(info["name"].split(".", 1)[1] for info in BENCHMARKS), grid
    assert '<a href="p95.html">p95</a>' in dom  # kvcache-tracker's link in asv's navigation


def test_every_published_page_loads_nothing_from_another_host(published, server, tmp_path):
    html_dir, _ = published
    pages = sorted(p.name for p in html_dir.glob("*.html") if not p.name.startswith("planted-"))
    assert {"index.html", "error.html", "p95.html"} <= set(pages), pages
    views = ["index.html#/regressions", "index.html#/summarylist", f"index.html#{POOL}"]  # asv's routes; the last a graph
    for page in pages + views:
        _, _, _, left = errors_loading(server, f"/{page}", tmp_path, "--dump-dom")
        assert left == [], (page, left)


def overview_rows(dom):
    """``[(status, machine, hidden, the row's HTML)]`` of the p95 page's overview table, in order."""
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr (class=\"[^\"]+\" data-machine=\"[^\"]+\"[^>]*)>(.*?)</tr>", body)
    return [
        (re.search(r'class="([^"]+)"', attributes).group(1), re.search(r'data-machine="([^"]+)"', attributes).group(1),
         "hidden" in attributes, cells)
        for attributes, cells in rows
    ]


def test_p95_page_opens_with_the_flagged_commit_and_draws_every_plot(published, server, tmp_path):
    _, commits = published
    dom, errors, failed, left = errors_loading(server, "/p95.html", tmp_path, "--dump-dom", "--window-size=1200,6000")
    assert errors == [] and failed == [] and left == []
    rows = overview_rows(dom)
    status, machine, hidden, cells = rows[0]
    assert (status, machine, hidden) == ("regression", MACHINE, False)
    assert f'href="https://example.org/c/{commits[SLOW_FROM]}"' in cells  # the row names the commit
    assert "Reconstruct8k reconstruct_8k (zero_copy)" in cells
    assert [r[0] for r in rows].count("regression") == 1 and len(rows) == 6  # 3 series on 2 machines
    assert f"budget {BUDGET_MS:.2f} ms" in dom
    assert dom.count('class="uplot') == 6  # every plot drawn by uPlot (the window shows them all)
    assert dom.count('class="u-label">budget<') == 2  # the budget line, in the legend of zero_copy's 2 plots


def test_p95_page_machine_picker_hides_the_other_machines(published, server, tmp_path):
    dom, errors, failed, left = errors_loading(server, f"/p95.html?machine={STEADY_MACHINE}", tmp_path, "--dump-dom")
    assert errors == [] and failed == [] and left == []
    shown = {(machine, hidden) for _, machine, hidden, _ in overview_rows(dom)}
    assert shown == {(MACHINE, True), (STEADY_MACHINE, False)}
    assert re.search(rf'<section id="s\d+" data-machine="{MACHINE}" hidden', dom)


def test_p95_page_draws_something(server, tmp_path):
    chromium(
        f"{server.url}/p95.html", tmp_path, "--screenshot", "--window-size=1200,1600", "--hide-scrollbars"
    )
    pixels = image.imread(tmp_path / "screenshot.png")
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels[..., :3].std() > 0.05  # not a blank page


def test_p95_page_says_so_when_its_data_cannot_be_loaded(server, tmp_path):
    dom, errors, failed, left = errors_loading(server, "/planted-no-data.html", tmp_path, "--dump-dom")
    assert failed == [(f"/{MISSING_DATA}", 404)] and left == []
    assert any(f"p95 plots: Error: cannot load {MISSING_DATA}" in line for line in errors), errors
    notes = re.findall(r'<p class="load-error" role="alert">([^<]*)</p>', dom)
    assert notes == [f"The plots could not be drawn (cannot load {MISSING_DATA}): reload the page; "
                     "the tables and commit lists below are complete without them."]
    assert dom.count('class="uplot') == 0 and "<tbody>" in dom  # the table is there without the plots


def test_asv_regressions_view_lists_the_planted_slowdown(published, server, tmp_path):
    _, commits = published
    dom, errors, failed, left = errors_loading(server, "/index.html#/regressions", tmp_path, "--dump-dom")
    assert errors == [] and failed == [] and left == []
    rows = re.findall(r'<tr id="asv-r-[^"]*">(.*?)</tr>', dom)  # drawn by asv's regressions.js
    assert len(rows) == 1, rows
    assert f">{ZERO_COPY}</a>" in rows[0] and f">{commits[SLOW_FROM][:8]}</a>" in rows[0]
