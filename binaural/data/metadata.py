"""Binaural-WSJ0Mix metadata: read the official files, or draw and write our own in the same formats.

A split is described by three files (``{n}`` the talker count, ``[3]`` present for three talkers):
- ``mix_{n}_spk_filenames_{split}.csv``: ``output_filename, s1_path, s2_path[, s3_path]``;
- ``scaling_{split}[3].npz``: ``scaling_wsjmix_{8k|16k}_{min|max}`` ``[mixture, talker]`` gains
  applied to raw int16 samples (and WHAM-style noise keys the clean variant does not use);
- ``hrtf_meta_{split}[3].csv``: ``utterance_id, subject, azimuth{k}, elevation{k}, elevation_index{k}``.
Both modes produce :class:`MixtureSpec` rows, so the generator has a single code path.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

import numpy as np

from binaural.io.atomic import atomic_path, atomic_text
from binaural.io.audio import UTTERANCE_SUFFIXES, check_readable
from binaural.errors import RecipeError
from binaural.data.layout import FREQS, MODES, SAMPLE_RATES, SPLITS, WSJ0_RATE
# WSJ0-2mix: training and validation talkers come from si_tr_s, test talkers (unseen) from these.
TALKER_SETS = {"tr": ("si_tr_s",), "cv": ("si_tr_s",), "tt": ("si_dt_05", "si_et_05")}
# Published listener split: 27 / 9 / 9 of the 45 CIPIC subjects.
SUBJECT_FRACTIONS = {"tr": 27 / 45, "cv": 9 / 45}


class MetadataError(RecipeError):
    """Metadata that is missing, inconsistent, or refers to files that do not exist."""


@dataclass(frozen=True)
class SourceDirection:
    """Where one talker is placed: spelled as in ``hrtf_meta`` (degrees) plus the HRIR row."""

    azimuth: str
    elevation: str
    elevation_index: int


def binaural_file_name(output_filename: str, prefix: str, placements: Sequence[Sequence[str]]) -> str:
    """A public binaural file name: ``prefix_utt1_<placement 1>_utt2_<placement 2>[...].wav``.

    Args:
        output_filename: the WSJ0-mix name ``utt1_gain1_utt2_gain2[_utt3_gain3].wav``.
        prefix: the listener (``subject10``) or the reverb time (``0.3``).
        placements: per talker, the spelled parts that place it (azimuth[, elevation]).
    """
    utterances = output_filename[: -len(".wav")].split("_")[0::2]
    parts = [prefix]
    for utterance, placement in zip(utterances, placements):
        parts += [utterance, *placement]
    return "_".join(parts) + ".wav"


@dataclass(frozen=True)
class MixtureSpec:
    """One row of the metadata: which utterances, which gains, which listener and directions."""

    split: str
    index: int
    output_filename: str  # the WSJ0-mix name, e.g. ``40na010x_1.9857_01xo031a_-1.9857.wav``
    source_paths: tuple[str, ...]  # relative to ``wsj_root``: ``wsj0/si_tr_s/40n/40na010x.wav``
    gains: dict  # ``(freq, mode) -> tuple`` of one gain per talker
    subject: str
    directions: tuple[SourceDirection, ...]

    @property
    def n_spks(self) -> int:
        return len(self.source_paths)

    @property
    def binaural_name(self) -> str:
        """``subject_utt1_az1_el1_utt2_az2_el2[_utt3_az3_el3].wav``, the public dataset's names."""
        placements = [(d.azimuth, d.elevation) for d in self.directions]
        return binaural_file_name(self.output_filename, self.subject, placements)


def _suffix(n_spks: int) -> str:
    return "3" if n_spks == 3 else ""


def metadata_paths(metadata_dir: Path, n_spks: int, split: str) -> dict[str, Path]:
    """The three files describing ``split`` for ``n_spks`` talkers."""
    metadata_dir = Path(metadata_dir)
    suffix = _suffix(n_spks)
    return {
        "filenames": metadata_dir / f"mix_{n_spks}_spk_filenames_{split}.csv",
        "scaling": metadata_dir / f"scaling_{split}{suffix}.npz",
        "hrtf": metadata_dir / f"hrtf_meta_{split}{suffix}.csv",
    }


def npz_keys(path: Path) -> list[str]:
    """The array names of an npz file, read from its zip directory (no array is loaded)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files)
    except (OSError, ValueError) as error:
        raise MetadataError(f"{path}: unreadable npz file ({error}); restore it from the metadata release") from error


def read_npz(path: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """The numeric arrays ``keys`` of an npz file, read without unpickling anything.

    The official scaling files also hold an object array (``utterance_id``) that only a pickle can
    restore; it is never read (the CSVs carry the same ids), so a crafted one cannot run code.

    Raises
    ------
    MetadataError
        The file is unreadable, lacks a key, or a key holds objects instead of numbers.
    """
    keys = list(keys)
    try:
        with np.load(path, allow_pickle=False) as npz:
            lacking = [key for key in keys if key not in npz.files]
            if lacking:
                raise MetadataError(f"{path}: missing key(s) {lacking}")
            return {key: npz[key] for key in keys}
    except MetadataError:
        raise
    except (OSError, ValueError, EOFError) as error:  # ValueError: an object array, or not an npz
        raise MetadataError(
            f"{path}: unreadable numeric arrays {keys} ({error}); restore it from the metadata release"
        ) from error


def check_finite_gains(
    scaling: dict[tuple[str, str], np.ndarray], path: Path, filenames_path: Path, rows: Sequence[dict[str, str]]
) -> None:
    """Refuse a scaling matrix (``(freq, mode) -> [mixture, talker]``, read from ``path``) with a NaN or
    infinite gain: it casts to a silent int16 mixture whose targets are speech. ``rows`` are the
    mixtures of ``filenames_path``, in the same order."""
    for (freq, mode), matrix in scaling.items():
        bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        if bad.size:
            row = int(bad[0])
            raise MetadataError(
                f"{path}: scaling_wsjmix_{freq}_{mode} holds a non-finite gain {matrix[row].tolist()} for "
                f"mixture {rows[row].get('output_filename')!r} (row {row + 2} of {filenames_path.name}"
                f"{f', and {bad.size - 1} other row(s)' if bad.size > 1 else ''}); restore the file from the metadata "
                "release. Nothing was written."
            )


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a metadata CSV; a file that is not a text CSV (binary, a folder) is a MetadataError."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise MetadataError(
            f"{path}: not a readable text CSV ({type(error).__name__}: {error}); restore it from the metadata release"
        ) from error


def _refuse(where: str, value: str, what: str) -> MetadataError:
    return MetadataError(
        f"{where}: {value!r} is not {what}; the file was edited or crafted: restore it from the metadata "
        "release. Nothing was written."
    )


def check_name(value: str, where: str) -> str:
    """``value``, a metadata field that becomes part of an output file name, if it cannot leave its
    folder: no path separator, no ``.``/``..``, no NUL, not empty. ``where`` names the CSV, row, column.

    Raises
    ------
    MetadataError
        Naming the CSV and the row, before anything is written.
    """
    if not value or value in (".", "..") or any(c in value for c in "/\\\x00") or re.match(r"^[A-Za-z]:", value):
        raise _refuse(where, value, "a plain file name (no /, \\, .. or NUL)")
    return value


def check_relative_path(value: str, where: str) -> str:
    """``value``, a metadata path read under a root (``wsj0/si_tr_s/...``), if it stays under it:
    relative, no ``..`` part, no NUL."""
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if not value or value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or ".." in parts or "\x00" in value:
        raise _refuse(where, value, "a relative path below its root (no leading /, no ..)")
    return value


def check_filenames_row(row: dict[str, str], path: Path, row_number: int, n_spks: int) -> str:
    """Check one row of ``mix_<n>_spk_filenames_<split>.csv`` (names that become files, paths that
    are read); returns its ``output_filename``."""
    name = check_name(row["output_filename"], row_place(path, row_number, "output_filename"))
    if not name.endswith(".wav"):
        raise _refuse(row_place(path, row_number, "output_filename"), name, "a .wav name")
    for k in range(1, n_spks + 1):
        check_relative_path(row[f"s{k}_path"], row_place(path, row_number, f"s{k}_path"))
    return name


def row_place(path: Path, row_number: int, column: str) -> str:
    """``file.csv, row 12, column subject``: where a bad metadata value is (rows counted from the header, 1)."""
    return f"{path}, row {row_number}, column {column}"


def _require_columns(path: Path, rows: list[dict[str, str]], columns: Iterable[str]) -> None:
    if not rows:
        raise MetadataError(f"{path}: no rows; restore the file from the public metadata")
    missing = [column for column in columns if column not in rows[0]]
    if missing:
        raise MetadataError(f"{path}: missing column(s) {missing}; is this the {len(missing)}-talker file?")


def load_split(
    metadata_dir: Path, n_spks: int, split: str, freqs: Sequence[str] = FREQS, modes: Sequence[str] = MODES
) -> list[MixtureSpec]:
    """Read one split's metadata into :class:`MixtureSpec` rows, checking that the files agree.

    Raises:
        MetadataError: a file is absent (named, with where to get it), a column or scaling key is
            missing, the files disagree in length, or a mixture has no HRTF row.
    """
    if n_spks not in (2, 3):
        raise MetadataError(f"n_spks must be 2 or 3, got {n_spks}")
    paths = metadata_paths(metadata_dir, n_spks, split)
    absent = [str(path) for path in paths.values() if not path.exists()]
    if absent:
        raise MetadataError(
            f"metadata file(s) not found: {', '.join(absent)}. Use the public Binaural-WSJ0Mix metadata "
            "(https://github.com/huangzj421/Binaural-WSJ0Mix, folder metadata/), build another split with "
            "--splits, or draw your own metadata with --own_metadata"
        )
    talkers = range(1, n_spks + 1)
    filenames = read_csv(paths["filenames"])
    _require_columns(paths["filenames"], filenames, ["output_filename"] + [f"s{k}_path" for k in talkers])
    hrtf_rows = read_csv(paths["hrtf"])
    _require_columns(
        paths["hrtf"],
        hrtf_rows,
        ["utterance_id", "subject"]
        + [f"{name}{k}" for name in ("azimuth", "elevation", "elevation_index") for k in talkers],
    )
    hrtf_by_name = {row["utterance_id"]: (number, row) for number, row in enumerate(hrtf_rows, start=2)}
    keys = {(freq, mode): f"scaling_wsjmix_{freq}_{mode}" for freq in freqs for mode in modes}
    arrays = read_npz(paths["scaling"], keys.values())
    scaling = {fm: np.asarray(arrays[key], dtype=np.float64) for fm, key in keys.items()}
    for key, matrix in scaling.items():
        if matrix.shape != (len(filenames), n_spks):
            raise MetadataError(
                f"{paths['scaling']}: scaling_wsjmix_{key[0]}_{key[1]} has shape {matrix.shape}, expected "
                f"({len(filenames)}, {n_spks}) to match {paths['filenames'].name}"
            )
    check_finite_gains(scaling, paths["scaling"], paths["filenames"], filenames)
    specs = []
    first_row: dict[str, int] = {}
    for index, row in enumerate(filenames):
        name = check_filenames_row(row, paths["filenames"], index + 2, n_spks)
        if first_row.setdefault(name, index + 2) != index + 2:
            raise MetadataError(
                f"{paths['filenames']}: rows {first_row[name]} and {index + 2} both name the mixture {name!r}: one "
                "would overwrite the other; restore the file from the metadata release. Nothing was written."
            )
        hrtf_row_number, hrtf = hrtf_by_name.get(name, (None, None))
        if hrtf is None:
            raise MetadataError(
                f"{paths['hrtf']}: no row for mixture {name!r} (row {index + 2} of {paths['filenames'].name}); "
                "the two files must come from the same metadata release"
            )
        specs.append(
            MixtureSpec(
                split=split,
                index=index,
                output_filename=name,
                source_paths=tuple(row[f"s{k}_path"] for k in talkers),
                gains={fm: tuple(float(g) for g in matrix[index]) for fm, matrix in scaling.items()},
                subject=hrtf["subject"],
                directions=_directions(hrtf, talkers, paths["hrtf"], hrtf_row_number),
            )
        )
    return specs


def _directions(row: dict[str, str], talkers: range, path: Path, row_number: int) -> tuple[SourceDirection, ...]:
    """The talkers' directions of one ``hrtf_meta`` row, every field that names a file checked."""
    for column in ["subject"] + [f"{name}{k}" for name in ("azimuth", "elevation") for k in talkers]:
        check_name(row[column], row_place(path, row_number, column))
    directions = []
    for k in talkers:
        index = row[f"elevation_index{k}"]
        if not index.strip().lstrip("-").isdigit():
            raise _refuse(row_place(path, row_number, f"elevation_index{k}"), index, "a whole number")
        directions.append(SourceDirection(row[f"azimuth{k}"], row[f"elevation{k}"], int(index)))
    return tuple(directions)


# --------------------------------------------------------------------------------------------
# Own mode: draw metadata for any corpus in the WSJ0 layout and any HRTF set.
# --------------------------------------------------------------------------------------------


def list_talkers(wsj_root: Path, folders: Sequence[str]) -> dict[str, list[str]]:
    """Utterances per talker: ``{talker: [wsj0/<folder>/<talker>/<utt>.wav, ...]}``, sorted.

    Raises:
        MetadataError: a folder is absent or holds no talker.
    """
    talkers: dict[str, list[str]] = {}
    for folder in folders:
        base = Path(wsj_root) / "wsj0" / folder
        if not base.is_dir():
            raise MetadataError(
                f"{base}: not found. --wsj_root must contain wsj0/{folder}/<talker>/<utterance>.wav "
                "(the WSJ0 layout; convert .wv1 with sph2pipe if needed)"
            )
        for talker_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            files = sorted(
                f"wsj0/{folder}/{talker_dir.name}/{f.name}"
                for f in talker_dir.iterdir()
                if f.suffix.lower() in UTTERANCE_SUFFIXES
            )
            if files:
                talkers.setdefault(talker_dir.name, []).extend(files)
    if not talkers:
        raise MetadataError(f"no talker folders with wav files under {wsj_root}/wsj0/{{{','.join(folders)}}}")
    return talkers


def split_subjects(subjects: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Disjoint listener sets for tr/cv/tt in the published 27/9/9 proportions, drawn from ``seed``."""
    if len(subjects) < 3:
        raise MetadataError(
            f"{len(subjects)} HRTF subject(s): listener-independent splits need at least 3 (one per split)"
        )
    order = list(np.random.default_rng(seed).permutation(sorted(subjects)))
    n_tr = max(1, min(len(order) - 2, round(len(order) * SUBJECT_FRACTIONS["tr"])))
    n_cv = max(1, min(len(order) - n_tr - 1, round(len(order) * SUBJECT_FRACTIONS["cv"])))
    return {"tr": order[:n_tr], "cv": order[n_tr : n_tr + n_cv], "tt": order[n_tr + n_cv :]}


def _utterances_for_split(talkers: dict[str, list[str]], split: str) -> dict[str, list[str]]:
    """tr and cv share si_tr_s talkers (as WSJ0-2mix) but not utterances: cv takes each talker's
    last tenth (at least one utterance), tr the rest."""
    if split == "tt":
        return talkers
    chosen = {}
    for talker, utts in talkers.items():
        n_cv = max(1, len(utts) // 10) if len(utts) > 1 else 0
        chosen[talker] = utts[len(utts) - n_cv :] if split == "cv" else utts[: len(utts) - n_cv]
    return {talker: utts for talker, utts in chosen.items() if utts}


def active_rms(samples: np.ndarray, rate: int, frame_ms: float = 20.0, floor_db: float = -40.0) -> float:
    """RMS over the frames within ``floor_db`` of the loudest frame: a simple active speech level.

    WSJ0-2mix normalises with ITU-T P.56 ``activlev``; this keeps its intent (silence does not count)
    without its MATLAB-only implementation.
    """
    frame = max(1, int(rate * frame_ms / 1000))
    usable = len(samples) // frame * frame
    if usable == 0:
        return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    energy = np.mean(np.square(samples[:usable].reshape(-1, frame), dtype=np.float64), axis=1)
    active = energy[energy >= energy.max() * 10 ** (floor_db / 10)]
    return float(np.sqrt(active.mean()))


def draw_gains(
    sources: Sequence[np.ndarray], rate: int, levels_db: Sequence[float], peak_fraction: float = 0.9
) -> tuple[float, ...]:
    """Per-talker gains on raw int16 samples: active level ``levels_db`` (re. −25 dBFS), then a
    common factor so that the dry mixture peaks at most at ``peak_fraction`` of full scale.

    Args:
        sources: one ``[time]`` array per talker, raw int16 values at the output rate, already
            cut or padded to the output length.
        levels_db: relative level of each talker (dB).
    """
    reference = 32768 * 10 ** (-25 / 20)
    gains = [reference * 10 ** (level / 20) / max(active_rms(s, rate), 1e-9) for s, level in zip(sources, levels_db)]
    mixture = sum(g * s.astype(np.float64) for g, s in zip(gains, sources))
    peak = float(np.max(np.abs(mixture))) if len(mixture) else 0.0
    common = min(1.0, peak_fraction * 32767 / peak) if peak > 0 else 1.0
    return tuple(g * common for g in gains)


def _format_db(value: float) -> str:
    return f"{value:.5g}"


def draw_split(
    wsj_root: Path,
    hrtf_set,
    subjects: Sequence[str],
    n_spks: int,
    split: str,
    n_mixtures: int,
    seed: int,
    freqs: Sequence[str] = FREQS,
    modes: Sequence[str] = MODES,
) -> list[MixtureSpec]:
    """Draw ``n_mixtures`` mixtures for ``split``: distinct talkers, 0–5 dB relative levels
    (uniform, as WSJ0-2mix), one listener from ``subjects`` and a random grid direction per talker.

    Deterministic from ``seed`` and ``split``.
    """
    from binaural.data.mixing import fix_length, load_source  # local: mixing imports this module

    talkers = _utterances_for_split(list_talkers(wsj_root, TALKER_SETS[split]), split)
    if len(talkers) < n_spks:
        raise MetadataError(
            f"{split}: {len(talkers)} talker(s) with utterances under {wsj_root}/wsj0/"
            f"{{{','.join(TALKER_SETS[split])}}}, need at least {n_spks} different talkers per mixture"
        )
    rng = np.random.default_rng([seed, SPLITS.index(split), n_spks])
    names = sorted(talkers)
    specs: list[MixtureSpec] = []
    seen: set[tuple[str, ...]] = set()
    attempts = 0
    while len(specs) < n_mixtures:
        attempts += 1
        if attempts > 50 * n_mixtures + 100:
            raise MetadataError(
                f"{split}: could not draw {n_mixtures} distinct mixtures from {len(names)} talkers; "
                "lower --n_mixtures or add utterances"
            )
        chosen = rng.choice(len(names), size=n_spks, replace=False)
        paths = tuple(talkers[names[t]][rng.integers(len(talkers[names[t]]))] for t in chosen)
        if paths in seen:
            continue
        seen.add(paths)
        # Relative level uniform in [0, 5] dB between talkers, spelled into the name like WSJ0-2mix.
        half = rng.uniform(0, 2.5)
        levels = [half, -half] + [rng.uniform(-2.5, 2.5) for _ in range(n_spks - 2)]
        utterance_ids = [Path(p).stem for p in paths]
        output_filename = "_".join(f"{u}_{_format_db(l)}" for u, l in zip(utterance_ids, levels)) + ".wav"
        subject = subjects[rng.integers(len(subjects))]
        grid = hrtf_set.directions(subject)
        picks = rng.choice(len(grid), size=n_spks, replace=False)
        directions = tuple(SourceDirection(grid[p].azimuth, grid[p].elevation, grid[p].index) for p in picks)
        gains = {}
        for freq in freqs:
            dry = [load_source(Path(wsj_root), p, SAMPLE_RATES[freq], expected_rate=None) for p in paths]
            for mode in modes:
                gains[(freq, mode)] = draw_gains(fix_length(dry, mode), SAMPLE_RATES[freq], levels)
        specs.append(MixtureSpec(split, len(specs), output_filename, paths, gains, subject, directions))
    return specs


def check_unique_outputs(specs: Sequence[MixtureSpec], metadata_dir: Path) -> None:
    """Refuse a split in which two mixtures would be written to one file (``binaural_name``).

    Two rows with the same utterances, listener and directions but other gains give one name: the
    second would replace the first, and the split would hold fewer mixtures than its metadata.
    """
    first: dict[str, MixtureSpec] = {}
    for spec in specs:
        other = first.setdefault(spec.binaural_name, spec)
        if other is not spec:
            raise MetadataError(
                f"{metadata_dir}: mixtures {other.output_filename!r} and {spec.output_filename!r} of split "
                f"{spec.split} would both be written to {spec.binaural_name}; each mixture needs its own name: "
                "restore the metadata from its release. Nothing was written."
            )


def write_split(specs: Sequence[MixtureSpec], metadata_dir: Path, n_spks: int, split: str) -> dict[str, Path]:
    """Write ``specs`` in the official file formats (atomically), so the metadata can be shared."""
    metadata_dir = Path(metadata_dir)
    metadata_dir.mkdir(parents=True, exist_ok=True)
    paths = metadata_paths(metadata_dir, n_spks, split)
    talkers = range(1, n_spks + 1)

    def filenames(stream) -> None:
        writer = csv.writer(stream)
        writer.writerow(["output_filename"] + [f"s{k}_path" for k in talkers])
        for spec in specs:
            writer.writerow([spec.output_filename, *spec.source_paths])

    def hrtf(stream) -> None:
        writer = csv.writer(stream)
        columns = [f"{name}{k}" for name in ("azimuth", "elevation", "elevation_index") for k in talkers]
        writer.writerow(["utterance_id", "subject"] + columns)
        for spec in specs:
            d = spec.directions
            writer.writerow(
                [spec.output_filename, spec.subject]
                + [x.azimuth for x in d]
                + [x.elevation for x in d]
                + [x.elevation_index for x in d]
            )

    for kind, write in (("filenames", filenames), ("hrtf", hrtf)):
        with atomic_text(paths[kind]) as stream:
            write(stream)
    arrays = {
        f"scaling_wsjmix_{freq}_{mode}": np.array([spec.gains[(freq, mode)] for spec in specs], dtype=np.float64)
        for (freq, mode) in (specs[0].gains if specs else {})
    }
    arrays["utterance_id"] = np.array([spec.output_filename for spec in specs])
    with atomic_path(paths["scaling"]) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, **arrays)
    return paths


def write_json_atomic(path: Path, content: dict) -> None:
    """Write ``content`` as indented JSON through a temporary file."""
    with atomic_text(path) as stream:
        json.dump(content, stream, indent=2, sort_keys=True)


def check_sources(specs: Sequence[MixtureSpec], wsj_root: Path, check_rate: bool = True) -> None:
    """Check, before anything is written, that every utterance exists and is readable (16 kHz).

    Raises:
        MetadataError: naming the first bad file, its mixture, and how many other files are bad.
    """
    from binaural.io.audio import FLOAT_SUBTYPES, AudioFileError, read_float, resolve_utterance

    problems: list[str] = []
    checked: set[str] = set()
    for spec in specs:
        for relative in spec.source_paths:
            if relative in checked:
                continue
            checked.add(relative)
            try:
                path = resolve_utterance(Path(wsj_root), relative)
                info = check_readable(path, WSJ0_RATE if check_rate else None)
                if info.subtype in FLOAT_SUBTYPES:  # only float files can hold NaN: read those (WSJ0 is int16)
                    read_float(path)
            except AudioFileError as error:
                problems.append(f"{error} (used by {spec.split}/{spec.output_filename})")
    if problems:
        more = f"; {len(problems) - 1} other utterance(s) are missing or bad as well" if len(problems) > 1 else ""
        raise MetadataError(f"{problems[0]}{more}. Nothing was written. Check --wsj_root ({wsj_root}).")
