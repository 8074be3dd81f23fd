"""Screenshots of the published dashboard for docs/dashboard.md, into docs/img/.

    make screenshots    # or: .venv/bin/python scripts/screenshots.py [--html DIR] [--out DIR]

Without --html it publishes the planted results of tests/test_dashboard_browser.py (six
commits of real asv results; zero_copy restores 8 ms slower from the fourth; `asv publish`,
`kvcache-tracker p95`, `kvcache-tracker vendor-html`) into a temporary folder. With --html it
shoots a directory already published that way (e.g. .asv/html after `make main-job`).
Headless Chromium (Debian's chromium or Google Chrome) loads each page from 127.0.0.1 with
no other host reachable. Exit 1 when a page asked another host for something or a PNG is
300 KB or more (the line names it); rerunning overwrites the PNGs.
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the planted results and the browser helpers of the test

import test_dashboard_browser as dashboard  # noqa: E402

MAX_BYTES = 300_000
SHOTS = [  # (file in --out, page, window width x height)
    ("p95-page.png", "p95.html", (1200, 1500)),
    ("asv-index.png", "index.html", (1200, 700)),
    ("asv-regressions.png", "index.html#/regressions", (1200, 500)),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, help="a published html directory (default: publish the planted results)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNGs go (default docs/img)")
    args = parser.parse_args(argv)
    if dashboard.CHROMIUM is None:
        sys.exit("screenshots: no chromium or google-chrome found: install Debian's chromium package")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kvcache-screenshots-") as work:
        work = Path(work)
        html_dir = args.html or dashboard.publish_planted(work / "repo")[0]
        if not (html_dir / "index.html").exists():
            sys.exit(f"screenshots: no index.html in {html_dir}: pass the directory `asv publish` wrote")
        server = dashboard.Server(html_dir)
        try:
            problems = [shoot(server, page, args.out / name, size, work) for name, page, size in SHOTS]
        finally:
            server.stop()
    problems = [p for p in problems if p]
    for problem in problems:
        print(f"screenshots: {problem}", file=sys.stderr)
    return 1 if problems else 0


def shoot(server, page, png, size, work):
    """Screenshot ``page`` into ``png``; a problem as one line, or None."""
    _, _, elsewhere = dashboard.chromium(
        f"{server.url}/{page}", work, f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", "--hide-scrollbars"
    )
    print(f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}: {page}, {png.stat().st_size // 1000} KB")
    if elsewhere:
        return f"{page} asked other hosts for {', '.join(elsewhere)}"
    if png.stat().st_size >= MAX_BYTES:
        return f"{png} is {png.stat().st_size} bytes: keep screenshots under {MAX_BYTES} (a smaller --window-size in SHOTS)"
    return None


if __name__ == "__main__":
    sys.exit(main())
