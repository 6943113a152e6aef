"""Binaural Libri2Mix / Libri3Mix: the machinery behind ``create_binaural_librimix.py``.

Each talker is exactly the mono source LibriMix's own ``create_librimix_from_metadata.py`` makes
from the public LibriMix metadata (LibriSpeech FLAC read as float32 at 16 kHz, times the CSV's
gain, ``scipy.signal.resample_poly`` to the rate, cut to the shortest or zero-padded to the longest
talker), placed with a two-ear HRIR (:func:`binaural.data.mixing.spatialize`: "same"-mode
convolution, so a file keeps LibriMix's length, and the dry source's energy per ear).

Where each talker stands is published data, not a private draw: a seeded draw (listener, and per
talker an azimuth and elevation on the HRTF set's grid, listeners disjoint between train, dev
and test) is written ONCE as ``binaural_libri{n}mix_<subset>.csv`` beside the copy of LibriMix's
CSV names, in ``O/metadata/``; a rerun reads it. The dataset record
(:mod:`binaural.data.record`) holds the digests of both metadata sets per split, and the
identity (corpus, talkers, variant, seed, HRTF set): another seed or HRTF set into the same
folder is refused before anything is written.

Output, with LibriMix's split folders and file names::

    O/wav8k/min/test/{s1,s2[,s3],mix_clean}/<mixture_ID>.wav                 (clean)
    O/wav8k/min/test/{s1,s2,noise,mix_clean,mix_single,mix_both}/<ID>.wav   (noise)

stereo float32 (the HRIRs raise peaks above LibriMix's 0.9 headroom; float keeps every bit the
pipeline computes). The noisy variant keeps WHAM!'s two ears (LibriMix's one gain for both);
``wham_channel="first"`` puts LibriMix's first-channel noise in both ears instead. The reverberant
variant places the talkers in rooms (:class:`BrirPlacement`: BRIR Sim Set or simulated rooms, reverb
times disjoint across splits) instead of with HRIRs.
"""
from __future__ import annotations

import csv
import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

from binaural.data.hrtf import HRTFError, HRTFSet, open_hrtf_set
from binaural.data.layout import (
    FREQS,
    LOCK_NAME,
    MODES,
    OWN_METADATA_FOLDER,
    REPO_FOLDER,
    SAMPLE_RATES,
    check_subset,
    part_name,
    source_folders,
    split_folder,
)
from binaural.data.metadata import MetadataError, SourceDirection, check_name, check_relative_path, split_subjects
from binaural.data.record import COMPLETE, IN_PROGRESS, DatasetRecord, part_files
from binaural.data.variants import CleanVariant, DataVariant, NoiseVariant, ReverbVariant, metadata_digest
from binaural.errors import RecipeError
from binaural.io.atomic import atomic_text, exclusive, inside, remove_partial_files
from binaural.io.audio import write_atomic

logger = logging.getLogger(__name__)

#: LibriMix's split folders, and the LibriSpeech subset each one is made from.
LIBRIMIX_SUBSETS: dict[str, str] = {
    "train-360": "train-clean-360", "train-100": "train-clean-100", "dev": "dev-clean", "test": "test-clean",
}
LIBRIMIX_SPLITS: tuple[str, ...] = tuple(LIBRIMIX_SUBSETS)
#: Which listener set of :func:`binaural.data.metadata.split_subjects` each split draws from.
LISTENER_SETS = {"train-360": "tr", "train-100": "tr", "dev": "cv", "test": "tt"}
#: The rate of LibriSpeech and WHAM! (``RATE`` of create_librimix_from_metadata.py), Hz.
LIBRISPEECH_RATE = 16000
WHAM_CHANNELS = ("both", "first")
#: The HRTF set used when none is given: CIPIC, from the Binaural-WSJ0Mix archive.
DEFAULT_HRTF = "cipic"


# ==================================================================================================
# The variants as LibriMix makes them
# ==================================================================================================


class LibriMixClean(CleanVariant):
    """Binaural Libri{n}Mix ``sep_clean``: ``{s1, s2[, s3], mix_clean}``, stereo float32."""

    input_folder = "mix_clean"

    def encode(self, signal: np.ndarray, overflow: str) -> tuple[np.ndarray, str, int]:
        return np.asarray(signal, dtype=np.float32), "FLOAT", 0

    def mixtures(self, talkers: Sequence[np.ndarray], noise: np.ndarray | None) -> dict[str, np.ndarray]:
        """``{folder: [time, 2]}`` of one mixture's files from its binaural talkers (LibriMix's ``mix``)."""
        return {f"s{k + 1}": t for k, t in enumerate(talkers)} | {"mix_clean": np.sum(talkers, axis=0)}

    def placer(self, options: "LibriMixOptions", output_root: Path) -> "HrirPlacement":
        """How the variant places the talkers: with the HRTF set of ``options``."""
        return HrirPlacement(resolve_hrtf(options, output_root))


class LibriMixNoise(NoiseVariant):
    """Binaural Libri{n}Mix ``sep_noisy``: WHAM! noise at LibriMix's gain added to the binaural talkers.

    ``{s1, s2[, s3], noise, mix_clean, mix_single, mix_both}`` (LibriMix's folders), float32.

    Arguments
    ---------
    wham_channel : str
        ``"both"`` (default): WHAM!'s two binaural channels, left and right; ``"first"``: LibriMix's
        first-channel noise in both ears (to compare with LibriMix).
    """

    max_talkers = 3

    def __init__(self, wham_channel: str = "both") -> None:
        super().__init__()
        if wham_channel not in WHAM_CHANNELS:
            raise RecipeError(f"wham_channel must be one of {WHAM_CHANNELS}, got {wham_channel!r}")
        self.wham_channel = wham_channel

    def folders(self, n_spks: int) -> tuple[str, ...]:
        return (*source_folders(n_spks), "noise", "mix_clean", "mix_single", "mix_both")

    def options(self) -> dict[str, Any]:
        return {"wham_channel": self.wham_channel}

    def sources(self) -> dict[str, str]:
        return {}

    placer = LibriMixClean.placer

    def dynamic_mixing_options(self) -> dict[str, Any]:
        # Two different ears, as WHAM! has them; one channel in both with wham_channel="first".
        return {"diotic_noise": self.wham_channel == "first"}

    def mixtures(self, talkers: Sequence[np.ndarray], noise: np.ndarray | None) -> dict[str, np.ndarray]:
        clean = np.sum(talkers, axis=0)
        return {f"s{k + 1}": t for k, t in enumerate(talkers)} | {
            "noise": noise, "mix_clean": clean, "mix_single": talkers[0] + noise, "mix_both": clean + noise,
        }


class LibriMixReverb(ReverbVariant):
    """Binaural Libri2Mix in rooms: each talker through a binaural room impulse response (each ear its
    own, aligned on the direct sound), ``{s1, s2, mix_clean}``, float32; the targets are the
    reverberant binaural talkers, as in the reverberant Binaural WSJ0-2mix.

    Arguments
    ---------
    brir_dir : str or Path, optional
        The BRIR Sim Set, ``"simulate"`` (simulated rooms, cached beside the output) or None (downloaded).
    room_seed : int
        Seeds the simulated rooms.
    """

    input_folder = "mix_clean"

    def __init__(self, brir_dir: str | Path | None = None, room_seed: int = 0) -> None:
        super().__init__(brir_dir, "per_ear", room_seed)

    encode = LibriMixClean.encode
    mixtures = LibriMixClean.mixtures

    def placer(self, options: "LibriMixOptions", output_root: Path) -> "BrirPlacement":
        from binaural.data.layout import SIMULATED_BRIR_FOLDER
        from binaural.data.rooms import open_brir_set

        parent = downloads(options, output_root)
        return BrirPlacement(open_brir_set(self.brir_dir, parent, parent / SIMULATED_BRIR_FOLDER, self.room_seed,
                                           options.progress), self.reverb_mode)


#: The generator's ``--variant`` values.
LIBRIMIX_VARIANTS: dict[str, type[DataVariant]] = {"clean": LibriMixClean, "noise": LibriMixNoise,
                                                   "reverb": LibriMixReverb}


# ==================================================================================================
# Options
# ==================================================================================================


@dataclass(frozen=True)
class LibriMixOptions:
    """Which Binaural LibriMix to build and how: ``create_binaural_librimix.py``'s command line as one object.

    Arguments
    ---------
    variant : DataVariant
        :class:`LibriMixClean` (default), :class:`LibriMixNoise` or :class:`LibriMixReverb`.
    n_spks, freqs, modes : as the WSJ0 generator
    splits : sequence of str
        LibriMix's split folders (:data:`LIBRIMIX_SPLITS`).
    metadata_dir : path, optional
        A copy of the LibriMix repository's ``metadata/`` folder (``Libri2Mix/``, ...).
    hrtf_dir : str or path, optional
        CIPIC ``wav_database``, SOFA file/folder or ``"spherical"``; None: CIPIC from the
        Binaural-WSJ0Mix archive (downloaded when absent).
    wham_root : path, optional
        The ``wham_noise`` folder (``tt/``, ``cv/``, ``tr/``) of the noisy variant.
    seed : int
        Seeds the binaural placement draw.
    train_split : str
        The training split a recipe trains on (``train-100`` or ``train-360``).
    download_dir : path, optional
        Where absent inputs are downloaded (``LibriMix-master``, ``wham_noise``,
        ``Binaural-WSJ0Mix-main`` for CIPIC); default the output folder's parent.
    """

    variant: DataVariant = field(default_factory=LibriMixClean)
    n_spks: int = 2
    freqs: Sequence[str] = ("8k",)
    modes: Sequence[str] = ("min",)
    splits: Sequence[str] = ("train-100", "dev", "test")
    metadata_dir: str | Path | None = None
    hrtf_dir: str | Path | None = None
    wham_root: str | Path | None = None
    seed: int = 0
    train_split: str = "train-100"
    download_dir: str | Path | None = None
    num_workers: int | None = None
    progress: bool = True
    #: LibriMix's metadata is public: no drawn sizes to compare (:meth:`DatasetRecord.check_sizes`).
    own_metadata: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not isinstance(self.variant, tuple(LIBRIMIX_VARIANTS.values())):
            raise RecipeError(
                f"variant must be binaural.data.librimix.LibriMixClean, LibriMixNoise or LibriMixReverb, got {self.variant!r}"
            )
        self.variant.check_talkers(int(self.n_spks))
        if self.train_split not in ("train-100", "train-360"):
            raise RecipeError(f"train_split must be train-100 or train-360, got {self.train_split!r}")
        normalised = {
            "n_spks": int(self.n_spks), "seed": int(self.seed),
            "freqs": check_subset(self.freqs, FREQS, "freqs"), "modes": check_subset(self.modes, MODES, "modes"),
            "splits": check_subset(self.splits, LIBRIMIX_SPLITS, "splits"),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    def parts(self) -> list[tuple[str, str, str]]:
        return [(f, m, s) for f in self.freqs for m in self.modes for s in self.splits]

    def hrtf_spec(self) -> str:
        return str(self.hrtf_dir) if self.hrtf_dir else DEFAULT_HRTF

    def identity(self) -> dict[str, Any]:
        """The options that change the bits of every file (the record compares them)."""
        identity = {"corpus": "librimix", "n_spks": self.n_spks, "variant": self.variant.name,
                    **self.variant.options(), "seed": self.seed}
        return identity | ({"hrtf": self.hrtf_spec()} if self.variant.uses_hrtf else {})


# ==================================================================================================
# Metadata: LibriMix's rows and our placement
# ==================================================================================================


@dataclass(frozen=True)
class LibriMixSpec:
    """One mixture: LibriMix's row and where its talkers stand."""

    split: str
    mixture_id: str
    source_paths: tuple[str, ...]  # relative to the LibriSpeech root: ``test-clean/4077/13754/...flac``
    gains: tuple[float, ...]
    noise_path: str | None  # relative to the WHAM! root: ``tt/...wav``
    noise_gain: float | None
    scene: str  # the listener (HRIRs) or the room's reverb time (BRIRs)
    directions: tuple[SourceDirection, ...]

    @property
    def binaural_name(self) -> str:
        return f"{self.mixture_id}.wav"


def librimix_csv(metadata_dir: Path, n_spks: int, split: str) -> Path:
    """``M/Libri2Mix/libri2mix_test-clean.csv``: LibriMix's metadata of one split."""
    return Path(metadata_dir) / f"Libri{n_spks}Mix" / f"libri{n_spks}mix_{LIBRIMIX_SUBSETS[split]}.csv"


def placement_csv(placement_dir: Path, n_spks: int, split: str, prefix: str = "binaural") -> Path:
    """``O/metadata/binaural_libri2mix_test-clean.csv``: our placement of one split (``prefix``: the
    placement's, :attr:`HrirPlacement.prefix` or :attr:`BrirPlacement.prefix`)."""
    return Path(placement_dir) / f"{prefix}_libri{n_spks}mix_{LIBRIMIX_SUBSETS[split]}.csv"


def read_librimix_rows(metadata_dir: Path, n_spks: int, split: str) -> list[dict[str, str]]:
    """LibriMix's rows of one split, every path and name checked.

    Raises
    ------
    MetadataError
        The CSV is absent (named, with where it comes from) or a row is not LibriMix's.
    """
    path = librimix_csv(metadata_dir, n_spks, split)
    if not path.is_file():
        raise MetadataError(
            f"{path}: not found. --metadata_dir must be a copy of the LibriMix repository's metadata/ folder "
            "(https://github.com/JorisCos/LibriMix, downloaded when --metadata_dir is absent); its train-360 CSVs "
            "are not in the repository: choose other --splits"
        )
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = ["mixture_ID", *(f"source_{k}_{c}" for k in range(1, n_spks + 1) for c in ("path", "gain")),
               "noise_path", "noise_gain"]
    if not rows or any(c not in rows[0] for c in columns):
        raise MetadataError(f"{path}: not a Libri{n_spks}Mix metadata file (needs columns {columns})")
    for number, row in enumerate(rows, start=2):
        check_name(row["mixture_ID"], f"{path}, row {number}, column mixture_ID")
        for k in range(1, n_spks + 1):
            check_relative_path(row[f"source_{k}_path"], f"{path}, row {number}, column source_{k}_path")
        check_relative_path(row["noise_path"], f"{path}, row {number}, column noise_path")
    return rows


def write_placement(path: Path, rows: Sequence[dict[str, str]]) -> None:
    with atomic_text(path) as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _refused(path: Path, number: int, column: str, value: str, what: str) -> MetadataError:
    return MetadataError(f"{path}, row {number}, column {column}: {value!r} is not {what}; delete the file to "
                         "draw it again")


class HrirPlacement:
    """Talkers placed with one listener's HRIRs (clean and noisy variants): per mixture a listener
    of the split's set, per talker a distinct direction of the listener's grid.

    CSV columns: ``mixture_ID, subject, azimuth<k>, elevation<k>, elevation_index<k>``.
    """

    prefix = "binaural"

    def __init__(self, hrtf_set: HRTFSet) -> None:
        self.hrtf_set = hrtf_set

    def columns(self, n_spks: int) -> list[str]:
        return ["mixture_ID", "subject",
                *(f"{c}{k}" for k in range(1, n_spks + 1) for c in ("azimuth", "elevation", "elevation_index"))]

    def draw(self, mixture_ids: Sequence[str], n_spks: int, split: str, seed: int) -> list[dict[str, str]]:
        """Every row of the split (in LibriMix's order, so a mixture's placement does not depend on
        which rows a run builds), from ``seed``; listeners disjoint across train, dev and test."""
        subjects = split_subjects(self.hrtf_set.subjects(), seed)[LISTENER_SETS[split]]
        rng = np.random.default_rng([seed, LIBRIMIX_SPLITS.index(split), n_spks])
        rows = []
        for mixture_id in mixture_ids:
            subject = subjects[rng.integers(len(subjects))]
            grid = self.hrtf_set.directions(subject)
            picks = rng.choice(len(grid), size=n_spks, replace=False)
            row = {"mixture_ID": mixture_id, "subject": subject}
            for k, pick in enumerate(picks, start=1):
                row |= {f"azimuth{k}": grid[pick].azimuth, f"elevation{k}": grid[pick].elevation,
                        f"elevation_index{k}": str(grid[pick].index)}
            rows.append(row)
        return rows

    def parse(self, row: dict[str, str], n_spks: int, path: Path, number: int) -> tuple[str, tuple[SourceDirection, ...]]:
        directions = []
        for k in range(1, n_spks + 1):
            index = row[f"elevation_index{k}"]
            if not index.strip().lstrip("-").isdigit():
                raise _refused(path, number, f"elevation_index{k}", index, "a whole number")
            directions.append(SourceDirection(row[f"azimuth{k}"], row[f"elevation{k}"], int(index)))
        return row["subject"], tuple(directions)

    def check(self, specs: Sequence[LibriMixSpec], rates: Sequence[int]) -> None:
        for spec in specs:
            try:
                for d in spec.directions:
                    for rate in rates:
                        self.hrtf_set.hrir(spec.scene, d.azimuth, d.elevation_index, rate)
            except HRTFError as error:
                raise MetadataError(f"{spec.split}/{spec.mixture_id}: {error}. Nothing was written.") from error

    def place(self, mono: np.ndarray, spec: LibriMixSpec, direction: SourceDirection, rate: int) -> np.ndarray:
        """A mono talker ``[time]`` as ``[time, 2]``: "same" convolution, the dry energy per ear."""
        from binaural.data.mixing import spatialize

        return spatialize(mono, self.hrtf_set.hrir(spec.scene, direction.azimuth, direction.elevation_index, rate))


class BrirPlacement:
    """Talkers placed in a room (reverberant variant): per mixture a reverb time of the split's set
    (disjoint across train, dev and test, as the reverberant Binaural WSJ0-2mix), per talker a
    distinct azimuth of -90..90 by 5; each ear through its own BRIR, aligned on the direct sound.

    CSV columns: ``mixture_ID, reverb_time, azimuth<k>``.
    """

    prefix = "binaural_reverb"

    def __init__(self, brir_set: Any, reverb_mode: str) -> None:
        self.brir_set, self.reverb_mode = brir_set, reverb_mode

    def columns(self, n_spks: int) -> list[str]:
        return ["mixture_ID", "reverb_time", *(f"azimuth{k}" for k in range(1, n_spks + 1))]

    def draw(self, mixture_ids: Sequence[str], n_spks: int, split: str, seed: int) -> list[dict[str, str]]:
        from binaural.data.rooms import draw_reverb_meta

        return [dict(zip(self.columns(n_spks), row))
                for row in draw_reverb_meta(mixture_ids, LISTENER_SETS[split], seed + LIBRIMIX_SPLITS.index(split))]

    def parse(self, row: dict[str, str], n_spks: int, path: Path, number: int) -> tuple[str, tuple[SourceDirection, ...]]:
        return row["reverb_time"], tuple(SourceDirection(row[f"azimuth{k}"], "0", 0) for k in range(1, n_spks + 1))

    def check(self, specs: Sequence[LibriMixSpec], rates: Sequence[int]) -> None:
        self.brir_set.check({(spec.scene, d.azimuth) for spec in specs for d in spec.directions})

    def place(self, mono: np.ndarray, spec: LibriMixSpec, direction: SourceDirection, rate: int) -> np.ndarray:
        from binaural.data.mixing import spatialize_reverb

        return spatialize_reverb(mono, self.brir_set.brir(spec.scene, direction.azimuth, rate), self.reverb_mode,
                                 onset=None)


def ensure_placement(metadata_dir: Path, placement_dir: Path, placement: HrirPlacement | BrirPlacement,
                     options: LibriMixOptions, split: str) -> Path:
    """The placement CSV of one split, drawn and written (once) when absent."""
    path = placement_csv(placement_dir, options.n_spks, split, placement.prefix)
    if not path.is_file():
        ids = [row["mixture_ID"] for row in read_librimix_rows(metadata_dir, options.n_spks, split)]
        logger.info("drawing the binaural placement of %d %s mixtures", len(ids), split)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_placement(path, placement.draw(ids, options.n_spks, split, options.seed))
    return path


def read_placement(path: Path, n_spks: int, placement: HrirPlacement | BrirPlacement
                   ) -> dict[str, tuple[str, tuple[SourceDirection, ...]]]:
    """``{mixture_ID: (scene, directions)}`` of a placement CSV, every field checked."""
    with open(path, newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    columns = placement.columns(n_spks)
    if not table or any(c not in table[0] for c in columns):
        raise MetadataError(f"{path}: not a {n_spks}-talker placement file (needs columns {columns}); "
                            f"delete it to draw it again")
    result = {}
    for number, row in enumerate(table, start=2):
        for column in columns:
            check_name(row.get(column) or "", f"{path}, row {number}, column {column}")
        result[row["mixture_ID"]] = placement.parse(row, n_spks, path, number)
    return result


def load_specs(metadata_dir: Path, placement_dir: Path, n_spks: int, split: str,
               placer: HrirPlacement | BrirPlacement) -> list[LibriMixSpec]:
    """The mixtures of one split: LibriMix's rows with their placement."""
    rows = read_librimix_rows(metadata_dir, n_spks, split)
    path = placement_csv(placement_dir, n_spks, split, placer.prefix)
    placement = read_placement(path, n_spks, placer)
    ids = [row["mixture_ID"] for row in rows]
    if set(placement) != set(ids):
        raise MetadataError(
            f"{path}: places {len(placement)} mixtures, but {librimix_csv(metadata_dir, n_spks, split)} lists "
            f"{len(ids)} others: the two metadata sets do not belong together; delete {path} to draw it again"
        )
    return [
        LibriMixSpec(
            split, row["mixture_ID"], tuple(row[f"source_{k}_path"] for k in range(1, n_spks + 1)),
            tuple(float(row[f"source_{k}_gain"]) for k in range(1, n_spks + 1)),
            row["noise_path"], float(row["noise_gain"]), *placement[row["mixture_ID"]],
        )
        for row in rows
    ]


# ==================================================================================================
# LibriMix's mono pipeline (create_librimix_from_metadata.py), and the binaural placement
# ==================================================================================================


def extend_noise(noise: np.ndarray, max_length: int) -> np.ndarray:
    """LibriMix's ``extend_noise``: loop a short noise ``[time(, channel)]`` with a Hann cross-fade."""
    window = np.hanning(LIBRISPEECH_RATE + 1)
    rising, falling = window[: len(window) // 2 + 1], window[len(window) // 2 :: -1]
    if noise.ndim == 2:
        rising, falling = rising[:, None], falling[:, None]
    extended = noise
    while len(extended) < max_length:
        extended = np.concatenate((
            extended[: len(extended) - len(falling)],
            np.multiply(extended[len(extended) - len(falling):], falling) + np.multiply(noise[: len(rising)], rising),
            noise[len(rising):],
        ))
    return extended[:max_length]


def read_audio(path: Path, stop: int | None = None) -> np.ndarray:
    """float32 samples of a 16 kHz file, as LibriMix reads them; bad files name the fix."""
    try:
        samples, rate = sf.read(str(path), dtype="float32", stop=stop)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise MetadataError(f"{path}: unreadable ({error}); restore it from its archive") from error
    if rate != LIBRISPEECH_RATE:
        raise MetadataError(f"{path}: {rate} Hz, expected {LIBRISPEECH_RATE} (LibriSpeech and WHAM! are 16 kHz)")
    return samples


def mono_sources(spec: LibriMixSpec, librispeech_root: Path, wham_root: Path | None, freq: str, mode: str,
                 wham_channel: str) -> tuple[list[np.ndarray], np.ndarray | None]:
    """LibriMix's sources of one mixture: read, gain, ``resample_poly``, min/max (the noise last).

    Returns the talkers ``[time]`` and the noise (``[time, 2]`` with both WHAM! channels, ``[time]``
    with the first; None without ``wham_root``).
    """
    sources = [read_audio(librispeech_root / p) for p in spec.source_paths]
    gains = list(spec.gains)
    if wham_root is not None:
        max_length = max(len(s) for s in sources)
        noise = read_audio(wham_root / spec.noise_path, stop=max_length)
        if noise.ndim == 1 and wham_channel == "both":
            raise MetadataError(f"{wham_root / spec.noise_path}: one channel, but WHAM! is binaural; "
                                "use the original wham_noise files, or --wham_channel first")
        if noise.ndim == 2 and wham_channel == "first":
            noise = noise[:, 0]
        if len(noise) < max_length:
            if len(noise) <= LIBRISPEECH_RATE // 2:
                raise MetadataError(f"{wham_root / spec.noise_path}: {len(noise)} samples, too short to loop with "
                                    "LibriMix's half-second cross-fade; restore the WHAM! file")
            noise = extend_noise(noise, max_length)
        sources.append(noise)
        gains.append(spec.noise_gain)
    rate = SAMPLE_RATES[freq]
    resampled = [resample_poly(s * g, rate, LIBRISPEECH_RATE, axis=0) for s, g in zip(sources, gains)]
    lengths = [len(s) for s in resampled]
    target = min(lengths) if mode == "min" else max(lengths)
    fitted = [s[:target] if mode == "min" else
              np.pad(s, [(0, target - len(s))] + [(0, 0)] * (s.ndim - 1), mode="constant") for s in resampled]
    talkers = fitted[: len(spec.source_paths)]
    return talkers, (fitted[-1] if wham_root is not None else None)


class LibriMixRenderer:
    """Renders Binaural LibriMix mixtures; forked workers inherit it with the HRIR/BRIR cache warm."""

    def __init__(self, options: LibriMixOptions, librispeech_root: Path, output_root: Path,
                 placer: HrirPlacement | BrirPlacement, wham_root: Path | None) -> None:
        self.variant = options.variant
        self.n_spks = options.n_spks
        self.librispeech_root, self.output_root = librispeech_root, output_root
        self.placer, self.wham_root = placer, wham_root
        self.wham_channel = getattr(options.variant, "wham_channel", "first")

    def render(self, spec: LibriMixSpec, freq: str, mode: str) -> dict[str, np.ndarray]:
        """``{folder: [time, 2]}`` of one mixture at one rate and length mode."""
        rate = SAMPLE_RATES[freq]
        talkers, noise = mono_sources(spec, self.librispeech_root, self.wham_root, freq, mode, self.wham_channel)
        binaural = [self.placer.place(t.astype(np.float64), spec, d, rate) for t, d in zip(talkers, spec.directions)]
        if noise is not None and noise.ndim == 1:
            noise = np.stack([noise, noise], axis=1)
        return self.variant.mixtures(binaural, None if noise is None else noise.astype(np.float64))

    def build(self, task: tuple) -> None:
        """Write every missing file of ``(spec, ((freq, mode), ...))``."""
        spec, targets = task
        for freq, mode in targets:
            signals = self.render(spec, freq, mode)
            base = split_folder(self.output_root, freq, mode, spec.split)
            inside(self.output_root, base / spec.binaural_name)
            for name in self.variant.folders(self.n_spks):
                path = base / name / spec.binaural_name
                if not path.exists():
                    samples, subtype, _ = self.variant.encode(signals[name], "clip")
                    write_atomic(path, samples, SAMPLE_RATES[freq], subtype=subtype)


_renderer: LibriMixRenderer | None = None  # this process's renderer (see generation._renderer)


def _init_worker(renderer: LibriMixRenderer) -> None:
    global _renderer
    _renderer = renderer


def _build_task(task: tuple) -> None:
    _renderer.build(task)


# ==================================================================================================
# The build
# ==================================================================================================


def check_inputs(specs: Sequence[LibriMixSpec], librispeech_root: Path, wham_root: Path | None,
                 placer: HrirPlacement | BrirPlacement, freqs: Sequence[str]) -> None:
    """Every utterance, noise file and HRIR/BRIR the build reads, checked before the first wav."""
    missing = []
    for spec in specs:
        paths = [librispeech_root / p for p in spec.source_paths]
        paths += [wham_root / spec.noise_path] if wham_root is not None else []
        missing += [f"{p} (used by {spec.split}/{spec.mixture_id})" for p in paths if not p.is_file()]
    if missing:
        more = f"; {len(missing) - 1} other file(s) are missing as well" if len(missing) > 1 else ""
        raise MetadataError(f"{missing[0]}: not found{more}. Nothing was written. Check --librispeech_root"
                            " and --wham_root (or let the generator download them)")
    placer.check(specs, [SAMPLE_RATES[f] for f in freqs])


def resolve_hrtf(options: LibriMixOptions, output_root: Path) -> HRTFSet:
    """The HRTF set of the build: the one given, or CIPIC from the Binaural-WSJ0Mix archive."""
    if options.hrtf_dir:
        return open_hrtf_set(options.hrtf_dir)
    from binaural.data.generation import CIPIC_IN_REPO
    from binaural.data.sources import ensure_binaural_wsj0mix_repo

    repo = ensure_binaural_wsj0mix_repo(downloads(options, output_root) / REPO_FOLDER, progress=options.progress)
    return open_hrtf_set(repo / CIPIC_IN_REPO)


def create_binaural_librimix(librispeech_root: str | Path, output_root: str | Path,
                             options: LibriMixOptions | None = None) -> dict[str, int]:
    """Generate the Binaural LibriMix ``options`` describe into ``output_root``; returns mixtures written per split.

    Holds the tree's lock; the record's identity is checked before anything is drawn or written.

    Raises
    ------
    RecipeError
        Bad input or a folder made with other options (the message names the file and the fix).
    """
    librispeech_root, output_root = Path(librispeech_root), Path(output_root)
    options = options or LibriMixOptions()
    created = not output_root.exists()
    output_root.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive(output_root / LOCK_NAME, f"the dataset folder {output_root}"):
            return _build(librispeech_root, output_root, options)
    except BaseException:
        placement_dir = output_root / OWN_METADATA_FOLDER
        if not (placement_dir.is_dir() and any(placement_dir.iterdir())):
            # Refused before any placement was drawn: the record claims nothing, and the folder the
            # user had not made goes too, so a corrected rerun (another seed...) is not refused.
            unclaimed = DatasetRecord.read(output_root)
            if unclaimed is not None and not unclaimed.parts:
                DatasetRecord.path(output_root).unlink()
            if created and {p.name for p in output_root.iterdir()} <= {LOCK_NAME, OWN_METADATA_FOLDER}:
                shutil.rmtree(output_root)
        raise


def downloads(options: LibriMixOptions, output_root: Path) -> Path:
    """Where absent inputs are downloaded."""
    return Path(options.download_dir) if options.download_dir else output_root.parent


def _metadata_dir(options: LibriMixOptions, output_root: Path) -> Path:
    if options.metadata_dir:
        return Path(options.metadata_dir)
    from binaural.data.sources import ensure_librimix_metadata

    return ensure_librimix_metadata(downloads(options, output_root), progress=options.progress) / "metadata"


def _build(librispeech_root: Path, output_root: Path, options: LibriMixOptions) -> dict[str, int]:
    variant, n_spks = options.variant, options.n_spks
    record = DatasetRecord.read(output_root)
    if record is not None:
        record.check_identity(options.identity(), output_root)
    metadata_dir = _metadata_dir(options, output_root)
    placer = variant.placer(options, output_root)
    placement_dir = output_root / OWN_METADATA_FOLDER
    record = record or DatasetRecord(options.identity(), title=f"Binaural Libri{n_spks}Mix")
    record.write(output_root)  # claims the folder before the placement is drawn into it
    digests = {
        split: metadata_digest([librimix_csv(metadata_dir, n_spks, split),
                                ensure_placement(metadata_dir, placement_dir, placer, options, split)])
        for split in options.splits
    }
    record.check_metadata(digests, output_root)  # before a changed metadata file is even parsed
    specs = {split: load_specs(metadata_dir, placement_dir, n_spks, split, placer) for split in options.splits}
    wham_root = Path(options.wham_root) if isinstance(variant, LibriMixNoise) and options.wham_root else None
    if isinstance(variant, LibriMixNoise) and wham_root is None:
        from binaural.data.sources import ensure_wham_noise

        wham_root = ensure_wham_noise(downloads(options, output_root), progress=options.progress)
    from binaural.data.sources import ensure_librispeech

    ensure_librispeech(librispeech_root, [LIBRIMIX_SUBSETS[split] for split in options.splits], progress=options.progress)
    everything = [spec for split in options.splits for spec in specs[split]]
    check_inputs(everything, librispeech_root, wham_root, placer, options.freqs)

    tasks = []
    for spec in everything:
        missing = tuple((f, m) for f in options.freqs for m in options.modes
                        if not all((split_folder(output_root, f, m, spec.split) / name / spec.binaural_name).exists()
                                   for name in variant.folders(n_spks)))
        if missing:
            tasks.append((spec, missing))
    record.sources |= {"librispeech_root": str(librispeech_root), "metadata_dir": str(metadata_dir),
                       "placement_dir": str(placement_dir), "hrtf": options.hrtf_spec()}
    if wham_root is not None:
        record.sources["wham_root"] = str(wham_root)
    record.sources |= variant.sources()
    record.metadata_sha256 |= digests
    for freq, mode, split in options.parts():
        if record.status(freq, mode, split) != COMPLETE or any(s.split == split for s, _ in tasks):
            record.parts[part_name(freq, mode, split)] = {"status": IN_PROGRESS, "mixtures": len(specs[split])}
    record.write(output_root)
    for part in options.parts():
        remove_partial_files(split_folder(output_root, *part))
    _run(LibriMixRenderer(options, librispeech_root, output_root, placer, wham_root), tasks, options)
    for freq, mode, split in options.parts():
        files = part_files(output_root, freq, mode, split, variant, n_spks)
        if all(count == len(specs[split]) for count in files.values()):
            record.parts[part_name(freq, mode, split)] = {"status": COMPLETE, "mixtures": len(specs[split]),
                                                          "files": files}
    record.write(output_root)
    return {split: sum(1 for spec, _ in tasks if spec.split == split) for split in options.splits}


def _run(renderer: LibriMixRenderer, tasks: list, options: LibriMixOptions) -> None:
    from binaural.data.generation import default_workers

    workers = max(1, min(options.num_workers or default_workers(), len(tasks) or 1))
    bar = tqdm(total=len(tasks), desc=f"binaural libri{options.n_spks}mix", unit="mix", disable=not options.progress)
    _init_worker(renderer)
    if workers == 1:
        results = map(_build_task, tasks)
    else:
        pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(renderer,))
        results = pool.map(_build_task, tasks, chunksize=max(1, min(4, len(tasks) // (4 * workers))))
    try:
        for _ in results:
            bar.update()
    finally:
        if workers > 1:
            pool.shutdown()
        bar.close()


def ensure_librimix(librispeech_root: str | Path, output_root: str | Path, options: LibriMixOptions) -> None:
    """Make ``output_root`` hold the complete parts of ``options`` (what train.py calls)."""
    from binaural.data.record import missing_parts

    if not missing_parts(Path(output_root), options):
        logger.info("Binaural Libri%dMix found in %s: every part complete", options.n_spks, output_root)
        return
    logger.info("Binaural Libri%dMix: to check or generate in %s", options.n_spks, output_root)
    create_binaural_librimix(librispeech_root, output_root, options)


def scan_librispeech_talkers(root: Path, subsets: Sequence[str]) -> dict[str, list[str]]:
    """Dynamic mixing's talkers from LibriSpeech: ``{speaker: [<subset>/<speaker>/<chapter>/<id>.flac, ...]}``.

    Raises
    ------
    MetadataError
        A subset folder is absent or holds no FLAC file.
    """
    talkers: dict[str, list[str]] = {}
    for subset in subsets:
        folder = Path(root) / subset
        if not folder.is_dir():
            raise MetadataError(f"{folder}: not found; dynamic mixing draws its talkers from the LibriSpeech training "
                                "subsets: point librispeech_root at the folder holding them (or set talker_folders_dm)")
        for path in sorted(folder.glob("*/*/*.flac")):
            talkers.setdefault(path.parts[-3], []).append(path.relative_to(root).as_posix())
    if not talkers:
        raise MetadataError(f"{root}: no <subset>/<speaker>/<chapter>/<id>.flac under {', '.join(subsets)}")
    return talkers


def wav_header_bytes(subtype: str = "FLOAT", channels: int = 2) -> int:
    """Bytes of a wav's header as the generator writes it (``write_atomic``: soundfile's chunks)."""
    import io

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((1, channels), dtype=np.float32), 8000, subtype=subtype, format="WAV")
    return len(buffer.getvalue()) - channels * 4


def storage_bytes(metadata_dir: Path, n_spks: int, split: str, freq: str, mode: str, variant: DataVariant) -> int:
    """Bytes of one part on disk (stereo float32 wavs, every folder of ``variant``), from the
    utterance lengths of LibriMix's ``metadata/LibriSpeech/*.csv`` (16 kHz samples)."""
    lengths = {}
    for subset_csv in sorted((Path(metadata_dir) / "LibriSpeech").glob("*.csv")):
        with open(subset_csv, newline="", encoding="utf-8") as handle:
            lengths |= {row["origin_path"]: int(row["length"]) for row in csv.DictReader(handle)}
    header, folders, rate = wav_header_bytes(), len(variant.folders(n_spks)), SAMPLE_RATES[freq]
    total = 0
    for row in read_librimix_rows(metadata_dir, n_spks, split):
        n = [lengths[row[f"source_{k}_path"]] for k in range(1, n_spks + 1)]
        samples = -(-(min(n) if mode == "min" else max(n)) * rate // LIBRISPEECH_RATE)  # resample_poly's ceil
        total += folders * (header + samples * 2 * 4)
    return total
