"""``kvtracker.atomic.write_text_atomically``: the old file or the new one, never a cut-off one."""

import os

import pytest

from kvtracker.atomic import write_text_atomically


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "verdicts.json"
    path.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomically(path, "new " * 100_000 + "\ud800")  # a lone surrogate: UTF-8 cannot encode it
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["verdicts.json"]


def test_the_file_is_replaced_not_rewritten_in_place_and_keeps_its_mode(tmp_path):
    path, reader = tmp_path / "index.html", tmp_path / "held-by-a-reader"
    path.write_text("old\n")
    path.chmod(0o640)
    os.link(path, reader)  # what a reader that opened the old file sees
    write_text_atomically(path, "new\n")
    assert path.read_text() == "new\n" and reader.read_text() == "old\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held-by-a-reader", "index.html"]


def test_a_new_file_gets_the_mode_open_gives(tmp_path):
    mask = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "new.json", "{}\n")
    finally:
        os.umask(mask)
    assert (tmp_path / "new.json").read_text() == "{}\n"
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
