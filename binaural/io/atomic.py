"""Atomic file output: a file appears complete, with ordinary permissions, or not at all.

Everything the recipe writes (wavs, CSVs, metadata, reports) goes through :func:`atomic_path`, so a
killed job never leaves a truncated file that a rerun would trust; and a tree or download target
has one writer at a time (:func:`exclusive`).
"""
from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import filelock

from binaural.errors import RecipeError

logger = logging.getLogger(__name__)

# The suffix of files being written: a run that finds one knows it was killed mid-write.
PARTIAL_SUFFIX = ".partial"


class WriteError(RecipeError):
    """A file that cannot be written (full or read-only disk, permissions, a path outside its folder)."""


def write_error(path: Path, error: OSError) -> WriteError:
    """The one-line error for an OS failure writing ``path``: the file, the reason, the fix."""
    if error.errno == errno.ENOSPC:
        reason = "the disk is full; free some space there, or write to another folder"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = f"no permission to write there ({error.strerror}); choose a folder you can write to"
    else:
        reason = f"{error.strerror or error}; check the folder and the disk"
    return WriteError(f"{path}: cannot be written: {reason}")


def make_folder(path: str | Path, option: str) -> Path:
    """Create the output folder ``path`` (and its parents) that the user named with ``option``.

    A file in the way, a full or read-only disk are a :class:`WriteError` naming the option and the
    fix, not a bare ``[Errno 17] File exists``.
    """
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise WriteError(
            f"{option} {path}: {blocker} is a file, not a folder; name a folder (it is created if needed), "
            "or move the file away"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(path, error) from error
    return path


def inside(root: str | Path, path: str | Path) -> Path:
    """``path`` if it resolves inside the folder ``root`` (symbolic links and ``..`` followed), else an error.

    The second line of defence behind the checks of names read from metadata: nothing is ever
    written outside the folder the user named.
    """
    root, path = Path(root).resolve(), Path(path)
    if not path.resolve().is_relative_to(root):
        raise WriteError(f"{path}: outside the output folder {root}; refusing to write it (a crafted file name?)")
    return path


def _create_partial(path: Path) -> tuple[int, Path]:
    """Create a new, empty temporary file beside ``path``; returns its descriptor and path.

    Created with mode 0o666 less the umask, the permissions a plain ``open`` gives (``mkstemp``
    makes owner-only files), so no ``chmod`` is needed after the rename.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for attempt in range(100):
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileNotFoundError:
            if attempt:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)  # first file of a folder: rare, so not checked every time
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: could not create a temporary file for {path.name}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``, else delete it.

    The temporary file is in the same folder (same file system), so ``os.replace`` is atomic.
    """
    path = Path(path)
    try:
        handle, temporary = _create_partial(path)
    except OSError as error:
        raise write_error(path, error) from error
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:  # the caller's writes, or the rename
        raise write_error(path, error) from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path``: the whole file appears at once, or nothing does.

    No ``fsync``: a killed process never leaves a partial file, but the data reaches the disk when
    the system writes it back, which lets parallel writers overlap with computing (soundfile's
    ``close`` syncs every file it writes, which serialised the generator's workers on the disk).
    """
    path = Path(path)
    try:
        handle, temporary = _create_partial(path)
    except OSError as error:
        raise write_error(path, error) from error
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(path, error) from error
        raise


@contextmanager
def atomic_text(path: str | Path) -> Iterator[IO[str]]:
    """``with atomic_text(p) as stream: stream.write(...)``: a text file written atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as stream:
        yield stream


class BusyError(RecipeError):
    """A folder another run is writing (it holds the folder's lock)."""


def owner_path(lock_path: str | Path) -> Path:
    """``<lock>.owner``: who holds a lock taken with ``wait=False`` (pid, host, start, command)."""
    return Path(f"{lock_path}.owner")


def _holder(lock_path: Path) -> str:
    """The process that holds ``lock_path``, as its :func:`owner_path` file says."""
    try:
        return owner_path(lock_path).read_text(encoding="utf-8").strip() or f"it holds {lock_path}"
    except OSError:
        return f"it holds {lock_path}"  # it is between taking the lock and writing who it is


@contextmanager
def exclusive(lock_path: str | Path, what: str, wait: bool = True) -> Iterator[None]:
    """Hold the exclusive lock ``lock_path`` while the block runs: one writer of ``what`` at a time.

    With ``wait`` (a data tree: the second run finds the work done, or finishes it), a second
    process waits for the first, saying once, naming ``what``, what it waits for. Without it (an
    experiment folder, whose second writer would train over the first), the second one stops with
    a :class:`BusyError` naming ``what`` and the running process, which the holder records in
    :func:`owner_path` (removed on release). The lock is the kernel's (``flock``, through the
    ``filelock`` package), so it dies with its holder, even on SIGKILL: a lock file left behind
    means nothing. Not re-entrant across separate calls in one process: take it once per writer.
    """
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if not wait:
            raise BusyError(
                f"{what} is being written by another run ({_holder(Path(lock_path))}); wait for it to finish, "
                "or choose another folder"
            ) from None
        logger.warning("%s is being written by another run (it holds %s); waiting for it to finish", what, lock_path)
        lock.acquire()
    try:
        if not wait:
            with atomic_text(owner_path(lock_path)) as stream:
                stream.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        yield
    finally:
        if not wait:
            owner_path(lock_path).unlink(missing_ok=True)
        lock.release()


def remove_partial_files(folder: str | Path) -> int:
    """Delete temporary files a killed run left under ``folder``; returns how many.

    Only for a folder whose writers hold its lock (:func:`exclusive`): a live writer's temporary
    files look the same.
    """
    count = 0
    for leftover in Path(folder).rglob(f"*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)
        count += 1
    return count
