"""The experiment folder (``output_folder``): one run writes into it at a time, and errors go to its log.

Two ``train.py`` runs into one folder would delete each other's checkpoints and write every epoch
twice into ``train_log.txt``; :func:`experiment_lock` makes the second one stop at once, naming
the folder and the running process. Under DDP one launch is one writer: only its rank 0 takes the
lock, before the process group forms, so no rank of a refused launch gets past the rendezvous.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from binaural.io.atomic import WriteError, exclusive, owner_path

#: The lock of an experiment folder, held by the run that writes into it.
LOCK_NAME = ".train.lock"


def launch_rank() -> int:
    """This process's rank in its launch (``RANK`` of torchrun / torch.distributed.launch; 0 alone)."""
    return int(os.environ.get("RANK", "0") or 0)


def check_output_folder(folder: str | Path) -> None:
    """Refuse an ``output_folder`` that is a file, or lies under one (before anything is built in it)."""
    folder = Path(folder)
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                below = "" if path == folder else f" ({path} is a file)"
                raise WriteError(f"--output_folder {folder}: not a folder{below}; give a folder (it is created if needed)")
            return


@contextmanager
def experiment_lock(output_folder: str | Path) -> Iterator[None]:
    """Hold ``output_folder``'s lock (rank 0 of a launch; the other ranks take none) while the block runs.

    Creates the folder; one the block leaves holding nothing else (a run refused before its
    first file) is removed again.

    Raises
    ------
    binaural.io.atomic.BusyError
        Another run holds the folder (the message names it and the process).
    binaural.io.atomic.WriteError
        ``output_folder`` is a file, or cannot be created.
    """
    folder = Path(output_folder)
    if launch_rank() != 0:
        yield
        return
    check_output_folder(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"--output_folder {folder}: cannot be created ({error.strerror or error}); give a folder "
                         "you can write to") from error
    lock = folder / LOCK_NAME
    try:
        with exclusive(lock, f"the experiment folder {folder}", wait=False):
            yield
    finally:
        if created and {p.name for p in folder.iterdir()} <= {LOCK_NAME, owner_path(lock).name}:
            lock.unlink(missing_ok=True)
            folder.rmdir()


def log_to_files(message: str, level: int = logging.ERROR, name: str = "train") -> None:
    """Write ``message`` into the log files (the experiment's ``log.txt``), not to the console.

    The command prints the error once on stderr itself; the log keeps it beside the run's history.
    """
    logger = logging.getLogger(name)
    record = logger.makeRecord(name, level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


#: SpeechBrain's messages that are false in this recipe, by logger: figures are drawn with matplotlib
#: (binaural.evaluation.report), never with the torchvision saver SpeechBrain looks for on import.
FALSE_MESSAGES: dict[str, frozenset[str]] = {
    "speechbrain.utils.train_logger": frozenset({"torchvision is not available - cannot save figures"}),
}


class _DropMessages(logging.Filter):
    def __init__(self, messages: frozenset[str]) -> None:
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.messages


def silence_false_messages() -> None:
    """Drop :data:`FALSE_MESSAGES`; call before SpeechBrain is imported (it warns while importing)."""
    for name, messages in FALSE_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(messages))
