"""``kvcache-tracker vendor-html`` on the html files asv itself ships (asv's ``www`` folder).

npm is real: it installs the locked packages (from its cache when it has them). Rendering
the result in a browser, offline, is tests/test_dashboard_browser.py's part.
"""

import base64
import hashlib
import re
import shutil
from pathlib import Path

import asv
import pytest

from kvtracker import cli, vendor_html

ASV_WWW = Path(asv.__file__).parent / "www"
JQUERY = "https://code.jquery.com/jquery-3.3.1.min.js"

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="no npm: install Node.js (apt-get install npm)")


@pytest.fixture
def html_dir(tmp_path):
    """A copy of asv's www folder: the pages ``asv publish`` writes, CDN tags and all."""
    return Path(shutil.copytree(ASV_WWW, tmp_path / "html"))


def vendor(html_dir, capsys, *extra):
    code = cli.main(["vendor-html", str(html_dir), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_asv_index_loads_from_cdns_before(html_dir):
    loads = vendor_html.external_loads(str(html_dir))
    assert {url for _, url in loads} == set(vendor_html.CDN_FILES)  # every URL known, none left out
    assert {Path(path).name for path, _ in loads} == {"index.html"}


def test_vendoring_leaves_no_cdn_and_keeps_integrity_where_the_bytes_match(html_dir, capsys):
    code, out, err = vendor(html_dir, capsys)
    assert code == 0, err
    assert vendor_html.external_loads(str(html_dir)) == []
    kept = 0
    for tag, src in re.findall(r'(<(?:script|link)\b[^>]*?\s(?:src|href)="([^"]+)"[^>]*>)', (html_dir / "index.html").read_text()):
        assert not src.startswith(("http:", "https:", "//")), tag
        integrity = re.search(r'integrity="([^"]+)"', tag)
        if integrity:  # the browser checks it: it must be the local file's digest
            algorithm, digest = integrity.group(1).split("-", 1)
            data = (html_dir / src).read_bytes()
            assert base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == digest, tag
            kept += 1
        assert "crossorigin" not in tag and "referrerpolicy" not in tag
    exact = [s for s in vendor_html.CDN_FILES.values() if s.substitute is None]
    assert kept == len(exact) == 5  # jquery, orderBars, md5, bootstrap's script and style
    assert (html_dir / "vendor/bootstrap/dist/fonts/glyphicons-halflings-regular.woff").exists()  # named by its CSS


def test_vendoring_again_changes_nothing(html_dir, capsys):
    assert vendor(html_dir, capsys)[0] == 0
    before = (html_dir / "index.html").read_text()
    code, out, _ = vendor(html_dir, capsys, "--npm", "no-such-npm")  # npm not even needed
    assert code == 0 and "0 file(s)" in out
    assert (html_dir / "index.html").read_text() == before


def test_an_unknown_url_fails_naming_the_file_and_the_url(html_dir, capsys):
    (html_dir / "regressions.html").write_text('<html><script src="https://cdn.example.org/new.js"></script></html>')
    (html_dir / "summarylist.css").write_text("@import url(//fonts.example.org/font.css);\n")
    code, _, err = vendor(html_dir, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{html_dir / 'regressions.html'} loads https://cdn.example.org/new.js" in err and "CDN_FILES" in err
    (html_dir / "regressions.html").unlink()
    code, _, err = vendor(html_dir, capsys)
    assert code == 2 and f"{html_dir / 'summarylist.css'} loads //fonts.example.org/font.css" in err
    assert "https://" in (html_dir / "index.html").read_text()  # nothing rewritten


def test_a_link_to_click_is_not_a_load(html_dir):
    text = (html_dir / "index.html").read_text()
    assert 'href="https://github.com/airspeed-velocity/asv/"' in text  # asv's footer link
    assert "github.com" not in {url.split("/")[2] for _, url in vendor_html.external_loads(str(html_dir))}


def test_a_digest_that_does_not_match_an_exact_copy_fails(html_dir, capsys):
    index = html_dir / "index.html"
    index.write_text(index.read_text().replace("sha256-FgpCb/KJQlLNfOu91ta32o/NMZxltwRo8QtmkMRdAu8=", "sha256-AAAA"))
    code, _, err = vendor(html_dir, capsys)
    assert code == 2 and f"the npm copy of {JQUERY} does not have the digest" in err and "sha256-AAAA" in err


def test_a_failing_later_page_leaves_every_page_as_it_was(html_dir, capsys):
    index = html_dir / "index.html"
    before = index.read_text()
    later = html_dir / "zz-later.html"  # rewritten after index.html: its check fails
    later.write_text(f'<html><script src="{JQUERY}" integrity="sha256-AAAA"></script></html>')
    code, _, err = vendor(html_dir, capsys)
    assert code == 2 and f"the npm copy of {JQUERY} does not have the digest" in err
    assert index.read_text() == before and JQUERY in later.read_text()
    assert not [p.name for p in html_dir.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


def test_pages_are_replaced_whole_and_keep_their_mode(html_dir, capsys):
    index = html_dir / "index.html"
    index.chmod(0o640)
    names = {p.name for p in html_dir.iterdir()}
    assert vendor(html_dir, capsys)[0] == 0
    assert {p.name for p in html_dir.iterdir()} == names | {vendor_html.VENDOR}  # no temporary file left
    assert index.stat().st_mode & 0o777 == 0o640


def test_a_file_missing_from_the_npm_install_is_one_line(html_dir, capsys, monkeypatch):
    monkeypatch.setitem(vendor_html.CDN_FILES, JQUERY, vendor_html.Source("jquery", "dist/no-such-file.js"))
    code, _, err = vendor(html_dir, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "jquery/dist/no-such-file.js could not be read from npm's install" in err and "CDN_FILES" in err
    assert "https://" in (html_dir / "index.html").read_text()  # nothing rewritten


def test_missing_npm_is_one_line(html_dir, capsys):
    code, _, err = vendor(html_dir, capsys, "--npm", "no-such-npm")
    assert code == 2 and err.startswith("kvcache-tracker vendor-html: no-such-npm not found: install Node.js")
    assert len(err.splitlines()) == 1


def test_offline_with_an_empty_npm_cache_is_one_line(html_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "empty-npm-cache"))
    monkeypatch.setenv("npm_config_offline", "true")
    code, _, err = vendor(html_dir, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "npm ci of tracker/kvtracker/npm/package-lock.json failed (code ENOTCACHED" in err and "offline" in err


def test_not_a_directory(tmp_path, capsys):
    code, _, err = vendor(tmp_path / "missing", capsys)
    assert code == 2 and "is not a directory" in err
