"""Binaural room impulse responses for the reverberant Binaural-WSJ0Mix variant.

Two sources answer ``brir(reverb_time, azimuth, rate) -> [taps, 2]`` (left, right):

- :class:`CattBRIRSet`: the BRIR Sim Set of the University of Surrey IoSR (simulated with
  CATT-Acoustic; ``CATT_RIRs/Binaural/16k/<rt>/CATT_<rt>_<azimuth>.wav``, stereo, 16 kHz, reverb
  times ``0_0s`` ... ``1_0s``, azimuths -90..90 by 5), the set of the public reverberant
  scripts, read locally or downloaded from https://iosr.uk/software/downloads/CATT_RIRs.zip;
- :class:`SimulatedBRIRSet`: shoebox rooms simulated with pyroomacoustics' image source model,
  each image source heard through the Brown–Duda spherical head of :mod:`binaural.data.hrtf` from its own
  direction, for any reverb time and azimuth, so the reverberant recipe runs with no download.

Metadata: ``hrtf_reverb_meta_<split>.csv`` (``utterance_id, reverb_time, azimuth1, azimuth2``)
next to the usual file list and scaling npz; mixtures are named ``<rt>_<utt1>_<az1>_<utt2>_<az2>.wav``.
"""
from __future__ import annotations

import abc
import csv
import logging
import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve, sosfiltfilt

from binaural.io.atomic import atomic_path, atomic_text
from binaural.io.audio import AudioFileError, check_readable, read_float
from binaural.data.sources import CATT_RIRS_ARCHIVE
from binaural.io.download import DownloadError, RemoteArchive, fetch_archive
from binaural.errors import RecipeError
from binaural.data.layout import CATT_FOLDER, SPLITS, WSJ0_RATE
from binaural.data.metadata import binaural_file_name
from binaural.data.mixing import resample

logger = logging.getLogger(__name__)

BRIR_RATE = WSJ0_RATE  # the BRIR Sim Set's rate
BRIR_AZIMUTHS = tuple(range(-90, 91, 5))
REVERB_TIMES = tuple(f"{k // 10}_{k % 10}s" for k in range(0, 11))  # 0_0s .. 1_0s
# Reverb times per split of the public metadata (disjoint); own mode draws from the same sets.
PUBLIC_REVERB_TIMES = {
    "tr": ("0_1s", "0_2s", "0_4s", "0_7s", "0_8s"),
    "cv": ("0_5s",),
    "tt": ("0_3s", "0_6s", "0_9s"),
}
CATT_URL_ENV_VAR = "CATT_RIRS_URL"
CATT_SUBFOLDER = ("Binaural", "16k")
SIMULATE = "simulate"
REVERB_META_COLUMNS = ("utterance_id", "reverb_time", "azimuth1", "azimuth2")
REVERB_MODES = ("per_ear", "published")


class BRIRError(RecipeError):
    """A BRIR request or file that cannot be served."""


class BRIRFileNotFoundError(BRIRError, FileNotFoundError):
    """A BRIR file or folder is not there."""


def parse_reverb_time(name: str) -> float:
    """``"0_3s"`` (or ``"0.3"``) -> 0.3 seconds."""
    match = re.fullmatch(r"(\d+)_(\d+)s", str(name).strip())
    try:
        return float(f"{match.group(1)}.{match.group(2)}") if match else float(name)
    except ValueError:
        raise BRIRError(f"reverb time {name!r} is neither like 0_3s nor a number of seconds") from None


def reverb_time_name(seconds: float) -> str:
    """0.3 -> ``"0_3s"`` (tenths, as the BRIR Sim Set names its folders)."""
    tenths = round(float(seconds) * 10)
    return f"{tenths // 10}_{tenths % 10}s"


def parse_azimuth(azimuth: str | int | float) -> float:
    try:
        value = float(azimuth)
    except (TypeError, ValueError):
        raise BRIRError(f"azimuth {azimuth!r} is not a number of degrees") from None
    if not -90 <= value <= 90:
        raise BRIRError(f"azimuth {azimuth!r} is outside -90..90 degrees")
    return value


class BRIRSet(abc.ABC):
    """Left/right room impulse responses per (reverb time, azimuth), cached per process."""

    def __init__(self, cache_size: int = 256) -> None:
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    @abc.abstractmethod
    def _load(self, reverb_time: str, azimuth: str) -> np.ndarray:
        """float64 ``[taps, 2]`` at :data:`BRIR_RATE`."""

    @abc.abstractmethod
    def check(self, pairs: Iterable[tuple[str, str]], workers: int = 1, progress: bool = False) -> None:
        """Make sure every (reverb time, azimuth) can be served, before any output is written."""

    def brir(self, reverb_time: str, azimuth: str, rate: int) -> np.ndarray:
        """float64 ``[taps, 2]`` (left, right) at ``rate`` (resampled as the public scripts do:
        ``resample_poly`` along time). A read-only cached array."""
        key = (str(reverb_time), str(azimuth), int(rate))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        base = self._load(str(reverb_time), str(azimuth))
        value = np.asarray(resample(base, BRIR_RATE, int(rate), axis=0), dtype=np.float64)
        value.setflags(write=False)
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value


# --------------------------------------------------------------------------------------------
# The BRIR Sim Set (CATT)
# --------------------------------------------------------------------------------------------


def catt_root(path: str | Path) -> Path:
    """The folder holding ``<rt>/CATT_<rt>_<az>.wav``, given it, ``CATT_RIRs/`` or its parent."""
    path = Path(path).expanduser()
    for candidate in (path, path.joinpath(*CATT_SUBFOLDER), path / CATT_FOLDER / Path(*CATT_SUBFOLDER)):
        if candidate.is_dir() and any(candidate.glob("*/CATT_*.wav")):
            return candidate
    raise BRIRFileNotFoundError(
        f"{path}: no <rt>/CATT_<rt>_<azimuth>.wav files here, nor under Binaural/16k/ or CATT_RIRs/Binaural/16k/. "
        "Use the BRIR Sim Set (https://iosr.uk/software/downloads/CATT_RIRs.zip, unzipped), leave --brir_dir out "
        "to download it, or pass --brir_dir simulate"
    )


class CattBRIRSet(BRIRSet):
    """The IoSR BRIR Sim Set, read as the public scripts read it (stereo 16 kHz wavs)."""

    name = "catt"

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = catt_root(root)

    def __repr__(self) -> str:
        return f"CattBRIRSet({self.root})"

    def path(self, reverb_time: str, azimuth: str) -> Path:
        return self.root / reverb_time / f"CATT_{reverb_time}_{azimuth}.wav"

    def check(self, pairs: Iterable[tuple[str, str]], workers: int = 1, progress: bool = False) -> None:
        problems = []
        for reverb_time, azimuth in sorted(set(pairs)):
            path = self.path(reverb_time, azimuth)
            try:
                info = check_readable(path, BRIR_RATE)
                if info.channels != 2:
                    raise AudioFileError(f"{path}: {info.channels} channel(s), expected 2 (left, right)")
            except AudioFileError as error:
                problems.append(str(error))
        if problems:
            more = f"; {len(problems) - 1} other BRIR(s) missing or bad as well" if len(problems) > 1 else ""
            raise BRIRFileNotFoundError(
                f"{problems[0]}{more}. Nothing was written. The BRIR Sim Set has reverb times {REVERB_TIMES[0]}.."
                f"{REVERB_TIMES[-1]} and azimuths -90..90 by 5 under {self.root}; --brir_dir simulate simulates "
                "any other"
            )

    def _load(self, reverb_time: str, azimuth: str) -> np.ndarray:
        try:
            data, _ = read_float(self.path(reverb_time, azimuth), BRIR_RATE, channels=2)
        except AudioFileError as error:
            raise BRIRFileNotFoundError(str(error)) from error
        return data


def catt_archive() -> RemoteArchive:
    """:data:`binaural.data.sources.CATT_RIRS_ARCHIVE`, its URL taken from ``$CATT_RIRS_URL`` when set."""
    from dataclasses import replace

    override = os.environ.get(CATT_URL_ENV_VAR, "").strip()
    if not override:
        return CATT_RIRS_ARCHIVE
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", override):
        override = Path(override).expanduser().resolve().as_uri()
    return replace(CATT_RIRS_ARCHIVE, url=override)


def ensure_catt(target_parent: Path, progress: bool = True) -> Path:
    """``<target_parent>/CATT_RIRs`` with the BRIR Sim Set, downloaded when absent.

    Raises:
        DownloadError: with the manual way.
    """
    archive = catt_archive()
    try:
        return fetch_archive(archive, Path(target_parent), progress=progress)
    except DownloadError as error:
        raise DownloadError(
            f"{error}\nTo proceed by hand: download {archive.url} (the BRIR Sim Set of the University of Surrey "
            f"IoSR, https://iosr.uk/software/index.php) on a connected machine, unzip it and pass --brir_dir "
            f"<folder>/CATT_RIRs (or set {CATT_URL_ENV_VAR} to a mirror or a local copy of the zip); or pass "
            "--brir_dir simulate to simulate the rooms instead."
        ) from error


# --------------------------------------------------------------------------------------------
# Simulated rooms: pyroomacoustics image sources heard through the spherical head
# --------------------------------------------------------------------------------------------

SIM_HEAD_RADIUS_M = 0.0875
SIM_SOURCE_DISTANCE_M = 1.5
SIM_WALL_MARGIN_M = 0.4
SIM_FRACTIONAL_TAPS = 16  # windowed-sinc fractional delay per image source
SIM_LATERAL_STEP_DEG = 1.0  # image directions are rounded to this lateral grid
SIM_VERSION = 1  # part of the cache file names: bump when the simulation changes
SIM_SHORTEST_RT60 = 0.1  # s; shorter (but not 0, anechoic) needs walls absorbing more than a shoebox can


@dataclass(frozen=True)
class ShoeboxRoom:
    """One simulated room: size, listener (facing +x, left ear towards +y) and source distance."""

    dims: tuple[float, float, float]
    listener: tuple[float, float, float]
    distance: float


def room_for(rt60: float, seed: int = 0) -> ShoeboxRoom:
    """The room of a reverb time: bigger rooms for longer reverb times, jittered by ``seed``.

    Length ``3 + 7 * rt60`` m (width 0.78 of it, height 2.5..3.5 m), shrunk until Sabine's
    absorption is at most 0.95; the listener off-centre at ear height 1.5 m. The same for every
    azimuth, so the talkers of a mixture share the room.
    """
    rng = np.random.default_rng([int(seed), int(round(rt60 * 1000))])
    jitter = rng.uniform(0.95, 1.05, size=3)
    length = (3.0 + 7.0 * rt60) * jitter[0]
    width = 0.78 * (3.0 + 7.0 * rt60) * jitter[1]
    height = min(2.5 + 0.8 * rt60, 3.5) * jitter[2]
    import pyroomacoustics as pra

    while True:
        volume = length * width * height
        surface = 2 * (length * width + length * height + width * height)
        absorption = 24 * math.log(10) * volume / (pra.constants.get("c") * surface * rt60) if rt60 > 0 else 0.0
        if absorption <= 0.95 or length < 2.0:
            break
        length, width, height = length * 0.9, width * 0.9, max(2.2, height * 0.95)
    if absorption > 0.95:
        raise BRIRError(f"reverb time {rt60:g} s is too short to simulate with a shoebox room")
    position = rng.uniform([0.40, 0.44], [0.46, 0.50])
    listener = (position[0] * length, position[1] * width, min(1.5, height - 0.5))
    room_distance = min(
        SIM_SOURCE_DISTANCE_M,
        listener[1] - SIM_WALL_MARGIN_M,
        width - SIM_WALL_MARGIN_M - listener[1],
        length - SIM_WALL_MARGIN_M - listener[0],
    )
    return ShoeboxRoom((length, width, height), listener, float(room_distance))


def _schroeder_rt(delays_s: np.ndarray, energies: np.ndarray, resolution_s: float = 1e-3) -> float:
    """RT60 extrapolated from the -5..-25 dB part of the Schroeder curve of an echogram."""
    bins = np.floor(delays_s / resolution_s).astype(np.int64)
    energy = np.bincount(bins, energies)
    schroeder = np.cumsum(energy[::-1])[::-1]
    decay = 10 * np.log10(np.maximum(schroeder, 1e-300) / schroeder[0])
    below5, below25 = np.nonzero(decay < -5)[0], np.nonzero(decay < -25)[0]
    if not len(below5) or not len(below25):
        return math.inf
    span = slice(below5[0], below25[0] + 1)
    times = np.arange(len(decay))[span] * resolution_s
    slope = np.polyfit(times, decay[span], 1)[0]
    return -60.0 / slope if slope < 0 else math.inf


def _image_sources(room: ShoeboxRoom, source: np.ndarray, rt60: float):
    """Image sources of ``source`` up to the order covering ``rt60`` + a margin (relative positions, orders)."""
    import pyroomacoustics as pra

    # inverse_sabine gives the order whose images reach c * rt60; a margin beyond it keeps the
    # Schroeder integral (and so the measured decay) free of truncation effects.
    absorption, _ = pra.inverse_sabine(rt60, room.dims)
    coverage = rt60 + max(0.25 * rt60, 0.05)
    _, max_order = pra.inverse_sabine(coverage, room.dims)
    shoebox = pra.ShoeBox(
        list(room.dims), fs=BRIR_RATE, materials=pra.Material(absorption), max_order=max_order, air_absorption=False
    )
    shoebox.add_source(list(source))
    shoebox.add_microphone(list(room.listener))
    shoebox.image_source_model()
    images = shoebox.sources[0].images - np.asarray(room.listener)[:, None]
    distances = np.linalg.norm(images, axis=0)
    keep = distances <= pra.constants.get("c") * coverage + room.distance
    return images[:, keep], distances[keep], shoebox.sources[0].orders[keep].astype(np.float64), absorption


@lru_cache(maxsize=64)
def calibrated_absorption(rt60: float, seed: int = 0) -> float:
    """Energy absorption of the walls for which the room's echogram decays in ``rt60``.

    Sabine's formula (:func:`pyroomacoustics.inverse_sabine`) is the starting point, but the image
    source decay of a shoebox is not Sabine's (Eyring-like at high absorption, slower with
    grazing paths at low): the absorption is solved by bisection so that the Schroeder decay of the
    image-source energies (source straight ahead), extrapolated from -5..-25 dB, equals ``rt60``.
    """
    import pyroomacoustics as pra

    room = room_for(rt60, seed)
    source = np.asarray(room.listener) + np.array([room.distance, 0.0, 0.0])
    _, distances, orders, _ = _image_sources(room, source, rt60)
    delays = distances / pra.constants.get("c")
    spreading = 1.0 / (4 * np.pi * distances) ** 2
    low, high = math.log(1e-4), math.log(0.999)
    for _ in range(40):
        middle = 0.5 * (low + high)
        if _schroeder_rt(delays, (1 - math.exp(middle)) ** orders * spreading) > rt60:
            low = middle
        else:
            high = middle
    return math.exp(0.5 * (low + high))


def simulate_brir(rt60: float, azimuth: float, seed: int = 0, rate: int = BRIR_RATE) -> np.ndarray:
    """Binaural room impulse response of a shoebox room (:func:`room_for`), float64 ``[taps, 2]``.

    Image source method (pyroomacoustics) with the :func:`calibrated_absorption`; every image
    source reaches the listener with its delay (windowed-sinc fractional delay), its ``1 / (4 pi d)``
    spreading and its wall reflections, and through the spherical-head HRIR pair of its own lateral
    angle (rounded to 1 degree; the Brown–Duda head depends on the lateral angle only). A 10 Hz
    high-pass removes the DC the all-positive image amplitudes build up (as pyroomacoustics does).

    Args:
        rt60: seconds; 0 gives the anechoic (direct path only) response.
        azimuth: degrees, positive to the listener's right, in the horizontal plane.
    """
    import pyroomacoustics as pra
    from pyroomacoustics.utilities import design_highpass_filter_sos

    from binaural.data.hrtf import spherical_head_hrir, spherical_head_taps

    if 0 < rt60 < SIM_SHORTEST_RT60:
        raise BRIRError(f"simulated rooms need a reverb time of 0 (anechoic) or at least {SIM_SHORTEST_RT60} s, got {rt60:g}")
    c = pra.constants.get("c")
    room = room_for(max(rt60, SIM_SHORTEST_RT60), seed)
    angle = math.radians(azimuth)
    source = np.asarray(room.listener) + room.distance * np.array([math.cos(angle), -math.sin(angle), 0.0])
    if rt60 > 0:
        images, distances, orders, _ = _image_sources(room, source, rt60)
        amplitudes = (1 - calibrated_absorption(rt60, seed)) ** (orders / 2) / (4 * np.pi * distances)
    else:
        images = (source - np.asarray(room.listener))[:, None]
        distances = np.linalg.norm(images, axis=0)
        amplitudes = 1 / (4 * np.pi * distances)
    lateral = np.degrees(np.arcsin(np.clip(-images[1] / distances, -1.0, 1.0)))
    grid = np.rint(lateral / SIM_LATERAL_STEP_DEG).astype(np.int64)
    grid -= grid.min()
    delays = distances / c * rate
    half = SIM_FRACTIONAL_TAPS // 2
    length = int(math.ceil(delays.max())) + 2 * half + 1
    rows = int(grid.max()) + 1
    trains = np.zeros(rows * length)
    whole = np.floor(delays).astype(np.int64)
    fraction = delays - whole
    offsets = np.arange(-half + 1, half + 1)
    for first in range(0, len(delays), 100_000):
        part = slice(first, first + 100_000)
        x = offsets[None, :] - fraction[part, None]
        taps = np.sinc(x) * (0.5 + 0.5 * np.cos(np.pi * x / half))
        index = grid[part, None] * length + whole[part, None] + offsets[None, :] + half
        trains += np.bincount(index.ravel(), (taps * amplitudes[part, None]).ravel(), minlength=rows * length)
    trains = trains.reshape(rows, length)
    hrir_taps = spherical_head_taps(rate, SIM_HEAD_RADIUS_M)
    brir = np.zeros((length + hrir_taps - 1, 2))
    base = int(np.rint(lateral / SIM_LATERAL_STEP_DEG).min())
    for row in np.nonzero(np.any(trains != 0, axis=1))[0]:
        angle_deg = float(np.clip((base + row) * SIM_LATERAL_STEP_DEG, -90, 90))
        pair = spherical_head_hrir(angle_deg, SIM_HEAD_RADIUS_M, rate, hrir_taps)  # [2, taps]
        brir += fftconvolve(trains[row][:, None], pair.T, axes=0)
    if rt60 > 0:
        brir = sosfiltfilt(design_highpass_filter_sos(rate, 10.0, n=2), brir, axis=0)
    return brir


class SimulatedBRIRSet(BRIRSet):
    """Simulated BRIRs (:func:`simulate_brir`) for any reverb time and azimuth, cached on disk.

    The cache holds one float32 stereo wav per (reverb time, azimuth, rate, seed), written
    atomically, so an interrupted run and later runs reuse what was simulated.
    """

    name = "simulated"

    def __init__(self, cache_dir: str | Path, seed: int = 0) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.seed = int(seed)

    def __repr__(self) -> str:
        return f"SimulatedBRIRSet({self.cache_dir}, seed={self.seed})"

    def path(self, reverb_time: str, azimuth: str) -> Path:
        rt = reverb_time_name(parse_reverb_time(reverb_time))
        az = f"{parse_azimuth(azimuth):g}"
        return self.cache_dir / f"sim{SIM_VERSION}_rt{rt}_az{az}_fs{BRIR_RATE}_seed{self.seed}.wav"

    def simulate(self, reverb_time: str, azimuth: str) -> Path:
        """Simulate and cache one BRIR unless it is cached; returns the cache file."""
        path = self.path(reverb_time, azimuth)
        if not path.exists():
            brir = simulate_brir(parse_reverb_time(reverb_time), parse_azimuth(azimuth), self.seed, BRIR_RATE)
            with atomic_path(path) as temporary:
                sf.write(str(temporary), brir.astype(np.float32), BRIR_RATE, subtype="FLOAT", format="WAV")
        return path

    def check(self, pairs: Iterable[tuple[str, str]], workers: int = 1, progress: bool = False) -> None:
        pairs = sorted(set(pairs))
        for reverb_time, azimuth in pairs:  # bad values are reported before any simulation
            parse_azimuth(azimuth)
            if 0 < parse_reverb_time(reverb_time) < SIM_SHORTEST_RT60:
                raise BRIRError(
                    f"reverb time {reverb_time}: simulated rooms need 0 (anechoic) or at least "
                    f"{SIM_SHORTEST_RT60} s. Nothing was written."
                )
        todo = [p for p in pairs if not self.path(*p).exists()]
        if not todo:
            return
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="simulating BRIRs", unit="brir", disable=not progress)
        if workers <= 1 or len(todo) == 1:
            for pair in todo:
                self.simulate(*pair)
                bar.update()
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(min(workers, len(todo))) as pool:
                for _ in pool.map(_simulate_one, [(self.cache_dir, self.seed, *p) for p in todo]):
                    bar.update()
        bar.close()

    def _load(self, reverb_time: str, azimuth: str) -> np.ndarray:
        path = self.simulate(reverb_time, azimuth)
        data, _ = sf.read(str(path), dtype="float64", always_2d=True)
        return data


def _simulate_one(arguments: tuple) -> None:
    cache_dir, seed, reverb_time, azimuth = arguments
    SimulatedBRIRSet(cache_dir, seed).simulate(reverb_time, azimuth)


def open_brir_set(
    spec: str | Path | None, download_parent: Path, cache_dir: Path, seed: int = 0, progress: bool = True
) -> BRIRSet:
    """The BRIR set named by ``--brir_dir``: ``"simulate"``, a local BRIR Sim Set, or None (download)."""
    if spec is not None and str(spec).strip().lower() == SIMULATE:
        return SimulatedBRIRSet(cache_dir, seed)
    if spec is None:
        spec = ensure_catt(download_parent, progress)
    return CattBRIRSet(spec)


# --------------------------------------------------------------------------------------------
# Reverberant metadata
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReverbSpec:
    """One row of the reverberant metadata: utterances, gains, reverb time and azimuths."""

    split: str
    index: int
    output_filename: str
    source_paths: tuple[str, ...]
    gains: dict  # (freq, mode) -> one gain per talker
    reverb_time: str
    azimuths: tuple[str, ...]

    @property
    def n_spks(self) -> int:
        return len(self.source_paths)

    @property
    def binaural_name(self) -> str:
        """``<rt>_<utt1>_<az1>_<utt2>_<az2>.wav``, the public reverberant names."""
        return binaural_file_name(self.output_filename, self.reverb_time, [(az,) for az in self.azimuths])


def reverb_meta_path(metadata_dir: Path, split: str) -> Path:
    return Path(metadata_dir) / f"hrtf_reverb_meta_{split}.csv"


def load_reverb_split(
    metadata_dir: Path, split: str, freqs: Sequence[str], modes: Sequence[str]
) -> list[ReverbSpec]:
    """Read ``mix_2_spk_filenames``, ``scaling`` and ``hrtf_reverb_meta`` of one split.

    Raises:
        MetadataError: a file, column, key or row is missing (named).
    """
    from binaural.data.metadata import (
        MetadataError,
        check_filenames_row,
        check_finite_gains,
        check_name,
        read_csv,
        read_npz,
        row_place,
    )

    metadata_dir = Path(metadata_dir)
    filenames_path = metadata_dir / f"mix_2_spk_filenames_{split}.csv"
    scaling_path = metadata_dir / f"scaling_{split}.npz"
    meta_path = reverb_meta_path(metadata_dir, split)
    absent = [str(p) for p in (filenames_path, scaling_path, meta_path) if not p.exists()]
    if absent:
        raise MetadataError(
            f"metadata file(s) not found: {', '.join(absent)}. Use the public Binaural-WSJ0Mix metadata "
            "(https://github.com/huangzj421/BinauralWSJ0Mix, folder metadata/), or --own_metadata"
        )
    rows, meta_rows = read_csv(filenames_path), read_csv(meta_path)
    for path, table, columns in (
        (filenames_path, rows, ("output_filename", "s1_path", "s2_path")),
        (meta_path, meta_rows, REVERB_META_COLUMNS),
    ):
        if not table or any(c not in table[0] for c in columns):
            raise MetadataError(f"{path}: expected the columns {', '.join(columns)}")
    meta = {r["utterance_id"]: (number, r) for number, r in enumerate(meta_rows, start=2)}
    keys = {(f, m): f"scaling_wsjmix_{f}_{m}" for f in freqs for m in modes}
    arrays = read_npz(scaling_path, keys.values())
    scaling = {fm: np.asarray(arrays[k], dtype=np.float64) for fm, k in keys.items()}
    for (f, m), matrix in scaling.items():
        if matrix.shape != (len(rows), 2):
            raise MetadataError(f"{scaling_path}: scaling_wsjmix_{f}_{m} has shape {matrix.shape}, expected ({len(rows)}, 2)")
    check_finite_gains(scaling, scaling_path, filenames_path, rows)
    specs = []
    for index, row in enumerate(rows):
        name = check_filenames_row(row, filenames_path, index + 2, 2)
        if name not in meta:
            raise MetadataError(f"{meta_path}: no row for mixture {name!r} (row {index + 2} of {filenames_path.name})")
        number, placement = meta[name]
        reverb_time, *azimuths = (
            check_name(placement[column].strip(), row_place(meta_path, number, column))
            for column in ("reverb_time", "azimuth1", "azimuth2")
        )
        specs.append(
            ReverbSpec(
                split, index, name, (row["s1_path"], row["s2_path"]),
                {fm: tuple(float(g) for g in matrix[index]) for fm, matrix in scaling.items()},
                reverb_time, tuple(azimuths),
            )
        )
    return specs


def draw_reverb_meta(
    output_filenames: Sequence[str], split: str, seed: int, reverb_times: Sequence[str] | None = None
) -> list[tuple[str, str, str, str]]:
    """Own-mode rows ``(utterance_id, reverb_time, azimuth1, azimuth2)``: a reverb time of the split's
    set (:data:`PUBLIC_REVERB_TIMES`, disjoint across splits) and two distinct azimuths of -90..90 by 5,
    deterministic from ``seed``."""
    times = tuple(reverb_times or PUBLIC_REVERB_TIMES[split])
    rng = np.random.default_rng([seed, SPLITS.index(split), 60])
    rows = []
    for name in output_filenames:
        rt = times[int(rng.integers(len(times)))]
        first, second = rng.choice(len(BRIR_AZIMUTHS), size=2, replace=False)
        rows.append((name, rt, str(BRIR_AZIMUTHS[first]), str(BRIR_AZIMUTHS[second])))
    return rows


def write_reverb_meta(path: Path, rows: Sequence[tuple[str, str, str, str]]) -> None:
    with atomic_text(path) as stream:
        writer = csv.writer(stream)
        writer.writerow(REVERB_META_COLUMNS)
        writer.writerows(rows)
