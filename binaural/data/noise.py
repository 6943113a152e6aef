"""DEMAND noise for the noisy Binaural-WSJ0Mix variant: the corpus, the public segment draws, binaural noise.

The public noisy set (``create_wav_2speakers_noise.py`` + ``run_sample_noise.py`` +
``noisesampler.py`` of huangzj421/BinauralWSJ0Mix) builds WHAM!-style mixtures with DEMAND noise:

- ``file_splits.csv`` assigns six DEMAND environments to each split (``Split`` Train/Valid/Test,
  ``Noise Band`` 0), channel 1 only (``demand/<ENV>/ch01.wav``);
- ``np.random.seed(28)`` once, then for Train, Valid, Test in that order and every row of
  ``mix_2_spk_filenames_<split>.csv``: ``randint(0, 32000, size=2)`` (noise before / after the
  speech), ``uniform(-2.5, 15)`` (an SNR the build never uses), ``randint(0, 1)`` (the noise band),
  ``choice(files, p=minutes / total)`` and ``randint(0, frames - length)`` (the segment start), with
  ``length`` = longest utterance (16 kHz samples) + the two paddings;
- the segment is written as float32 and read back; the build scales it by
  ``scaling_wham_noise_<f>_<m>`` (after resampling to 8 kHz), copies it to both ears, places the
  speech at ``speech_start_sample_16k`` (halved at 8 kHz) and writes float32 wavs.

:func:`replay_public_draws` replays that random stream exactly, with two documented deviations
where the public code cannot run: its SNR check (``while snr > SNR_THRESH``) compares the noise
with itself (the "denoised" root is the noise root), so it never ends; the first drawn segment is
taken. And the speech start comes from WHAM!'s npz, not from the seed-28 draw, so in max mode a
segment can be too short for ``start + speech`` (the public script then fails to broadcast): the
segment is extended further into the same recording.

Binaural noise (``binaural``): ``"none"`` copies the mono noise to both ears, as published (two
identical ears, which no real noise field gives); ``"demand"`` takes the right ear from a second
DEMAND microphone (``ch02``, same time span); ``"diffuse"`` synthesises the right ear from an
independent stretch of the same recording so that the two ears have the interaural coherence of a
diffuse field at the spherical head of :mod:`binaural.data.hrtf`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import istft, resample_poly, stft

from binaural.io.atomic import atomic_path, atomic_text, exclusive
from binaural.io.audio import AudioFileError, check_readable, resolve_utterance
from binaural.io.download import DownloadError, RemoteArchive, download_file, fetch_archive
from binaural.errors import RecipeError
from binaural.data.layout import SAMPLE_RATES, SPLITS, WSJ0_RATE
from binaural.data.mixing import fix_length, resample, wham_speech_sources

logger = logging.getLogger(__name__)

NOISE_RATE = WSJ0_RATE  # DEMAND at 16 kHz, as the utterances
PUBLIC_NOISE_SEED = 28
# constants.py of the public scripts.
NUM_BANDS = 1
PRE_NOISE_SAMPLES = 32000  # PRE_NOISE_SECONDS (2.0) * SAMPLERATE, a float there
MIN_SNR_DB = -2.5
MAX_SNR_DB = 15.0
MAX_SAMPLE_AMP = 0.95
# Own mode: WHAM!-like SNR of talker 1 against the noise (dB), uniform.
OWN_SNR_DB = (-6.0, 3.0)
SPLIT_NAMES = {"Train": "tr", "Valid": "cv", "Test": "tt"}
BINAURAL_MODES = ("none", "demand", "diffuse")
DEMAND_SECOND_CHANNEL = 2

# file_splits.csv of the public scripts (used when a metadata folder has none, e.g. own mode).
DEMAND_SPLITS = {
    "tr": ("DWASHING", "DKITCHEN", "NFIELD", "NPARK", "OOFFICE", "OMEETING"),
    "tt": ("PSTATION", "PRESTO", "STRAFFIC", "SCAFE", "TMETRO", "TCAR"),
    "cv": ("DLIVING", "NRIVER", "OHALLWAY", "PCAFETER", "SPSQUARE", "TBUS"),
}
FILE_SPLITS_NAME = "file_splits.csv"

# DEMAND on Zenodo (https://zenodo.org/records/1227121): one zip per environment, extracting to
# <ENV>/ch01.wav ... ch16.wav. Sizes and MD5 as Zenodo lists them. SCAFE has no 16 kHz zip: its
# 48 kHz one is downloaded and the channels needed are resampled to 16 kHz.
DEMAND_ZENODO_URL = "https://zenodo.org/records/1227121/files"
DEMAND_URL_ENV_VAR = "DEMAND_URL"  # a mirror (http(s)/file URL or local folder) holding the same zip names
DEMAND_16K_ARCHIVES = {
    "DKITCHEN": (110_501_049, "7ffbf52d7f4699f96927846103dc8788"),
    "DLIVING": (80_170_627, "46741384d9e434a0bd8b3ec1830b6052"),
    "DWASHING": (102_343_250, "7e5ee9437ce9409c5f9a779b6212a240"),
    "NFIELD": (86_536_782, "a740046c6f4e174e16f5d568aaec5024"),
    "NPARK": (86_029_332, "80f1385a34d7f1705758926b57f138ce"),
    "NRIVER": (98_689_565, "54264db61d3fe073fb81f2e40e0d19b5"),
    "OHALLWAY": (77_941_854, "fe918bbb0e63e73d09ba7f4843ef33f1"),
    "OMEETING": (82_703_355, "62f7cfe7fe6d30b7d8a215fe37c2dfd2"),
    "OOFFICE": (88_995_191, "7b61cc2d182d5a654cb9c3101ddd4041"),
    "PCAFETER": (107_431_494, "99927d148128254141a9417d051510bb"),
    "PRESTO": (111_292_815, "b98d2e6854eeebb397f29a8ad7457092"),
    "PSTATION": (119_441_094, "d7448009f6c2aeb6ba570375df1750a3"),
    "SPSQUARE": (110_928_528, "205d0e7b8fe74504a2f8d252fc414b9e"),
    "STRAFFIC": (118_572_691, "2efa87262f272bbf9ba578088e81939c"),
    "TBUS": (128_916_709, "706b11b0d8504f9f3b3f3211e91b3863"),
    "TCAR": (130_045_975, "4d930012796bd298932245a26189f973"),
    "TMETRO": (126_589_090, "95daf4df678e13b120e14211e6d89571"),
}
DEMAND_48K_ONLY = ("SCAFE",)


class NoiseError(RecipeError):
    """Noise corpus or noise metadata that is missing, inconsistent or unusable."""


# --------------------------------------------------------------------------------------------
# Noise files: names as file_splits.csv spells them, paths in a DEMAND tree
# --------------------------------------------------------------------------------------------

_NAME = re.compile(r"^(?:.*/)?(?P<env>[^/]+)/ch(?P<channel>\d+)\.wav$")


def environment_of(name: str) -> str:
    """``"demand/DWASHING/ch01.wav"`` -> ``"DWASHING"``."""
    match = _NAME.match(name.replace("\\", "/"))
    if not match or match.group("env") in (".", "..") or "\x00" in name:
        raise NoiseError(f"noise file name {name!r} is not of the form [demand/]<ENV>/chNN.wav")
    return match.group("env")


def noise_path(root: Path, name: str, channel: int = 1) -> Path:
    """Where the ``channel`` of the recording ``name`` (``demand/<ENV>/ch01.wav``) lies under ``root``."""
    return Path(root) / environment_of(name) / f"ch{channel:02d}.wav"


def read_file_splits(path: Path) -> dict[str, list[str]]:
    """``file_splits.csv`` -> ``{"tr": [names], "cv": [...], "tt": [...]}`` (noise band 0, file order).

    Raises:
        NoiseError: the file is absent or lacks the public columns.
    """
    path = Path(path)
    if not path.exists():
        raise NoiseError(
            f"{path}: not found. It says which DEMAND environments belong to which split; use the public "
            "metadata (https://github.com/huangzj421/BinauralWSJ0Mix, metadata/file_splits.csv)"
        )
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or any(column not in rows[0] for column in ("Filename", "Split", "Noise Band")):
        raise NoiseError(f"{path}: expected the columns Filename, Split, Noise Band")
    splits: dict[str, list[str]] = {split: [] for split in SPLIT_NAMES.values()}
    for row in rows:
        if row["Split"] not in SPLIT_NAMES:
            raise NoiseError(f"{path}: unknown split {row['Split']!r} (expected {', '.join(SPLIT_NAMES)})")
        if int(row["Noise Band"]) < NUM_BANDS:
            splits[SPLIT_NAMES[row["Split"]]].append(row["Filename"])
    return splits


def default_file_splits() -> dict[str, list[str]]:
    return {split: [f"demand/{env}/ch01.wav" for env in envs] for split, envs in DEMAND_SPLITS.items()}


def write_file_splits(path: Path, files: Mapping[str, Sequence[str]]) -> None:
    """Write ``files`` in the public ``file_splits.csv`` format."""
    long_names = {short: long for long, short in SPLIT_NAMES.items()}
    with atomic_text(path) as stream:
        writer = csv.writer(stream)
        writer.writerow(["Filename", "Split", "Noise Band"])
        for split in ("tr", "tt", "cv"):
            for name in files[split]:
                writer.writerow([name, long_names[split], 0])


# --------------------------------------------------------------------------------------------
# The DEMAND corpus: a local copy, or the Zenodo zips
# --------------------------------------------------------------------------------------------


def _demand_base_url() -> tuple[str, bool]:
    """The base URL of the environment zips and whether it is Zenodo (whose sizes/MD5 we know)."""
    override = os.environ.get(DEMAND_URL_ENV_VAR, "").strip()
    if not override:
        return DEMAND_ZENODO_URL, True
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", override):
        override = Path(override).expanduser().resolve().as_uri()
    return override.rstrip("/"), False


def demand_archive(environment: str) -> tuple[RemoteArchive, str | None]:
    """The zip of one DEMAND environment (16 kHz; 48 kHz for SCAFE) and its MD5 when known."""
    base, official = _demand_base_url()
    rate = "48k" if environment in DEMAND_48K_ONLY else "16k"
    size, md5 = DEMAND_16K_ARCHIVES.get(environment, (None, None)) if official and rate == "16k" else (None, None)
    query = "?download=1" if official else ""
    archive = RemoteArchive(
        url=f"{base}/{environment}_{rate}.zip{query}", top_folder=environment, required=("ch01.wav",), size=size
    )
    return archive, md5


def _md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_environment(environment: str, root: Path, channels: Sequence[int], progress: bool) -> None:
    """Download, verify (size, MD5, zip CRCs, members) and extract one environment under ``root``."""
    archive, md5 = demand_archive(environment)
    staging = root / ".downloads"
    zip_path = download_file(
        archive.url, staging / f"{environment}.zip", size=archive.size, progress=progress
    )
    try:
        if md5 is not None and _md5_of(zip_path) != md5:
            raise DownloadError(
                f"{zip_path} (from {archive.url}) does not have the MD5 {md5} Zenodo lists; it was deleted, "
                "rerun to download it again"
            )
        local = RemoteArchive(url=zip_path.resolve().as_uri(), top_folder=environment, required=archive.required)
        if environment not in DEMAND_48K_ONLY:
            fetch_archive(local, root, progress=False, name=environment)
            return
        high = fetch_archive(local, staging, progress=False, name=f"{environment}_48k")
        for channel in channels:
            data, rate = sf.read(str(high / f"ch{channel:02d}.wav"), dtype="float64")
            target = root / environment / f"ch{channel:02d}.wav"
            with atomic_path(target) as temporary:
                sf.write(str(temporary), resample_poly(data, NOISE_RATE, rate), NOISE_RATE, subtype="FLOAT", format="WAV")
        shutil.rmtree(high, ignore_errors=True)
    finally:
        zip_path.unlink(missing_ok=True)


def ensure_demand(
    noise_root: str | Path | None,
    names: Iterable[str],
    channels: Sequence[int] = (1,),
    download_root: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """The DEMAND tree holding every ``channel`` of every recording in ``names``.

    Args:
        noise_root: a local copy (``<root>/<ENV>/chNN.wav``, as the Zenodo zips extract; a root with
            a ``demand/`` subfolder, the public scripts' layout, is accepted too), or None to
            download the missing environments from Zenodo into ``download_root``.
    Raises:
        NoiseError: a local copy lacks files (all named, with where to get them).
        DownloadError: the download failed (with what to do by hand).
    """
    names = sorted(set(names))
    if noise_root is not None:
        root = Path(noise_root).expanduser()
        if not root.is_dir():
            raise NoiseError(f"--noise_root {root}: no such folder")
        if (root / "demand").is_dir() and not any((root / environment_of(n)).is_dir() for n in names):
            root = root / "demand"
        missing = [str(noise_path(root, n, c)) for n in names for c in channels if not noise_path(root, n, c).exists()]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise NoiseError(
                f"DEMAND recording(s) not found: {', '.join(missing[:3])}{more}. --noise_root must hold "
                "<ENV>/chNN.wav (16 kHz) as the DEMAND zips of https://zenodo.org/records/1227121 extract "
                "(<ENV>_16k.zip; SCAFE exists at 48 kHz only and must be resampled), or leave --noise_root out "
                "to download them. Nothing was written."
            )
        return root
    if download_root is None:
        raise NoiseError("no --noise_root and nowhere to download DEMAND to")
    root = Path(download_root)
    environments = sorted({environment_of(n) for n in names})
    todo = [e for e in environments if any(not (root / e / f"ch{c:02d}.wav").exists() for c in channels)]
    if not todo:
        return root
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / ".demand.lock", f"the DEMAND download into {root}"):
        _download_environments(root, environments, channels, progress)
    return root


def _download_environments(root: Path, environments: Sequence[str], channels: Sequence[int], progress: bool) -> None:
    """Fetch the environments that lack a channel (the caller holds the download lock)."""
    todo = [e for e in environments if any(not (root / e / f"ch{c:02d}.wav").exists() for c in channels)]
    for environment in todo:
        logger.info("downloading DEMAND %s into %s", environment, root)
        try:
            if (root / environment).is_dir() and environment not in DEMAND_48K_ONLY:
                shutil.rmtree(root / environment)  # lacks a channel: fetch the environment again
            _fetch_environment(environment, root, channels, progress)
        except DownloadError as error:
            archive, _ = demand_archive(environment)
            raise DownloadError(
                f"{error}\nTo proceed by hand: download {archive.url} (and the other environments of "
                f"https://zenodo.org/records/1227121 that file_splits.csv names) on a connected machine, unzip "
                f"them so that <root>/<ENV>/ch01.wav exists (SCAFE: resample SCAFE_48k to 16 kHz), and pass "
                f"--noise_root <root>; or set {DEMAND_URL_ENV_VAR} to a mirror holding the same zip names."
            ) from error
    staging = root / ".downloads"
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()


def check_recordings(root: Path, names: Iterable[str], channels: Sequence[int]) -> tuple[dict[str, int], dict[str, int]]:
    """Header check of every recording (16 kHz, mono).

    Returns:
        the frame count of channel 1 per name (what the draws use), and the shortest over
        ``channels`` (what a segment must fit in).
    Raises:
        NoiseError: naming the first bad file. Nothing is written before this check.
    """
    frames, shortest = {}, {}
    for name in sorted(set(names)):
        for channel in channels:
            path = noise_path(root, name, channel)
            try:
                info = check_readable(path, NOISE_RATE)
            except AudioFileError as error:
                raise NoiseError(f"{error}. Nothing was written.") from error
            if info.channels != 1:
                raise NoiseError(f"{path}: {info.channels} channels, expected one DEMAND microphone. Nothing was written.")
            if channel == 1:
                frames[name] = info.frames
            shortest[name] = min(shortest.get(name, info.frames), info.frames)
    return frames, shortest


# --------------------------------------------------------------------------------------------
# Which segment of which recording each mixture gets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseSegment:
    """A stretch ``[start, stop)`` (16 kHz samples) of one DEMAND recording (file_splits spelling)."""

    file: str
    start: int
    stop: int


@dataclass(frozen=True)
class NoiseInfo:
    """What the noisy build needs per mixture besides its :class:`~binaural.data.metadata.MixtureSpec`."""

    segment: NoiseSegment
    speech_start_16k: int
    speech_gains: dict  # (freq, mode) -> scaling_wham_speech
    noise_gains: dict  # (freq, mode) -> scaling_wham_noise
    frames: int | None = None  # length of the recording (16 kHz samples), for the diffuse model


def covering_segment(segment: NoiseSegment, needed: int, frames: int) -> NoiseSegment:
    """``segment``, extended further into its recording when it is shorter than ``needed`` samples.

    The public build places the speech at the npz's ``speech_start_sample_16k``, which can exceed
    the paddings of the seed-28 draw: its max mode then fails. Extending the segment keeps every
    sample the public build would have used and gives it the room it lacked; at the end of the
    recording the segment is moved back.

    Raises:
        NoiseError: the recording itself is shorter than ``needed``.
    """
    if segment.stop - segment.start >= needed:
        return segment
    if needed > frames:
        raise NoiseError(f"{segment.file}: {frames} samples, shorter than the {needed} a mixture needs")
    start = min(segment.start, frames - needed)
    return NoiseSegment(segment.file, start, start + needed)


def utterance_length(wsj_root: Path, relative: str, rate: int = NOISE_RATE) -> int:
    """Samples of an utterance at ``rate`` (``resample_poly`` rounds up), from its header."""
    info = check_readable(resolve_utterance(Path(wsj_root), relative))
    return info.frames if info.samplerate == rate else math.ceil(info.frames * rate / info.samplerate)


def _read_filenames(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise NoiseError(
            f"{path}: not found; the public noise draws run over the tr, cv and tt lists in turn, so all "
            "three are needed even to build one split"
        )
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def replay_public_draws(
    metadata_dir: Path, wsj_root: Path, root: Path, frames: Mapping[str, int]
) -> dict[str, dict[str, NoiseSegment]]:
    """The noise segments of the public noisy set: ``{split: {output_filename: segment}}``.

    Replays ``run_sample_noise.sample_noise`` (see the module docstring) with the same calls on a
    ``RandomState(28)``, taking the first drawn segment (the public SNR check never ends).

    Raises:
        NoiseError: a file list or utterance is missing, or a recording is too short.
    """
    files = read_file_splits(Path(metadata_dir) / FILE_SPLITS_NAME)
    rng = np.random.RandomState(PUBLIC_NOISE_SEED)
    lengths: dict[str, int] = {}
    segments: dict[str, dict[str, NoiseSegment]] = {}
    for split in SPLIT_NAMES.values():
        names = files[split]
        if not names:
            raise NoiseError(f"{FILE_SPLITS_NAME} names no noise recording for {split}")
        minutes = np.array([frames[n] / NOISE_RATE / 60 for n in names])
        weights = minutes / np.sum(minutes)
        segments[split] = {}
        for row in _read_filenames(Path(metadata_dir) / f"mix_2_spk_filenames_{split}.csv"):
            speech = 0
            for column in ("s1_path", "s2_path"):
                relative = row[column]
                if relative not in lengths:
                    try:
                        lengths[relative] = utterance_length(wsj_root, relative)
                    except AudioFileError as error:
                        raise NoiseError(
                            f"{error} (the public noise draws need the length of every utterance of tr, cv "
                            "and tt). Nothing was written."
                        ) from error
                speech = max(speech, lengths[relative])
            before, after = rng.randint(0, PRE_NOISE_SAMPLES, size=2)
            rng.uniform(MIN_SNR_DB, MAX_SNR_DB)  # target SNR: drawn, never used by the build
            length = speech + int(before) + int(after)
            rng.randint(0, NUM_BANDS)
            name = names[int(rng.choice(len(names), p=weights))]
            if frames[name] - length <= 0:
                raise NoiseError(f"{name}: {frames[name]} samples, shorter than the {length} the draw needs")
            start = int(rng.randint(0, frames[name] - length))
            segments[split][row["output_filename"]] = NoiseSegment(name, start, start + length)
    return segments


NOISE_META_COLUMNS = ("utterance_id", "noise_file", "start_sample_16k", "end_sample_16k")


def write_noise_meta(path: Path, segments: Mapping[str, NoiseSegment]) -> None:
    """``noise_meta_<split>.csv`` as the public ``run_sample_noise`` writes it (without its SNR column)."""
    with atomic_text(path) as stream:
        writer = csv.writer(stream)
        writer.writerow(NOISE_META_COLUMNS)
        for name, segment in segments.items():
            writer.writerow([name, segment.file, segment.start, segment.stop])


def read_noise_meta(path: Path) -> dict[str, NoiseSegment]:
    if not Path(path).exists():
        raise NoiseError(f"{path}: not found (noise segments of the split)")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and any(c not in rows[0] for c in NOISE_META_COLUMNS):
        raise NoiseError(f"{path}: expected the columns {', '.join(NOISE_META_COLUMNS)}")
    return {
        r["utterance_id"]: NoiseSegment(r["noise_file"], int(r["start_sample_16k"]), int(r["end_sample_16k"]))
        for r in rows
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def public_segments(
    metadata_dir: Path, wsj_root: Path, root: Path, frames: Mapping[str, int], cache_dir: Path
) -> tuple[dict[str, dict[str, NoiseSegment]], dict | None]:
    """:func:`replay_public_draws`, or its cache in ``cache_dir`` (``noise_meta_<split>.csv`` + a
    stamp of the inputs: file lists, recording lengths and seed), so later runs skip reading every
    utterance header.

    Returns:
        the segments, and the stamp to :func:`save_public_segments` when they were computed afresh
        (None when read from the cache). Nothing is written here.
    """
    metadata_dir, cache_dir = Path(metadata_dir), Path(cache_dir)
    stamp = {
        "seed": PUBLIC_NOISE_SEED,
        "file_splits": _sha256(metadata_dir / FILE_SPLITS_NAME),
        "filenames": {
            s: _sha256(metadata_dir / f"mix_2_spk_filenames_{s}.csv")
            for s in SPLIT_NAMES.values()
            if (metadata_dir / f"mix_2_spk_filenames_{s}.csv").exists()
        },
        "frames": dict(sorted(frames.items())),
    }
    stamp_path = cache_dir / "noise_draws.json"
    paths = {s: cache_dir / f"noise_meta_{s}.csv" for s in SPLIT_NAMES.values()}
    if stamp_path.exists() and all(p.exists() for p in paths.values()):
        try:
            if json.loads(stamp_path.read_text()) == stamp:
                return {s: read_noise_meta(p) for s, p in paths.items()}, None
        except (ValueError, NoiseError):
            pass
    logger.info("replaying the public noise draws (seed %d) over tr, cv and tt", PUBLIC_NOISE_SEED)
    return replay_public_draws(metadata_dir, wsj_root, root, frames), stamp


def save_public_segments(cache_dir: Path, segments: Mapping[str, Mapping[str, NoiseSegment]], stamp: dict) -> None:
    """Write what :func:`public_segments` computed: ``noise_meta_<split>.csv`` and the stamp (last)."""
    cache_dir = Path(cache_dir)
    for split, table in segments.items():
        write_noise_meta(cache_dir / f"noise_meta_{split}.csv", table)
    with atomic_text(cache_dir / "noise_draws.json") as stream:
        json.dump(stamp, stream, indent=2, sort_keys=True)


def load_wham_scaling(
    scaling_path: Path, ids: Sequence[str], freqs: Sequence[str], modes: Sequence[str]
) -> dict[str, tuple[dict, dict, int]]:
    """``{output_filename: (speech_gains, noise_gains, speech_start_16k)}`` from a scaling npz.

    Arguments
    ---------
    ids : sequence of str
        The mixtures' ``output_filename`` in the rows' order, from the split's filenames CSV (the
        npz's own ``utterance_id`` is compared with them only when it is a plain string array: the
        official one is an object array, which only an unpickling load could read).

    Raises
    ------
    NoiseError
        A WHAM! key is missing, or the npz rows do not match the CSV's.
    """
    from binaural.data.metadata import MetadataError, npz_keys, read_npz

    keys = [f"scaling_wham_{kind}_{f}_{m}" for kind in ("speech", "noise") for f in freqs for m in modes]
    lacking = [k for k in keys + ["speech_start_sample_16k"] if k not in npz_keys(scaling_path)]
    if lacking:
        raise NoiseError(
            f"{scaling_path}: missing key(s) {lacking}; the noisy variant needs the WHAM! scaling keys of the "
            "public metadata (or draw them with --own_metadata)"
        )
    arrays = read_npz(scaling_path, keys + ["speech_start_sample_16k"])
    try:
        stored = [str(u) for u in read_npz(scaling_path, ["utterance_id"])["utterance_id"]]
    except MetadataError:  # absent, or an object array (official): the CSV's order stands
        stored = None
    if stored is not None and stored != list(ids):
        raise NoiseError(f"{scaling_path}: its utterance_id rows are not those of the split's filenames CSV")
    starts = arrays["speech_start_sample_16k"]
    if len(starts) != len(ids):
        raise NoiseError(f"{scaling_path}: {len(starts)} rows for the {len(ids)} mixtures of the filenames CSV")
    result = {}
    for i, name in enumerate(ids):
        speech = {(f, m): arrays[f"scaling_wham_speech_{f}_{m}"][i] for f in freqs for m in modes}
        noise = {(f, m): arrays[f"scaling_wham_noise_{f}_{m}"][i] for f in freqs for m in modes}
        result[name] = (speech, noise, int(starts[i]))
    return result


# --------------------------------------------------------------------------------------------
# Reading a segment, binaural
# --------------------------------------------------------------------------------------------


def read_segment(root: Path, segment: NoiseSegment, channel: int = 1) -> np.ndarray:
    """``[time]`` float32 samples of ``segment`` (what the public float32 noise file holds)."""
    data, _ = sf.read(
        str(noise_path(root, segment.file, channel)), start=segment.start, stop=segment.stop,
        dtype="float64", always_2d=True,
    )
    if len(data) != segment.stop - segment.start:
        raise NoiseError(f"{noise_path(root, segment.file, channel)}: ends before sample {segment.stop}")
    return data[:, 0].astype(np.float32)


@lru_cache(maxsize=8)
def diffuse_coherence(n_fft: int, rate: int, radius_m: float = 0.0875) -> np.ndarray:
    """Interaural coherence of a diffuse field at the Brown–Duda spherical head, per rfft bin.

    Plane waves from every direction with equal power: in interaural-polar coordinates the
    lateral angle has density ``cos(lateral)``, and the head's response depends on it alone, so
    ``Re sum w H_L conj(H_R) / sqrt(sum w |H_L|^2 sum w |H_R|^2)`` over a fine lateral grid.
    """
    from binaural.data.hrtf import ear_angles_deg, ear_delay_s, head_shadow_response

    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    cross = np.zeros(len(freqs))
    power = np.zeros((2, len(freqs)))
    for lateral in np.arange(-89.5, 90.0, 1.0):
        weight = math.cos(math.radians(lateral))
        ears = [
            head_shadow_response(freqs, theta, radius_m) * np.exp(-2j * np.pi * freqs * ear_delay_s(theta, radius_m))
            for theta in ear_angles_deg(lateral)
        ]
        cross += weight * np.real(ears[0] * np.conj(ears[1]))
        power += weight * np.abs(np.stack(ears)) ** 2
    return cross / np.sqrt(power[0] * power[1])


def diffuse_partner(left: np.ndarray, independent: np.ndarray, rate: int, n_fft: int = 512) -> np.ndarray:
    """A right-ear signal with the diffuse-field coherence to ``left``, built from ``independent``.

    Per STFT bin: ``R = G L + sqrt(1 - G^2) N`` (the Cholesky factor of ``[[1, G], [G, 1]]``), with
    ``N`` the independent noise scaled to ``left``'s power in that bin; ``G`` is
    :func:`diffuse_coherence`.

    Args:
        left, independent: ``[time]`` of equal length (two uncorrelated stretches of one recording).
    """
    hop = n_fft // 4
    _, _, spec_l = stft(left, nperseg=n_fft, noverlap=n_fft - hop, boundary="even", padded=True)
    _, _, spec_n = stft(independent, nperseg=n_fft, noverlap=n_fft - hop, boundary="even", padded=True)
    power_l = np.mean(np.abs(spec_l) ** 2, axis=1, keepdims=True)
    power_n = np.mean(np.abs(spec_n) ** 2, axis=1, keepdims=True)
    spec_n = spec_n * np.sqrt(power_l / np.maximum(power_n, 1e-30))
    gamma = np.clip(diffuse_coherence(n_fft, rate), -1.0, 1.0)[:, None]
    _, right = istft(gamma * spec_l + np.sqrt(1 - gamma**2) * spec_n, nperseg=n_fft, noverlap=n_fft - hop, boundary=True)
    right = right[: len(left)]
    return np.pad(right, (0, len(left) - len(right))).astype(np.float32)


def _independent_segment(segment: NoiseSegment, frames: int) -> NoiseSegment:
    """A stretch of the same recording as long as ``segment``, half a recording away (deterministic)."""
    length = segment.stop - segment.start
    span = max(1, frames - length)
    start = (segment.start + frames // 2) % span
    return NoiseSegment(segment.file, start, start + length)


def noise_channels(binaural: str) -> tuple[int, ...]:
    """DEMAND channels a binaural mode reads."""
    return (1, DEMAND_SECOND_CHANNEL) if binaural == "demand" else (1,)


def binaural_noise(
    root: Path, segment: NoiseSegment, rate: int, gain: float, binaural: str = "none", frames: int | None = None
) -> np.ndarray:
    """``[time, 2]`` noise of one mixture at ``rate``: read, resampled, scaled, given two ears.

    Order as the public ``read_scaled_wav``: float32 segment -> ``resample_poly`` -> times ``gain``.

    Args:
        binaural: ``"none"`` (the same noise in both ears, as published), ``"demand"`` (right ear
            from channel 2, same span) or ``"diffuse"`` (right ear synthesised, :func:`diffuse_partner`;
            needs ``frames``, the recording's length).
    """
    left = read_segment(root, segment, 1)
    if binaural == "none":
        mono = resample(left, NOISE_RATE, rate) * gain
        return np.stack((mono, mono), 1)
    if binaural == "demand":
        right = read_segment(root, segment, DEMAND_SECOND_CHANNEL)
    elif binaural == "diffuse":
        if frames is None:
            frames = sf.info(str(noise_path(root, segment.file))).frames
        other = read_segment(root, _independent_segment(segment, frames), 1)
        right = diffuse_partner(left, other, NOISE_RATE)
    else:
        raise NoiseError(f"binaural noise must be one of {BINAURAL_MODES}, got {binaural!r}")
    return np.stack([resample(ear, NOISE_RATE, rate) * gain for ear in (left, right)], 1)


# --------------------------------------------------------------------------------------------
# Own mode: draw segments, speech start and WHAM!-like gains
# --------------------------------------------------------------------------------------------


def draw_noise(
    specs: Sequence,
    split: str,
    wsj_root: Path,
    root: Path,
    files: Sequence[str],
    frames: Mapping[str, int],
    seed: int,
    freqs: Sequence[str],
    modes: Sequence[str],
    hrtf_set=None,
    snr_db: tuple[float, float] = OWN_SNR_DB,
) -> dict[str, NoiseInfo]:
    """Noise of every own-mode mixture of ``split``, deterministic from ``seed``.

    Per mixture: a recording of the split (weighted by length, as the public sampler), up to 2 s of
    noise before and after the speech (speech start and segment drawn as the public sampler does),
    and an SNR of talker 1 against the noise uniform in ``snr_db`` (WHAM!: -6..+3 dB): the speech
    gain sets it on the dry signals (the binaural images keep their energy), the noise gain stays
    1, and both are lowered together when an output (the binaural ones when ``hrtf_set`` is given)
    would peak above 0.95 (WHAM!'s rule).
    """
    from binaural.data.mixing import load_source, place_in_noise, spatialize, wham_mixtures

    rng = np.random.default_rng([seed, SPLITS.index(split), PUBLIC_NOISE_SEED])
    minutes = np.array([frames[n] for n in files], dtype=np.float64)
    weights = minutes / minutes.sum()
    result = {}
    for spec in specs:
        speech = max(utterance_length(wsj_root, p) for p in spec.source_paths)
        before, after = (int(v) for v in rng.integers(0, PRE_NOISE_SAMPLES, size=2))
        name = files[int(rng.choice(len(files), p=weights))]
        length = speech + before + after
        if frames[name] < length:
            raise NoiseError(f"{name}: {frames[name]} samples, shorter than the {length} a mixture needs")
        start = int(rng.integers(0, frames[name] - length + 1))
        segment = NoiseSegment(name, start, start + length)
        snr = float(rng.uniform(*snr_db))
        speech_gains, noise_gains = {}, {}
        for freq in freqs:
            rate = SAMPLE_RATES[freq]
            raw = [load_source(Path(wsj_root), p, rate, expected_rate=None) for p in spec.source_paths]
            noise = binaural_noise(root, segment, rate, 1.0)[:, 0]
            for mode in modes:
                dry = fix_length(wham_speech_sources(raw, spec.gains[(freq, mode)], 1.0), mode)
                heard = dry
                if hrtf_set is not None:
                    heard = [
                        spatialize(x, hrtf_set.hrir(spec.subject, d.azimuth, d.elevation_index, rate))
                        for x, d in zip(dry, spec.directions)
                    ]
                placed, cut = place_in_noise(heard, noise if hrtf_set is None else np.stack((noise, noise), 1),
                                             mode, before, rate)
                region = slice(before // (NOISE_RATE // rate), before // (NOISE_RATE // rate) + len(dry[0]))
                noise_energy = float(np.sum(noise[region] ** 2))
                speech_energy = float(np.sum(dry[0] ** 2))
                gain = math.sqrt(noise_energy / max(speech_energy, 1e-30) * 10 ** (snr / 10)) if speech_energy > 0 else 1.0
                scaled = [p * gain for p in placed]
                signals = [*scaled, cut, *wham_mixtures(scaled, cut).values()]
                peak = max(float(np.max(np.abs(x))) for x in signals)
                level = min(1.0, MAX_SAMPLE_AMP / peak) if peak > 0 else 1.0
                speech_gains[(freq, mode)] = gain * level
                noise_gains[(freq, mode)] = level
        result[spec.output_filename] = NoiseInfo(segment, before, speech_gains, noise_gains)
    return result


def add_wham_keys(scaling_path: Path, infos: Mapping[str, NoiseInfo], freqs: Sequence[str], modes: Sequence[str]) -> None:
    """Add the WHAM! keys (``scaling_wham_{speech,noise}_<f>_<m>``, ``speech_start_sample_16k``) of
    ``infos`` to an own-mode scaling npz, in its ``utterance_id`` order (atomically)."""
    from binaural.data.metadata import npz_keys, read_npz

    arrays = read_npz(scaling_path, npz_keys(scaling_path))  # own-mode files: numbers and strings only
    ids = [str(u) for u in arrays["utterance_id"]]
    for f in freqs:
        for m in modes:
            arrays[f"scaling_wham_speech_{f}_{m}"] = np.array([infos[u].speech_gains[(f, m)] for u in ids], dtype=np.float64)
            arrays[f"scaling_wham_noise_{f}_{m}"] = np.array([infos[u].noise_gains[(f, m)] for u in ids], dtype=np.float64)
    arrays["speech_start_sample_16k"] = np.array([infos[u].speech_start_16k for u in ids], dtype=np.int64)
    with atomic_path(scaling_path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, **arrays)
