"""How ``kvcache-tracker p95`` and its page scale over a long history: COMMITS commits x
BENCHMARKS benchmarks on MACHINES machines, each result with SAMPLES raw samples, written by
asv's own ``Results`` class into a temporary git repository (docs/tracker.md, "Scale").
Benchmark 0 slows down by 30% half way (a regression); benchmark 1 has a budget it misses.

    .venv/bin/python tools/tracker-scale.py [--commits 1000] [--benchmarks 20] [--samples 200]
        [--machines 1] [--repeat 3] [--page-loads 5] [--keep DIR]

Prints the seconds of each run of the command (--json, and with the HTML page), each the
best of --repeat runs; then the page's size (p95.html and every file it loads) and, over
--page-loads loads in a fresh headless Chromium each (1280x800, served over http on
127.0.0.1), the first paint and first contentful paint that Chromium's Paint Timing API
reports, and when the plots' data and library had arrived (Resource Timing), read through
the DevTools protocol (``--remote-debugging-pipe``).
"""

import argparse
import functools
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from asv.results import Results
from asv.runner import BenchmarkResult

OVER_BUDGET = "bench_s.S.time_b1"
PAINTS = "JSON.stringify(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))"
PLOTS_READY = (  # when the plots' data and library had arrived (null before): their last responseEnd
    "window.P95_DATA && window.uPlot ? Math.max(...performance.getEntriesByType('resource')"
    ".filter(e => /data\\.js|uPlot/.test(e.name)).map(e => e.responseEnd)) : null"
)


def make_project(root, commits, benchmarks, samples, machines):
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    stream = []
    for i in range(commits):  # git fast-import chains them: a thousand commits in a blink
        message = f"c{i}"
        stream.append(f"commit refs/heads/main\ncommitter t <t@t> {1_700_000_000 + i} +0000\ndata {len(message)}\n{message}\n")
    subprocess.run(["git", "-C", root, "fast-import", "--quiet"], input="".join(stream).encode(), check=True)
    hashes = subprocess.run(
        ["git", "-C", root, "rev-list", "--reverse", "main"], check=True, capture_output=True, text=True
    ).stdout.split()
    with open(os.path.join(root, "asv.conf.json"), "w") as f:
        f.write('{"version": 1, "repo": ".", "branches": ["main"], "results_dir": "results", "html_dir": "html",'
                ' "show_commit_url": "https://github.com/OWNER/REPO/commit/"}')
    os.makedirs(os.path.join(root, "benchmarks"))
    with open(os.path.join(root, "benchmarks", "budgets.json"), "w") as f:
        json.dump({"budgets_ms": {OVER_BUDGET: 1.1}}, f)
    rng = np.random.default_rng(0)
    for machine in range(machines):
        for i, commit in enumerate(hashes):
            results = Results(
                {"machine": f"box{machine}", "python": "3.11"}, {}, commit, 1_700_000_000_000 + 3_600_000 * i, "3.11", "env", {}
            )
            for b in range(benchmarks):
                seconds = list(0.001 * (1 + rng.exponential(0.1, samples)) * (1.3 if i >= commits // 2 and b == 0 else 1))
                outcome = BenchmarkResult(
                    result=[float(np.median(seconds))], samples=[seconds], number=[1], errcode=0, stderr="", profile=None
                )
                results.add_result({"name": f"bench_s.S.time_b{b}", "version": "1", "params": []}, outcome, record_samples=True)
            results.save(os.path.join(root, "results"))


def timed(args, cwd, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kvtracker.cli", *args], cwd=cwd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def page_bytes(html_dir):
    """``{file: bytes}`` of p95.html and the files under p95/ that it loads (all but the licence)."""
    files = {"p95.html": os.path.getsize(os.path.join(html_dir, "p95.html"))}
    for name in sorted(os.listdir(os.path.join(html_dir, "p95"))):
        if not name.endswith("LICENSE"):  # p95.js, uPlot and data.js
            files[f"p95/{name}"] = os.path.getsize(os.path.join(html_dir, "p95", name))
    return files


class DevTools:
    """A headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4 of the
    browser: JSON messages ended by a NUL byte)."""

    def __init__(self, browser, profile):
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        self.process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1280,800", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=functools.partial(_as_fds_3_and_4, to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id, self.events = b"", 0, []

    def call(self, method, session=None, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._read())
        raise TimeoutError(method)

    def _read(self):
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self):
        try:
            self.call("Browser.close")
        except RuntimeError:
            pass
        self.process.wait(timeout=30)
        os.close(self._to_browser)
        os.close(self._from_browser)


def _as_fds_3_and_4(to_browser, from_browser):
    """In the browser's process: its ends of the pipes as fds 3 (read) and 4 (write)."""
    high_in, high_out = os.dup(to_browser), os.dup(from_browser)  # above 4: no clash with dup2 below
    os.dup2(high_in, 3)
    os.dup2(high_out, 4)


def load_page(browser, url, profile):
    """One load of ``url`` in a fresh browser: ``(first paint ms, first contentful paint ms,
    plots' data and library loaded ms, bytes received)``, times from the navigation's start."""
    tools = DevTools(browser, profile)
    try:
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tools.call("Page.enable", session)
        tools.call("Network.enable", session)
        tools.call("Page.navigate", session, url=url)
        tools.wait_for("Page.loadEventFired")
        paints = {}
        for _ in range(50):  # paint entries may land just after the load event
            found = tools.call("Runtime.evaluate", session, expression=PAINTS, returnByValue=True)
            paints = dict(json.loads(found["result"]["value"]))
            if "first-contentful-paint" in paints:
                break
            time.sleep(0.1)
        loaded = None
        for _ in range(100):  # p95.js loads the plots' library and data after the first frame
            found = tools.call("Runtime.evaluate", session, expression=PLOTS_READY, returnByValue=True)
            loaded = found["result"].get("value")
            if loaded is not None:
                break
            time.sleep(0.1)
        received = sum(e["params"]["encodedDataLength"] for e in tools.events if e.get("method") == "Network.loadingFinished")
        return paints.get("first-paint"), paints.get("first-contentful-paint"), loaded, received
    finally:
        tools.close()


def serve(directory):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a browser closed while a request (its favicon) was answered

    httpd = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=directory))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def measure_page(html_dir, loads, scratch):
    sizes = page_bytes(html_dir)
    print(f"page: {sum(sizes.values()) / 1e6:.2f} MB in all: " + ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sizes.items()))
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        print("no chromium on PATH: first paint not measured")
        return
    httpd = serve(html_dir)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/p95.html"
        runs = [load_page(browser, url, os.path.join(scratch, f"profile{n}")) for n in range(loads)]
    finally:
        httpd.shutdown()
    for name, values in zip(("first paint", "first contentful paint", "plots' data and uPlot loaded"), zip(*runs)):
        print(f"{name}: median {statistics.median(values):.0f} ms, max {max(values):.0f} ms ({loads} loads, fresh browser each)")
    print(f"bytes received: {runs[0][3] / 1e6:.2f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--benchmarks", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--machines", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page-loads", type=int, default=5)
    parser.add_argument("--keep", help="copy the html directory here (to look at it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        make_project(root, args.commits, args.benchmarks, args.samples, args.machines)
        print(f"{args.commits} commits x {args.benchmarks} benchmarks x {args.machines} machine(s) x {args.samples} samples"
              f" written in {time.perf_counter() - start:.0f} s")
        print(f"p95 --json: {timed(['p95', '--json', os.path.join(root, 'p95.json'), '--no-html'], root, args.repeat):.1f} s (best of {args.repeat})")
        print(f"p95 --json --html: {timed(['p95', '--json', os.path.join(root, 'p95.json')], root, args.repeat):.1f} s (best of {args.repeat})")
        measure_page(os.path.join(root, "html"), args.page_loads, root)
        if args.keep:
            shutil.copytree(os.path.join(root, "html"), args.keep, dirs_exist_ok=True)


if __name__ == "__main__":
    main()
