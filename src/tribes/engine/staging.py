"""Where a batch stages its inputs, and clearing them: the spool files text sources are
parsed into, the copies a text file may need, and text handed to the engines from memory.

The same on every backend; what is staged holds raw values, so nothing stays once the
batch has ended (or, after a crash, once the workspace is next opened for writing).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path


def spool_dir(workspace: Path) -> Path:
    return workspace / ".tmp" / "spool"


def clear_spool(workspace: Path) -> None:
    """Delete the spool files and input copies of batches (the caller's, once it ended)."""
    _empty(spool_dir(workspace), "spool-*")


def _empty(folder: Path, pattern: str) -> None:
    for f in folder.glob(pattern) if folder.is_dir() else []:
        if f.is_dir():  # Spark writes a directory of parts
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)


STAGED_DIR = ".tmp/staged"  # staged_text's files where the system has no memory files


def staging_dirs(workspace: Path) -> list[Path]:
    """Where inputs are staged while a batch runs (raw values: nothing stays there); API
    batches of earlier versions were staged in ``.tmp/api``."""
    return [spool_dir(workspace), workspace / STAGED_DIR, workspace / ".tmp" / "api"]


def clear_staging(workspace: Path) -> None:
    """Delete what batches staged (spool files, copies of inputs, API batches, streamed
    batches being landed: raw values) once they finished or crashed. Call it only when no
    other batch can be running (holding the database open)."""
    for d in staging_dirs(workspace):
        _empty(d, "*")
    stream = workspace / ".tmp" / "stream"
    for f in stream.glob("*.mapped.jsonl") if stream.is_dir() else []:
        f.unlink(missing_ok=True)  # of versions that landed through a file


@contextlib.contextmanager
def staged_text(chunks: Iterable[str], fallback: Path) -> Iterator[Path]:
    """Text as a file the engines can read, for the duration of the block.

    Where the system allows it (Linux), the file lives in memory only: it never reaches
    a disk and is gone when the process ends, even when killed. Elsewhere it is a 0600
    file in ``fallback`` (a staging folder :func:`clear_staging` empties), deleted at the
    end of the block.
    """
    memfd = getattr(os, "memfd_create", None)
    fd = None
    if memfd is not None:
        with contextlib.suppress(OSError):
            fd = memfd("tribes-staged", 0)
    if fd is not None:
        try:
            with os.fdopen(os.dup(fd), "w", encoding="utf-8") as fh:
                fh.writelines(chunks)
            yield Path(f"/proc/{os.getpid()}/fd/{fd}")
        finally:
            os.close(fd)
        return
    fallback.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = fallback / f"staged-{secrets.token_hex(6)}.txt"
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as fh:
            fh.writelines(chunks)
        yield path
    finally:
        path.unlink(missing_ok=True)
