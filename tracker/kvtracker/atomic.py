"""Replacing a file whole: a reader, or a crash, sees the old contents or the new, never a cut-off file."""

import os
import shutil


def write_text_atomically(path, text):
    """Replace ``path`` by ``text`` (UTF-8) through a temporary file beside it.

    The temporary file is written, flushed and fsynced, then ``os.replace``\\ d onto ``path``
    (same folder, so same file system: the rename is atomic). If anything fails before the
    rename, ``path`` is as it was and the temporary file is removed. An existing ``path``
    keeps its mode; a new one gets the mode ``open`` would give it (0o666 less the umask).
    """
    folder, name = os.path.split(os.path.abspath(path))
    temporary, fd = _create_beside(folder, name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _create_beside(folder, name):
    """``(path, fd)`` of a new, empty ``.NAME.RANDOM.tmp`` in ``folder``, made as ``open`` makes files."""
    while True:
        temporary = os.path.join(folder, f".{name}.{os.urandom(4).hex()}.tmp")
        try:
            return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
