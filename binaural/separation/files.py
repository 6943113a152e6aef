"""The files of ``separate.py``: which recordings a ``--input`` names, and where their estimates may go.

An estimate never replaces an input: an ``--output_dir`` that is the input folder or lies inside
it is refused (its estimates ``x_s1.wav`` would overwrite a recording of that name, or be
separated themselves on the next run), and so is an estimate whose path is a file given as input.
A single file may be separated into its own folder (``--output_dir .``), but not over a file that
already lies there under an estimate's name: beside a recording, ``x_s1.wav`` may well be another
recording of the user's, and nothing tells it from an earlier estimate.
Paths are compared as the disk sees them (device and inode), so symbolic links, ``..``, hard
links and case-insensitive disks (``X_S1.WAV`` is ``x_s1.wav`` there) are seen through. All is
checked before any work, so a refusal writes nothing.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from binaural.io.audio import RECORDING_SUFFIXES
from binaural.errors import RecipeError


class SeparationError(RecipeError):
    """Bad input or setup (missing experiment, checkpoint, model); the message names the fix."""


class OutputFolderError(SeparationError):
    """An ``--output_dir`` whose estimates would replace or join the inputs."""


def recording_inputs(path: Path) -> list[Path]:
    """The recordings ``--input`` names: the file itself, or a folder's ``.wav``/``.flac`` files, sorted."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in RECORDING_SUFFIXES and p.is_file())
        if not files:
            raise OutputFolderError(f"{path}: no {'/'.join(RECORDING_SUFFIXES)} file in this folder")
        return files
    if not path.exists():
        raise OutputFolderError(f"{path}: no such file or folder")
    return [path]


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` exist and are one file or folder on disk (device and inode)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _existing_ancestors(path: Path) -> list[Path]:
    """``path`` and its parents that exist, nearest first (``path`` itself may not exist yet)."""
    path = Path(os.path.abspath(path))
    return [p for p in (path, *path.parents) if p.exists()]


def check_output_folder(input_path: Path, output_dir: Path) -> None:
    """Refuse an ``output_dir`` that is not a folder, or is the input folder ``input_path`` or inside it."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputFolderError(f"{output_dir}: not a folder; --output_dir names the folder the estimates go to")
    if input_path.is_dir() and any(same_file(folder, input_path) for folder in _existing_ancestors(output_dir)):
        resolved = input_path.resolve()
        raise OutputFolderError(
            f"--output_dir {output_dir} is the input folder {input_path} or lies inside it: the estimates "
            f"(NAME_s1.wav...) would replace recordings there or be separated as inputs; choose another "
            f"--output_dir, e.g. {resolved.parent / (resolved.name + '_separated')}"
        )


def check_outputs(
    output_paths: Callable[[Path, Path], list[Path]], inputs: Sequence[Path], output_dir: Path
) -> None:
    """Refuse, before any work, an estimate written over an input, or two inputs writing one file.

    ``output_paths(input, output_dir)`` lists where the estimates of ``input`` go.
    Names are compared case-blind between inputs (``a.wav`` and ``A.flac`` both give ``a_s1.wav``
    on a case-insensitive disk), and by inode with the inputs.
    """
    writers: dict[str, Path] = {}
    for path in inputs:
        beside = same_file(output_dir, Path(os.path.abspath(path)).parent)
        for target in output_paths(path, output_dir):
            victim = next((other for other in inputs if same_file(target, other)), None)
            if victim is not None:  # the user's file would lose its bytes
                raise OutputFolderError(
                    f"the estimate {target} of {path} would be written over the input {victim}; choose an "
                    "--output_dir that holds no input"
                )
            if beside and target.exists():
                raise OutputFolderError(
                    f"{target} already exists beside the input {path} and may be a recording of yours; "
                    "separate into another --output_dir, or move that file away"
                )
            other = writers.setdefault(str(target).casefold(), path)
            if other != path:
                raise OutputFolderError(
                    f"{other} and {path} would both be written to {target}; rename one of them, or separate "
                    "them into different --output_dir folders"
                )
