"""The Binaural WSJ0-mix data set on disk: what it is made with, its record, its lock, making it exist.

Every published number rests on the files of a data folder being exactly the dataset its options
describe. So every tree the generator writes carries a *dataset record*
(:data:`binaural.data.layout.RECORD_NAME`, JSON, written atomically before the first wav and updated as parts
finish)::

    {"format": 1, "dataset": "Binaural WSJ0-2mix",
     "identity": {"n_spks": 2, "variant": "noise",
                  "binaural_noise": "none", "metadata": "own", "seed": 5, "hrtf": "spherical", ...},
     "sources": {"metadata_dir": "...", "hrtf": "...", "noise_root": "..."},
     "metadata_sha256": {"tt": "<digest of the split's metadata files>", ...},
     "parts": {"wav8k/min/tt": {"status": "complete", "mixtures": 3000,
                                "files": {"s1": 3000, "s2": 3000, "mix": 3000}}, ...}}

``identity`` holds every option that changes the bits (the variant's own options included); a run
whose identity differs in one of them stops before writing anything, naming the folder, the
option, the stored and the requested value (:class:`DatasetMismatchError`). A part is ``in
progress`` from the moment the record claims it until every one of its files is written, then
``complete``; only complete parts are used (:func:`ensure_dataset`). A tree without a record (the
public dataset, made by the public scripts) is accepted when its files are exactly the metadata's,
with a warning; otherwise it is refused, never trained on.

One writer at a time: the generator holds an exclusive lock on the tree (:func:`binaural.io.atomic.exclusive`),
so a second run waits for the first and then finds its work done.
"""
from __future__ import annotations

import json
import logging
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from binaural.io.atomic import atomic_text
from binaural.data.variants import CleanVariant, DataVariant
from binaural.errors import RecipeError
from binaural.data.layout import FREQS, MODES, RECORD_NAME, SPLITS, check_subset, part_name, split_folder

logger = logging.getLogger(__name__)

RECORD_FORMAT = 1
IN_PROGRESS = "in progress"
COMPLETE = "complete"


class DatasetError(RecipeError):
    """A data folder that is incomplete, unreadable, or not the dataset asked for."""


class DatasetMismatchError(DatasetError):
    """A data folder made with other options than the ones asked for."""


def mismatch(
    folder: Path, option: str, stored: Any, requested: Any, what: str = "a dataset made"
) -> DatasetMismatchError:
    """The one-line refusal: which folder, which option, the stored and the requested value, the fix."""
    return DatasetMismatchError(
        f"{folder} holds {what} with {option}={stored!r}, but this run asks for {option}={requested!r}; "
        f"nothing was written. Generate into another folder (--output_dir, or --data_folder for train.py), "
        f"or delete {folder} to rebuild it"
    )


# ==================================================================================================
# Options
# ==================================================================================================


@dataclass(frozen=True)
class GenerationOptions:
    """Everything that says which dataset to build and how: the generator's command line as one object.

    A recipe YAML declares it (``dataset_options: !new:binaural.data.record.GenerationOptions``) from its keys;
    ``create_binaural_wsj0mix.py`` builds it from its flags.

    Arguments
    ---------
    variant : DataVariant
        Which data set (:mod:`binaural.data.variants`), with its own options.
    n_spks : int
        Talkers per mixture (2 or 3).
    freqs, modes, splits : sequence of str
        Rates (``8k``, ``16k``), length modes (``min``, ``max``) and splits (``tr``, ``cv``, ``tt``)
        to build.
    metadata_dir : path, optional
        Official mode: a local copy of the public metadata (None: downloaded). Own mode: where the
        drawn metadata goes (None: ``<output_root>/metadata``).
    hrtf_dir : str or path, optional
        Official mode: the CIPIC WAV database (None: downloaded). Own mode: a CIPIC folder, a SOFA
        file or folder, or ``"spherical"`` (None: the spherical head).
    own_metadata : bool
        Draw new metadata instead of using the official one.
    n_mixtures : mapping or int or sequence
        Own mode: mixtures per split (``{"tr": 20000, ...}``, one int for all, or three values).
    seed : int
        Own mode: the seed of the draw.
    repo_dir : path, optional
        Where the public archive goes (default ``<output_root>/../Binaural-WSJ0Mix-main``); its
        parent receives the other downloads (DEMAND, CATT_RIRs) and caches.
    num_workers : int, optional
        Processes (None: every core).
    progress : bool
        Progress bars.
    """

    variant: DataVariant = field(default_factory=CleanVariant)
    n_spks: int = 2
    freqs: Sequence[str] = FREQS
    modes: Sequence[str] = MODES
    splits: Sequence[str] = SPLITS
    metadata_dir: str | Path | None = None
    hrtf_dir: str | Path | None = None
    own_metadata: bool = False
    n_mixtures: Mapping[str, int] | int | Sequence[int] = (20000, 5000, 3000)
    seed: int = 0
    repo_dir: str | Path | None = None
    num_workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.variant, DataVariant):
            raise RecipeError(
                f"variant must be a binaural.data.variants.DataVariant (e.g. !new:binaural.data.variants.CleanVariant), got {self.variant!r}"
            )
        self.variant.check_talkers(int(self.n_spks))
        normalised = {
            "n_spks": int(self.n_spks),
            "freqs": check_subset(self.freqs, FREQS, "freqs"),
            "modes": check_subset(self.modes, MODES, "modes"),
            "splits": check_subset(self.splits, SPLITS, "splits"),
            "n_mixtures": per_split(self.n_mixtures),
            "seed": _seed(self.seed),
            "own_metadata": bool(self.own_metadata),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    def parts(self) -> list[tuple[str, str, str]]:
        """Every ``(freq, mode, split)`` this run builds."""
        return [(f, m, s) for f in self.freqs for m in self.modes for s in self.splits]

    def hrtf_spec(self) -> str:
        """Own mode's HRTF set as given (``"spherical"`` by default)."""
        return str(self.hrtf_dir or "spherical")

    def identity(self) -> dict[str, Any]:
        """The options that change the bits of every file of the tree (the record compares them)."""
        identity = {
            "n_spks": self.n_spks,
            "variant": self.variant.name,
            **self.variant.options(),
            "metadata": "own" if self.own_metadata else "official",
        }
        if self.own_metadata:
            identity |= {"seed": self.seed, "hrtf": self.hrtf_spec()}
        return identity


def per_split(n_mixtures: Mapping[str, int] | int | Sequence[int]) -> dict[str, int]:
    """``{"tr": n, "cv": n, "tt": n}`` from a mapping, one int, or one or three values."""
    if isinstance(n_mixtures, Mapping):
        unknown = sorted(set(n_mixtures) - set(SPLITS))
        if unknown:
            raise RecipeError(f"n_mixtures: unknown split(s) {unknown}; use {list(SPLITS)}")
        return {split: _count(split, n) for split, n in n_mixtures.items()}
    values = (n_mixtures,) if isinstance(n_mixtures, (int, str)) else tuple(n_mixtures)
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise RecipeError(f"n_mixtures takes one value or three (tr cv tt), got {list(values)}")
    return {split: _count(split, n) for split, n in zip(SPLITS, values)}


def _count(split: str, value: Any) -> int:
    """``value`` as a number of mixtures of ``split``: a whole number of at least one."""
    try:
        count = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        count = None
    if count is None or count < 1:
        raise RecipeError(
            f"n_mixtures of split {split}: {value!r} is not a number of mixtures; give a whole number of at least "
            "1 per split (e.g. --n_mixtures 20000 5000 3000); nothing was drawn or written"
        )
    return count


def _seed(value: Any) -> int:
    """``value`` as the seed of a draw: a whole number >= 0 (numpy's generators refuse negative seeds)."""
    try:
        seed = operator.index(value) if not isinstance(value, bool) else -1
    except TypeError:
        seed = -1
    if seed < 0:
        raise RecipeError(
            f"seed {value!r}: the seed of the draw is a whole number >= 0 (e.g. --seed 0); nothing was drawn or written"
        )
    return seed


# ==================================================================================================
# The record
# ==================================================================================================


@dataclass
class DatasetRecord:
    """How a tree was made and how far it got (see the module docstring); JSON on disk."""

    identity: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    metadata_sha256: dict[str, str] = field(default_factory=dict)
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The dataset's name (the corpus's): None for Binaural WSJ0-mix, whose records predate it.
    title: str | None = None

    @classmethod
    def path(cls, root: str | Path) -> Path:
        return Path(root) / RECORD_NAME

    @classmethod
    def read(cls, root: str | Path) -> "DatasetRecord | None":
        """The record of the tree at ``root``, or None when it has none.

        Raises
        ------
        DatasetError
            The record is unreadable (it is written atomically, so only a hand edit breaks it).
        """
        path = cls.path(root)
        if not path.is_file():
            return None
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            if content.get("format") != RECORD_FORMAT:
                raise ValueError(f"format {content.get('format')!r}, expected {RECORD_FORMAT}")
            title = content.get("dataset")
            return cls(content["identity"], content["sources"], content["metadata_sha256"], content["parts"],
                       None if title == _wsj0_title(content["identity"]) else title)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise DatasetError(
                f"{path}: unreadable dataset record ({error}); restore it, or delete {Path(root)} and generate it again"
            ) from error

    def write(self, root: str | Path) -> None:
        """Write the record atomically (the tree never holds half a record)."""
        content = {"format": RECORD_FORMAT, "dataset": self.title or _wsj0_title(self.identity),
                   "identity": self.identity, "sources": self.sources,
                   "metadata_sha256": self.metadata_sha256, "parts": self.parts}
        with atomic_text(self.path(root)) as stream:
            json.dump(content, stream, indent=2, sort_keys=True)
            stream.write("\n")

    def check_identity(self, requested: Mapping[str, Any], root: Path) -> None:
        """Raise :class:`DatasetMismatchError` on the first option whose stored value differs."""
        for option in [*requested, *(key for key in self.identity if key not in requested)]:
            if self.identity.get(option) != requested.get(option):
                raise mismatch(root, option, self.identity.get(option), requested.get(option))

    def check_metadata(self, digests: Mapping[str, str], root: Path) -> None:
        """Raise when a split's metadata is not the one its files were made from."""
        for split, digest in sorted(digests.items()):
            stored = self.metadata_sha256.get(split)
            if stored is not None and stored != digest:
                raise mismatch(root, f"metadata of split {split} (sha256)", stored[:12], digest[:12])

    def check_sizes(self, options: GenerationOptions, root: Path) -> None:
        """Own mode: a split holds the number of mixtures asked for."""
        if not options.own_metadata:
            return
        for freq, mode, split in options.parts():
            stored = self.parts.get(part_name(freq, mode, split), {}).get("mixtures")
            requested = options.n_mixtures.get(split)
            if stored is not None and requested is not None and stored != requested:
                raise mismatch(root, f"n_mixtures[{split}]", stored, requested)

    def status(self, freq: str, mode: str, split: str) -> str | None:
        return self.parts.get(part_name(freq, mode, split), {}).get("status")


def _wsj0_title(identity: Mapping[str, Any]) -> str:
    return f"Binaural WSJ0-{identity.get('n_spks')}mix"


# ==================================================================================================
# Checking a tree
# ==================================================================================================


def count_files(folder: Path) -> int:
    """Finished wavs in ``folder`` (temporary files are hidden and end in ``.partial``)."""
    if not folder.is_dir():
        return 0
    return sum(1 for name in os.listdir(folder) if name.endswith(".wav") and not name.startswith("."))


def part_files(root: Path, freq: str, mode: str, split: str, variant: DataVariant, n_spks: int) -> dict[str, int]:
    """``{folder: finished wavs}`` of one part."""
    base = split_folder(root, freq, mode, split)
    return {name: count_files(base / name) for name in variant.folders(n_spks)}


def holds_wavs(root: Path) -> bool:
    """Whether any part folder of the tree holds a finished wav (of any variant or talker count)."""
    for freq in FREQS:
        for mode in MODES:
            for split in SPLITS:
                base = split_folder(root, freq, mode, split)
                if base.is_dir() and any(count_files(child) for child in base.iterdir() if child.is_dir()):
                    return True
    return False


def missing_parts(root: Path, options: GenerationOptions) -> list[str]:
    """The parts of ``options`` the tree at ``root`` does not hold complete (by its record).

    A part counts as held when the record says ``complete`` and every folder still has the
    recorded number of files.

    Raises
    ------
    DatasetMismatchError
        The record says the tree was made with other options.
    """
    root = Path(root)
    record = DatasetRecord.read(root)
    if record is None:
        return [part_name(*part) for part in options.parts()]
    record.check_identity(options.identity(), root)
    record.check_sizes(options, root)
    missing = []
    for freq, mode, split in options.parts():
        entry = record.parts.get(part_name(freq, mode, split), {})
        on_disk = part_files(root, freq, mode, split, options.variant, options.n_spks)
        if entry.get("status") != COMPLETE or entry.get("files") != on_disk:
            missing.append(part_name(freq, mode, split))
    return missing


def check_recordless(root: Path, options: GenerationOptions, specs: Mapping[str, Sequence]) -> bool:
    """Decide on a tree that holds wavs but no record (the public dataset, or another generator's).

    Returns
    -------
    True when every part asked for holds exactly the metadata's files (accepted, with a warning);
    False when the tree holds no wav at all (a fresh build may start).

    Raises
    ------
    DatasetError
        The tree holds wavs, but a part asked for is not exactly the metadata's files: it is
        neither trusted nor completed (who made its files, with which options, is unknown).
    """
    if not holds_wavs(root):
        return False
    for freq, mode, split in options.parts():
        expected = {spec.binaural_name for spec in specs[split]}
        base = split_folder(root, freq, mode, split)
        for name in options.variant.folders(options.n_spks):
            folder = base / name
            present = {n for n in os.listdir(folder) if n.endswith(".wav") and not n.startswith(".")} if folder.is_dir() else set()
            if present != expected:
                raise DatasetError(
                    f"{root} holds wavs but no dataset record ({RECORD_NAME}), and {folder} holds {len(present & expected)} "
                    f"of the {len(expected)} files the metadata lists ({len(present - expected)} others): it was not made "
                    "by this generator with these options. Generate into another folder, or delete it to rebuild it"
                )
    logger.warning(
        "%s has no dataset record (%s), but its %s files are exactly the metadata's: using it as it is "
        "(made by another generator, e.g. the public scripts; its options cannot be checked)",
        root, RECORD_NAME, ", ".join(part_name(*part) for part in options.parts()),
    )
    return True
