"""Checkpoints that are complete or absent, and the one place that picks the checkpoint to use.

SpeechBrain 1.1.2's ``Checkpointer`` writes ``CKPT.yaml`` first and the ``.ckpt`` files after it,
and it counts a folder as a checkpoint as soon as ``CKPT.yaml`` exists: a job killed (or a disk
filling up) during a save leaves a half-written checkpoint that resume, ``--test_only`` and
``separate.py`` then pick and crash on. :class:`IntactCheckpointer` closes both ends:

* **saving**: every file of a checkpoint is written into a hidden staging folder
  (``.CKPT+<date>.saving``, which no SpeechBrain version lists), which is renamed into place once
  every file is there; a rename within one folder is atomic, so a checkpoint is complete or
  absent. Leftover staging folders of a killed save are removed by the next save.
* **loading**: before a checkpoint is loaded, every file it must provide is checked (a file of
  ``torch.save`` is a zip archive: every member's CRC is verified, nothing is unpickled; the
  epoch counter and the Brain's state are YAML text). A damaged checkpoint (a truncated or
  missing file, an unreadable ``CKPT.yaml``; e.g. a checkpoint SpeechBrain's own ``Checkpointer``
  left half-written, or a copy cut short) is skipped with a warning that names it, and the next
  one in the order asked for is used: the newest intact one when resuming, the next best when
  evaluating. With none intact, resuming starts from scratch with a warning; evaluating
  (:meth:`IntactCheckpointer.find_best_checkpoint` returns ``None``) is an error for the caller.

Which checkpoint is "best" has one home too: :data:`KNOWN_CHECKPOINT_KEYS` (train.py's
``valid_snr``, higher is better; the published recipe's ``snr``, a *negative* SNR, lower is
better) and :meth:`IntactCheckpointer.find_best_checkpoint`, used by ``train.py --test_only``
and ``separate.py`` alike, so both evaluate a published SpeechBrain output folder as it is.

Loading goes through SpeechBrain's load hooks, which call ``torch.load`` with torch's default
``weights_only=True`` (torch >= 2.6): a crafted ``.ckpt`` cannot run code when it is read; it
fails with an unpickling error, reported as a :class:`CheckpointError` naming the file.

The hparams files declare it in place of SpeechBrain's class::

    checkpointer: !new:checkpoints.IntactCheckpointer
        checkpoints_dir: !ref <save_folder>
        recoverables: ...
"""
from __future__ import annotations

import errno
import logging
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml
from speechbrain.utils.checkpoints import CKPT_PREFIX, METAFNAME, PARAMFILE_EXT, Checkpoint, Checkpointer
from speechbrain.utils.distributed import ddp_barrier, if_main_process
from speechbrain.utils.logger import get_logger

from binaural.errors import RecipeError

__all__ = [
    "KNOWN_CHECKPOINT_KEYS",
    "VALID_SNR_KEY",
    "CheckpointError",
    "IntactCheckpointer",
    "checkpoint_damage",
    "file_damage",
    "one_line",
]

logger = get_logger(__name__)

#: Checkpoint meta keys, in order of preference, and which way is better: train.py keeps the best
#: validation SNR (``valid_snr``, dB, higher is better); the published SpeechBrain recipe saved
#: the validation loss, a negative SNR (``snr``, lower is better; ``si-snr`` in its other recipes).
VALID_SNR_KEY = "valid_snr"
KNOWN_CHECKPOINT_KEYS: tuple[tuple[str, str], ...] = ((VALID_SNR_KEY, "max"), ("snr", "min"), ("si-snr", "min"))
#: Suffix of the hidden folder a checkpoint is written into before it is renamed into place.
STAGING_SUFFIX = ".saving"
#: Suffix of a checkpoint being replaced by a new one of the same (custom) name.
REPLACED_SUFFIX = ".replaced"
#: What torch.save's C++ writer says when the file system refuses its bytes (a full disk; the text
#: depends on where the write fails: the zip writer, or the C++ stream when it is flushed).
TORCH_WRITE_FAILURES = ("inline_container", "PytorchStreamWriter", "file write failed", "iostream error")
#: Keys SpeechBrain needs in ``CKPT.yaml`` to order and load a checkpoint.
REQUIRED_META = ("unixtime", "end-of-epoch")
#: How many characters of a library's error message a one-line error keeps.
MAX_REASON_CHARS = 300


class CheckpointError(RecipeError):
    """A checkpoint that cannot be used; the message names its folder (or file) and the fix."""


def one_line(error: BaseException | str, limit: int = MAX_REASON_CHARS) -> str:
    """``error``'s message on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ================================================================================================ checks
def file_damage(path: Path) -> str | None:
    """Why the savefile ``path`` cannot be loaded, or ``None`` when it reads back whole.

    ``torch.save`` writes a zip archive whose members carry CRC-32 checksums: they are verified
    (nothing is unpickled). SpeechBrain's other savefiles (epoch counter, Brain state) are YAML
    text and must parse. Anything else is tried with ``torch.load(weights_only=True)`` (the
    legacy, pre-zip format of ``torch.save``).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            return "is empty"
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad_member = archive.testzip()
            return None if bad_member is None else f"is corrupt (member {bad_member} fails its CRC check)"
        with open(path, "rb") as handle:
            data = handle.read()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as error:
        return f"cannot be read ({one_line(error)})"
    if data.startswith(b"PK\x03\x04"):  # a zip archive's first header, but no directory at its end
        return f"is truncated ({size} bytes: the end of the zip archive torch.save writes is missing)"
    try:
        value = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return _legacy_torch_damage(path)
    return "holds no value" if value is None else None


def _legacy_torch_damage(path: Path) -> str | None:
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever torch raises, the file is unusable
        return f"cannot be read ({type(error).__name__}: {one_line(error, 120)})"
    return None


def checkpoint_damage(checkpoint: Checkpoint, required: Iterable[str], optional: Iterable[str] = ()) -> str | None:
    """Why ``checkpoint`` cannot be loaded, or ``None`` when it is intact.

    Arguments
    ---------
    checkpoint : Checkpoint
        A SpeechBrain checkpoint (folder, meta, savefiles).
    required : iterable of str
        Recoverable names whose ``<name>.ckpt`` must be there and whole.
    optional : iterable of str
        Names that may be absent but, when there, must be whole.
    """
    for name in required:
        if name not in checkpoint.paramfiles:
            return f"has no {name}{PARAMFILE_EXT}"
    for name in [*required, *optional]:
        path = checkpoint.paramfiles.get(name)
        if path is not None:
            reason = file_damage(Path(path))
            if reason is not None:
                return f"{Path(path).name} {reason}"
    return None


# ================================================================================================ checkpointer
class IntactCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer`` whose checkpoints are complete or absent (see the module).

    Same arguments and methods as ``speechbrain.utils.checkpoints.Checkpointer``; in addition:

    * ``save_checkpoint`` (and so ``save_and_keep_only``) writes into a staging folder renamed
      into place when complete;
    * ``list_checkpoints`` skips (with a warning) folders whose ``CKPT.yaml`` is unreadable;
    * ``find_checkpoint`` returns the first *intact* checkpoint in the order asked for, warning
      about each damaged one it skips (:attr:`damaged` keeps them, by folder);
    * ``recover_if_possible`` warns when it starts from scratch because none was intact;
    * ``load_checkpoint`` raises :class:`CheckpointError` (one line, naming the folder) when a
      checkpoint does not load into the recoverables (other sizes, a crafted file);
    * :meth:`find_best_checkpoint`: the checkpoint to evaluate or separate with.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: Checkpoint folders found damaged, and why (warned about once each).
        self.damaged: dict[Path, str] = {}

    # ------------------------------------------------------------------------------ saving
    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):  # noqa: B006 - SpeechBrain's signature
        """Save a checkpoint into a staging folder, then rename it into place (main process).

        SpeechBrain writes the files (its save hooks, on every process that saves); this class
        only changes where: :meth:`_new_checkpoint_dirpath` and :meth:`_custom_checkpoint_dirpath`
        return the staging folder of the final one.
        """
        if if_main_process():
            self._remove_leftovers()
        try:
            staged = super().save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=logging.DEBUG)
        except (OSError, RuntimeError) as error:
            if isinstance(error, RuntimeError) and not any(mark in str(error) for mark in TORCH_WRITE_FAILURES):
                raise  # not a write failure: a bug, with its traceback
            if if_main_process():
                self._remove_leftovers()  # the staging folder of this save: it never became a checkpoint
            raise self._save_error(error) from error
        ddp_barrier()  # every process has written its files into the staging folder
        final = None
        if staged is not None:  # the main process
            final = self._publish(Path(staged.path))
            kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
            logger.log(verbosity, f"Saved an {kind} checkpoint in {final}")
        ddp_barrier()  # nobody looks for it before it is in place
        if staged is None:
            return None
        return Checkpoint(final, staged.meta, {key: final / Path(path).name for key, path in staged.paramfiles.items()})

    def _save_error(self, error: OSError | RuntimeError) -> CheckpointError:
        """One line for a save that failed (a full disk, above all): the folder, why, what is kept, the fix."""
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            reason = "the disk is full"
        elif isinstance(error, OSError):
            reason = error.strerror or one_line(error, 160)
        else:  # torch.save's writer says only "unexpected pos" when the disk refuses its bytes
            reason = f"torch.save could not write its file: is the disk full? ({one_line(error, 160)})"
        return CheckpointError(
            f"{self.checkpoints_dir}: the checkpoint could not be saved ({reason}); the checkpoints already there "
            "are complete and kept. Free space there and rerun the same command: it resumes from the last one"
        )

    def _new_checkpoint_dirpath(self) -> Path:
        return _staging_path(super()._new_checkpoint_dirpath())

    def _custom_checkpoint_dirpath(self, name) -> Path:
        return _staging_path(super()._custom_checkpoint_dirpath(name))

    @staticmethod
    def _publish(staging: Path) -> Path:
        """Rename the complete ``staging`` folder to its checkpoint name; returns that path."""
        final = staging.with_name(staging.name[1 : -len(STAGING_SUFFIX)])
        if final.exists():  # a custom name saved again: the old one goes once the new one is whole
            replaced = final.with_name(f".{final.name}{REPLACED_SUFFIX}")
            os.rename(final, replaced)
            os.rename(staging, final)
            shutil.rmtree(replaced)
        else:
            os.rename(staging, final)
        return final

    def _remove_leftovers(self) -> None:
        """Delete the staging folders of saves that were killed (they never became checkpoints)."""
        if not self.checkpoints_dir.is_dir():
            return
        for suffix in (STAGING_SUFFIX, REPLACED_SUFFIX):
            for leftover in self.checkpoints_dir.glob(f".{CKPT_PREFIX}+*{suffix}"):
                logger.info(f"removing {leftover}: a checkpoint save that did not finish")
                shutil.rmtree(leftover, ignore_errors=True)

    # ------------------------------------------------------------------------------ finding
    def list_checkpoints(self) -> list[Checkpoint]:
        """The checkpoints whose ``CKPT.yaml`` reads as SpeechBrain's meta; the others are skipped."""
        checkpoints = []
        for folder in self._list_checkpoint_dirs():
            try:
                [checkpoint] = self._construct_checkpoint_objects([folder])
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
                self._report(Path(folder), f"{METAFNAME} cannot be read ({one_line(error, 120)})")
                continue
            if not isinstance(checkpoint.meta, dict) or any(key not in checkpoint.meta for key in REQUIRED_META):
                self._report(Path(folder), f"{METAFNAME} lacks {' and '.join(REQUIRED_META)}")
                continue
            checkpoints.append(checkpoint)
        return checkpoints

    def find_checkpoint(
        self,
        importance_key: Callable[[Checkpoint], float] | None = None,
        max_key: str | None = None,
        min_key: str | None = None,
        ckpt_predicate: Callable[[Checkpoint], bool] | None = None,
    ) -> Checkpoint | None:
        """The first intact checkpoint in SpeechBrain's order for these arguments (None: none).

        Each damaged checkpoint met before it is skipped with a warning naming it.
        """
        ranked = self.find_checkpoints(
            importance_key=importance_key, max_key=max_key, min_key=min_key, ckpt_predicate=ckpt_predicate,
            max_num_checkpoints=None,
        )
        required, optional = self._files_to_load()
        for checkpoint in ranked:
            reason = checkpoint_damage(checkpoint, required, optional)
            if reason is None:
                self.damaged.pop(Path(checkpoint.path), None)
                return checkpoint
            self._report(Path(checkpoint.path), reason)
        return None

    def find_best_checkpoint(self, min_key: str | None = None, max_key: str | None = None) -> tuple[Checkpoint | None, str]:
        """The checkpoint to evaluate or separate with, and a phrase saying why it was chosen.

        With ``min_key`` / ``max_key``: the best intact checkpoint by that meta key. Otherwise
        by the first of :data:`KNOWN_CHECKPOINT_KEYS` that some checkpoint's meta holds (a
        train.py experiment: ``valid_snr``; a published SpeechBrain one: ``snr``), else the
        most recent intact one. ``(None, reason)`` when no intact checkpoint qualifies.
        """
        if min_key is None and max_key is None:
            metas = [checkpoint.meta for checkpoint in self.list_checkpoints()]
            for key, direction in KNOWN_CHECKPOINT_KEYS:
                if any(key in meta for meta in metas):
                    min_key, max_key = (key, None) if direction == "min" else (None, key)
                    break
        key = min_key or max_key
        checkpoint = self.find_checkpoint(min_key=min_key, max_key=max_key)
        reason = f"best by {'min' if min_key else 'max'} {key}" if key else "latest"
        return checkpoint, reason

    def damage_summary(self) -> str:
        """``"CKPT+a: masknetL.ckpt is truncated ...; CKPT+b: ..."``: the damaged checkpoints met so far."""
        return "; ".join(f"{path.name}: {reason}" for path, reason in self.damaged.items())

    def unusable_message(self) -> str:
        """One line for a caller that needs a checkpoint and found none intact (the folder and why)."""
        if self.damaged:
            return (
                f"no intact checkpoint in {self.checkpoints_dir} ({self.damage_summary()}); delete the damaged "
                "CKPT+... folder(s), then train again or restore them from a copy"
            )
        return f"no checkpoint (CKPT+... folder) in {self.checkpoints_dir}"

    # ------------------------------------------------------------------------------ loading
    def recover_if_possible(self, importance_key=None, max_key=None, min_key=None, ckpt_predicate=None):
        """Load the first intact checkpoint (SpeechBrain's order); warn when damage means starting over."""
        checkpoint = self.find_checkpoint(importance_key, max_key, min_key, ckpt_predicate)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        elif self.damaged:
            logger.warning(f"{self.unusable_message()}: starting from scratch")
        else:
            logger.info(f"no checkpoint in {self.checkpoints_dir} yet: starting from scratch")
        return checkpoint

    def load_checkpoint(self, checkpoint: Checkpoint) -> None:
        """SpeechBrain's loading, with its failures as one :class:`CheckpointError` naming the folder."""
        try:
            super().load_checkpoint(checkpoint)
        except pickle.UnpicklingError as error:
            raise CheckpointError(
                f"{checkpoint.path}: a savefile holds more than weights and was refused unread "
                f"({one_line(error, 160)}); only load checkpoints you trust, from their original source"
            ) from error
        except (RuntimeError, KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, yaml.YAMLError) as error:
            raise CheckpointError(
                f"{checkpoint.path}: does not fit the model of these hparams ({type(error).__name__}: "
                f"{one_line(error)}); is it a checkpoint of this model, with the same sizes and talker count?"
            ) from error

    # ------------------------------------------------------------------------------ helpers
    def _files_to_load(self) -> tuple[list[str], list[str]]:
        """Recoverables whose savefile must be there, and those that may be absent (as SpeechBrain loads)."""
        required, optional = [], []
        for name in self.recoverables:
            may_lack = self.allow_partial_load or self.optional_recoverables.get(name, False) or "dataloader" in name
            (optional if may_lack else required).append(name)
        return required, optional

    def _report(self, folder: Path, reason: str) -> None:
        if folder not in self.damaged:
            logger.warning(f"skipping the damaged checkpoint {folder}: {reason}")
        self.damaged[folder] = reason


def _staging_path(final: Path) -> Path:
    """``save/CKPT+x`` -> ``save/.CKPT+x.saving``: hidden, and not a name SpeechBrain lists."""
    final = Path(final)
    return final.with_name(f".{final.name}{STAGING_SUFFIX}")
