"""Writing outputs so that nothing is ever half-written: every file or directory is produced under a temporary name
beside its target and renamed into place only when complete (a rename within one directory is atomic on POSIX)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from typing import Iterator

CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_directory(target, replace: bool = False) -> Iterator[str]:
    """Yield a temporary directory beside `target` that becomes `target` when the block completes (replacing an
    existing one only with `replace`); on any error it is removed, so `target` is never left half-written."""
    target = os.path.abspath(os.fspath(target))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        yield tmp
        if os.path.exists(target):
            if not replace:
                raise FileExistsError(f"{target} appeared while it was being written")
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target) -> Iterator[str]:
    """Yield a temporary file path beside `target` (same suffix, so writers that pick a format by extension keep
    working); it replaces `target` when the block completes and is removed on any error."""
    target = os.path.abspath(os.fspath(target))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    stem, suffix = os.path.splitext(os.path.basename(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.tmp-", suffix=suffix, dir=parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_of(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
