"""Atomic file output: a file appears complete, with ordinary permissions, or not at all.

Everything the recipe writes (wavs, CSVs, metadata, reports) goes through :func:`atomic_path`, so a
killed job never leaves a truncated file that a rerun would trust.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

# The suffix of files being written: a run that finds one knows it was killed mid-write.
PARTIAL_SUFFIX = ".partial"


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``, else delete it.

    The temporary file is in the same folder (same file system), so ``os.replace`` is atomic. It
    gets the permissions a plain ``open`` would give (``mkstemp`` makes owner-only files).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, _default_mode())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextmanager
def atomic_text(path: str | Path) -> Iterator[IO[str]]:
    """``with atomic_text(p) as stream: stream.write(...)``: a text file written atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as stream:
        yield stream


def remove_partial_files(folder: str | Path) -> int:
    """Delete temporary files a killed run left under ``folder``; returns how many."""
    count = 0
    for leftover in Path(folder).rglob(f"*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)
        count += 1
    return count
