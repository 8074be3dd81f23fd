"""``kvcache-tracker vendor-html HTML_DIR``: the published dashboard loads nothing from another host.

asv 0.6.6's index.html loads jQuery, flot, bootstrap, stupidtable and md5 from CDNs: offline,
or behind a proxy, it renders nothing (asv's error page). This command installs the same
packages, pinned in ``tracker/kvtracker/npm/package-lock.json`` (``npm ci`` checks every tarball against
the registry's sha512 recorded there; npm's cache serves them offline after one online run),
copies the files the tags load into ``HTML_DIR/vendor/PACKAGE/...`` (with the files their CSS
refers to), and points the tags at the copies.

After it succeeded:

- No ``.html`` or ``.css`` file under HTML_DIR loads a script, style, image, frame or font
  from a URL with a host. Links a reader clicks (``<a href>``) stay as they are.
- A tag keeps asv's ``integrity`` attribute where the copy has that digest: jQuery 3.3.1,
  bootstrap 3.1.1 (script and style), flot-orderbars 1.0.0 and blueimp-md5 2.19.0 are the
  CDN's bytes. Two builds are not on npm; their tags lose ``integrity`` (npm ci checked their
  tarballs instead), and the substitutes are declared in ``CDN_FILES``:
  flot 0.8.3's ``*.min.js`` are cdnjs's own minification, so the same release's unminified
  files stand in; stupidtable 1.0.1 was published on cdnjs only, so stupid-table-plugin 1.1.3
  (the only version on npm, the same plugin by the same author) stands in.
- A URL that ``CDN_FILES`` does not know fails the command, naming the file and the URL: an
  asv upgrade cannot bring a CDN back unnoticed. So does a copy whose digest differs from the
  tag's integrity unless the entry is a declared substitute. So does a file CDN_FILES names
  that npm's install lacks (one line naming it).
- A failure leaves every page as it was: all new pages are built and checked before the first
  is written, and each is replaced whole (a temporary file beside it, then ``os.replace``).

Rerunning it is harmless: tags already pointing at local files are left alone, and npm runs
only when some tag still points at a CDN.
"""

import base64
import hashlib
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from .atomic import write_text_atomically
from .errors import UserError

NPM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "npm")  # package.json, package-lock.json
VENDOR = "vendor"  # under HTML_DIR


@dataclass(frozen=True)
class Source:
    """Where a CDN URL's file comes from: ``path`` inside npm ``package``; ``substitute`` says
    why the bytes differ from the CDN's (None: they must match the tag's integrity)."""

    package: str
    path: str
    substitute: str | None = None


FLOT_MIN = "flot 0.8.3's minified builds are cdnjs's own, not on npm: the release's unminified file"
STUPIDTABLE = "stupidtable 1.0.1 is on cdnjs only: stupid-table-plugin 1.1.3, the only version on npm"

# asv 0.6.6's index.html: every URL with a host that it loads, and the file that replaces it.
CDN_FILES = {
    "https://code.jquery.com/jquery-3.3.1.min.js": Source("jquery", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": Source("flot", "jquery.flot.js", FLOT_MIN),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": Source(
        "flot", "jquery.flot.time.js", FLOT_MIN
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": Source(
        "flot", "jquery.flot.selection.js", FLOT_MIN
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": Source(
        "flot", "jquery.flot.categories.js", FLOT_MIN
    ),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": Source(
        "flot-orderbars", "js/jquery.flot.orderBars.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": Source(
        "stupid-table-plugin", "stupidtable.min.js", STUPIDTABLE
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": Source("blueimp-md5", "js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": Source("bootstrap", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": Source(
        "bootstrap", "dist/css/bootstrap.min.css"
    ),
}

# Tags that make the browser fetch what an attribute names (``<a href>`` only on a click).
LOADING_TAG = re.compile(r"<(?:script|link|img|iframe|frame|source|track|embed|object|audio|video|input)\b[^>]*>", re.I)
URL_ATTRIBUTE = re.compile(r"""(\s(?:src|href|data|poster)\s*=\s*)(["']?)([^"'\s>]+)\2""", re.I)
CSS_URL = re.compile(r"""(?:@import\s+(?:url\(\s*)?|url\(\s*)(["']?)([^"')\s;]+)\1""", re.I)
DROPPED_ATTRIBUTES = re.compile(r"""\s(?:crossorigin|referrerpolicy)(?:\s*=\s*(["'])[^"']*\1)?""", re.I)
INTEGRITY = re.compile(r"""\sintegrity\s*=\s*(["'])([^"']*)\1""", re.I)


def register(subparsers):
    parser = subparsers.add_parser(
        "vendor-html",
        help="serve asv's CDN scripts and styles from the html directory itself",
        description=__doc__,
    )
    parser.add_argument("html_dir", metavar="HTML_DIR", help="the directory `asv publish` wrote (e.g. .asv/html)")
    parser.add_argument("--npm", default="npm", help="the npm command (default: npm on PATH)")
    parser.set_defaults(func=run)


def run(args):
    if not os.path.isdir(args.html_dir):
        raise UserError(f"{args.html_dir} is not a directory: pass the html_dir `asv publish` wrote (e.g. .asv/html)")
    copied = vendor(args.html_dir, args.npm)
    print(f"vendor-html: {len(copied)} file(s) from npm into {os.path.join(args.html_dir, VENDOR)}; no CDN left")
    return 0


def is_external(url):
    """A URL with a host (``https://...``, ``//...``), as opposed to a path on this site or ``data:``."""
    return re.match(r"(?:[a-z][a-z0-9+.-]*:)?//", url, re.I) is not None


def external_loads(html_dir):
    """``[(file, url)]``: every URL with a host that an html or css file under ``html_dir`` loads."""
    found = []
    for path in _pages(html_dir):
        text = _read(path)
        urls = [m.group(2) for m in CSS_URL.finditer(text)]
        if path.endswith(".html"):
            urls += [m.group(3) for tag in LOADING_TAG.findall(text) for m in URL_ATTRIBUTE.finditer(tag)]
        found += [(path, url) for url in urls if is_external(url)]
    return found


def vendor(html_dir, npm="npm"):
    """Copy every CDN file the pages load into ``html_dir/vendor`` and point the tags there.

    Returns the copied files (paths under ``html_dir``); raises UserError for an unknown URL,
    a missing npm, or an npm that cannot install the locked packages.
    """
    loads = external_loads(html_dir)
    for path, url in loads:
        if url not in CDN_FILES:
            raise UserError(
                f"{path} loads {url}, which tracker/kvtracker/vendor_html.py's CDN_FILES does not list: "
                "add its npm package and file there (and to tracker/kvtracker/npm/package.json) so it is served locally"
            )
    if not loads:
        return []
    with tempfile.TemporaryDirectory(prefix="kvcache-npm-") as work:
        modules = _npm_ci(work, npm)
        copied = _copy_sources(modules, html_dir, {CDN_FILES[url] for _, url in loads})
    rewritten = {path: _rewritten(path, html_dir) for path in sorted({path for path, _ in loads})}
    for path, text in rewritten.items():  # every page checked before any is written
        write_text_atomically(path, text)
    return copied


def _pages(html_dir):
    for folder, _, names in os.walk(html_dir):
        yield from (os.path.join(folder, n) for n in sorted(names) if n.endswith((".html", ".css")))


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _npm_ci(work, npm):
    """Install the locked packages into ``work``; their ``node_modules`` folder."""
    executable = shutil.which(npm)
    if executable is None:
        raise UserError(
            f"{npm} not found: install Node.js with npm (macOS: brew install node; Debian: apt-get install npm), "
            "which fetches the dashboard's scripts once and serves them from its cache afterwards"
        )
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(NPM_DIR, name), work)
    done = subprocess.run(
        [executable, "ci", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("npm error") and "complete log" not in line]
        why = "; ".join(line.removeprefix("npm error ").strip() for line in errors[:2]) or f"exit {done.returncode}"
        raise UserError(
            f"npm ci of tracker/kvtracker/npm/package-lock.json failed ({why}): offline with an empty npm cache? "
            "Run it once with the registry reachable; npm's cache serves it offline afterwards"
        )
    return os.path.join(work, "node_modules")


def _copy_sources(modules, html_dir, sources):
    """Copy each source, and the relative URLs its CSS names, to ``html_dir/vendor/PACKAGE/PATH``."""
    wanted = {(s.package, s.path) for s in sources}
    for source in sources:
        if source.path.endswith(".css"):
            try:
                text = _read(os.path.join(modules, source.package, source.path))
            except OSError as error:
                raise _not_installed(source.package, source.path, error) from error
            for match in CSS_URL.finditer(text):
                ref = match.group(2).split("?")[0].split("#")[0]
                if ref and not is_external(ref) and not ref.startswith("data:"):
                    wanted.add((source.package, posixpath.normpath(posixpath.join(posixpath.dirname(source.path), ref))))
    copied = []
    for package, path in sorted(wanted):
        target = os.path.join(html_dir, VENDOR, package, *path.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            shutil.copyfile(os.path.join(modules, package, *path.split("/")), target)
        except OSError as error:
            raise _not_installed(package, path, error) from error
        copied.append(target)
    return copied


def _not_installed(package, path, error):
    """The one-line error for a file that npm's install of ``package`` does not have."""
    return UserError(
        f"{package}/{path} could not be read from npm's install of tracker/kvtracker/npm/package-lock.json "
        f"({error.strerror or error}): correct that path in tracker/kvtracker/vendor_html.py's CDN_FILES, "
        "or pin the package version that has it in tracker/kvtracker/npm/package.json"
    )


def _rewritten(page, html_dir):
    """``page``'s text with its CDN tags pointing at the copies, keeping integrity where the
    digest matches; reads, never writes."""
    here = os.path.dirname(page)

    def local(url):
        source = CDN_FILES[url]
        return os.path.relpath(os.path.join(html_dir, VENDOR, source.package, source.path), here).replace(os.sep, "/")

    def tag(match):
        text = match.group(0)
        urls = [m.group(3) for m in URL_ATTRIBUTE.finditer(text) if is_external(m.group(3))]
        if not urls:
            return text
        url = urls[0]
        text = DROPPED_ATTRIBUTES.sub("", text)  # same-origin now: no CORS request, no referrer to a CDN
        integrity = INTEGRITY.search(text)
        if integrity and not _matches(integrity.group(2), os.path.join(here, local(url))):
            if CDN_FILES[url].substitute is None:
                raise UserError(
                    f"the npm copy of {url} does not have the digest asv's tag in {page} names ({integrity.group(2)}): "
                    "tracker/kvtracker/npm/package-lock.json and asv disagree; pin the package version asv names"
                )
            text = INTEGRITY.sub("", text)
        return text.replace(url, local(url))

    text = _read(page)
    if page.endswith(".html"):
        text = LOADING_TAG.sub(tag, text)
    return CSS_URL.sub(lambda m: m.group(0).replace(m.group(2), local(m.group(2))) if is_external(m.group(2)) else m.group(0), text)


def _matches(integrity, path):
    """True when one of the ``ALGORITHM-BASE64`` digests of an integrity attribute is ``path``'s."""
    with open(path, "rb") as f:
        data = f.read()
    for item in integrity.split():
        algorithm, _, expected = item.partition("-")
        if algorithm in ("sha256", "sha384", "sha512"):
            if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected.split("?")[0]:
                return True
    return False
