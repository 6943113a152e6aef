"""Dynamic mixing for Binaural WSJ0-2mix/3mix: a new binaural mixture for every training item.

Reproduces SpeechBrain's ``recipes/BinauralWSJ0Mix/separation/dynamic_mixing.py`` (talkers drawn in
proportion to their utterance counts, WSJ0-2mix level statistics, HRIR spatialisation with energy
matching, mixture = sum of the binaural sources, peak normalisation) in the open-unmix ``data.py``
style: every step is a small pure function with its own test, and :class:`DynamicMixingDataset`
composes them. Each item is what the static pipeline gives the Brain::

    {"id": str, "mix_sig": [time, 2], "s1_sig": [time, 2], "s2_sig": [time, 2][, "s3_sig"][, "noise_sig"]}

float32 tensors, ear axis last (0 = left, 1 = right), ``time = training_signal_len`` samples.

What changed from the published version, and why:

* It returns a ``Dataset`` (the published one returned a ``DataLoader``, which could be neither
  sharded nor reproduced).
* Listeners are the *training* listeners only (the published one drew any CIPIC subject, so the
  test listeners leaked into training), and one listener hears the whole mixture (the published
  one drew a new subject per talker: a mixture no single head can hear). Directions are distinct.
* Item ``i`` of an epoch is a function of ``(seed, epoch, global index)`` alone
  (``numpy.random.default_rng([seed, epoch, global_index])``): reproducible, independent of worker
  scheduling, and ranks never repeat each other. The epoch is split across DDP ranks (the
  published one gave every rank a full epoch of its own, seeded from ``os.urandom``).
* Every item has ``training_signal_len`` samples (random crop, zero-padded when the utterance is
  shorter); the published one cut all talkers to the shortest of them, so lengths varied.
* Peak normalisation scales only mixtures that would exceed ``max_peak``; the published one
  rescaled *every* mixture to a 0.9 peak, which threw the drawn levels away.
* With noise, ``mix_sig == sum(s_k_sig) + noise_sig`` exactly (the published one added the
  unscaled noise to the mixture but returned a rescaled ``noise_sig``).
* Bad input (missing or corrupt wav, empty or too-short talker folder, missing HRIR file) fails at
  construction with the file and the fix, not in a worker an hour into training.

Speed: utterances whose rate differs from ``sample_rate`` are resampled once into a cached copy on
disk (the published recipe's ``<base_folder_dm>_processed`` folder, here one sub-folder per rate,
written atomically file by file, so an interrupted preparation resumes and a rerun reuses it);
items then read only their crop. HRIRs are cached per process by the :class:`binaural.data.hrtf.HRTFSet` (each
worker loads a listener's HRIRs the first time it needs them, or inherits them all from the main
process with ``preload_hrirs=True``); convolution is ``scipy.signal.fftconvolve``.

Using it in a SpeechBrain recipe: pass a ``DataLoader`` built from the dataset to ``Brain.fit``
(``DataLoader(ds, batch_size, num_workers=..., collate_fn=PaddedBatch)``), not the dataset itself:
under DDP ``Brain.make_dataloader`` would add a ``DistributedSampler`` and shard the already
sharded epoch a second time. Call ``ds.set_epoch(epoch)`` in ``on_stage_start`` (the epoch lives in
shared memory, so persistent workers see it too).

Extension points: noise (``noise_folder``, optionally restricted to ``noise_files``, e.g. the
DEMAND training environments) and the *placer* (an object with ``check``, ``draw`` and ``filters``,
and optionally ``spatialize``; see :class:`HrtfPlacer`), which ``placer=`` replaces.
:class:`BrirPlacer` is the reverberant one: a room (reverb time) per mixture and a binaural room
impulse response per talker (:mod:`binaural.data.rooms`: the BRIR Sim Set or simulated rooms), each ear convolved
with its own BRIR, so the sources are reverberant binaural images as in the reverberant data set.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import soundfile as sf
import torch

from binaural.io.atomic import WriteError, inside
from binaural.io.audio import UTTERANCE_SUFFIXES, AudioFileError, check_readable, read_float, resolve_utterance, write_atomic
from binaural.data.hrtf import CIPIC_AZIMUTHS, CipicWavHRTF, HRTFError, HRTFSet, open_hrtf_set
from binaural.data.metadata import active_rms, split_subjects
from binaural.data.layout import SIMULATED_BRIR_FOLDER, rate_folder
from binaural.data.mixing import resample, spatialize, spatialize_reverb
from binaural.errors import RecipeError

logger = logging.getLogger(__name__)

#: WSJ0-2mix level statistics used by SpeechBrain's dynamic mixing (dB): first talker
#: ``N(mean, std)``, every other talker ``first + N(mean, std)``, all clipped to ``LEVEL_CLIP_DB``.
LEVEL_FIRST_DB: tuple[float, float] = (-27.43, 2.57)
LEVEL_RELATIVE_DB: tuple[float, float] = (-2.51, 2.66)
LEVEL_CLIP_DB: tuple[float, float] = (-45.0, 0.0)
#: How a talker's level is measured before the drawn level is applied (see :func:`signal_level`).
LEVEL_REFERENCES = ("active_rms", "rms", "mean_abs")
#: Noise: SNR (dB) of the loudest talker to the noise, uniform in this range (the WHAM! range).
NOISE_SNR_DB: tuple[float, float] = (-6.0, 3.0)

#: The listeners of the official Binaural-WSJ0Mix metadata (``hrtf_meta_{tr,cv,tt}.csv``):
#: 27 / 9 / 9 CIPIC subjects. Dynamic mixing with CIPIC draws from ``tr`` only.
OFFICIAL_LISTENERS: dict[str, tuple[str, ...]] = {
    "tr": (
        "subject08", "subject09", "subject10", "subject11", "subject119", "subject127", "subject131",
        "subject135", "subject137", "subject15", "subject152", "subject153", "subject154",
        "subject156", "subject162", "subject163", "subject19", "subject20", "subject27",
        "subject28", "subject44", "subject48", "subject50", "subject58", "subject59", "subject60",
        "subject65",
    ),
    "cv": (
        "subject03", "subject12", "subject126", "subject147", "subject155", "subject158",
        "subject165", "subject17", "subject40",
    ),
    "tt": (
        "subject124", "subject133", "subject134", "subject148", "subject18", "subject21",
        "subject33", "subject51", "subject61",
    ),
}
LISTENER_SPLITS = ("auto", "official", "own", "none")


class DynamicMixingError(RecipeError):
    """Dynamic mixing cannot start: bad corpus, bad options, or nothing usable to mix."""


# =============================================================================================
# Pure steps (arrays and a numpy Generator in, arrays out)
# =============================================================================================


def draw_talkers(rng: np.random.Generator, weights: Sequence[float], n: int) -> np.ndarray:
    """``n`` distinct talker indices, each draw proportional to ``weights`` among those left.

    With ``weights`` = utterance counts, the first talker of a mixture is a uniformly drawn
    utterance's talker, as in SpeechBrain (``np.random.choice(replace=False, p=weights)``).

    Returns:
        int64 ``[n]``.
    """
    p = np.asarray(weights, dtype=np.float64).copy()
    if p.ndim != 1 or np.any(p < 0) or np.count_nonzero(p) < n:
        raise ValueError(f"need at least {n} talkers with a positive weight, got weights {p.tolist()}")
    chosen = np.empty(n, dtype=np.int64)
    for k in range(n):
        pick = int(rng.choice(len(p), p=p / p.sum()))
        chosen[k] = pick
        p[pick] = 0.0  # without replacement: a talker never mixes with itself
    return chosen


def draw_levels_db(
    rng: np.random.Generator,
    n: int,
    first: tuple[float, float] = LEVEL_FIRST_DB,
    relative: tuple[float, float] = LEVEL_RELATIVE_DB,
    clip: tuple[float, float] = LEVEL_CLIP_DB,
) -> np.ndarray:
    """Talker levels (dB): ``clip(N(first))`` then ``clip(first_level + N(relative))`` per other talker.

    Returns:
        float64 ``[n]``, in dB re. full scale (see :func:`set_level`).
    """
    first_db = float(np.clip(rng.normal(first[0], first[1]), *clip))
    others = np.clip(first_db + rng.normal(relative[0], relative[1], size=n - 1), *clip)
    return np.concatenate([[first_db], others])


def draw_crop_start(rng: np.random.Generator, n_samples: int, length: int) -> int:
    """Start (samples) of a random ``length``-sample window in an ``n_samples`` signal; 0 if shorter."""
    if n_samples <= length:
        return 0
    return int(rng.integers(0, n_samples - length + 1))


def crop_or_pad(signal: np.ndarray, start: int, length: int) -> np.ndarray:
    """``signal[start : start + length]`` along axis 0, zero-padded at the end to ``length`` samples.

    Args:
        signal: ``[time]`` or ``[time, channel]``.
    Returns:
        float64 ``[length]`` or ``[length, channel]``.
    """
    piece = np.asarray(signal[start : start + length], dtype=np.float64)
    missing = length - len(piece)
    if missing > 0:
        piece = np.concatenate([piece, np.zeros((missing,) + piece.shape[1:])])
    return piece


def signal_level(signal: np.ndarray, sample_rate: int, reference: str = "active_rms") -> float:
    """Linear level of a dry ``[time]`` signal, as ``reference`` measures it.

    * ``"active_rms"`` (default): RMS over the 20 ms frames within 40 dB of the loudest one
      (:func:`binaural.data.metadata.active_rms`): pauses and zero padding do not count, as with the P.56 active
      level WSJ0-2mix normalises with.
    * ``"rms"``: RMS over every sample, padding included.
    * ``"mean_abs"``: mean absolute value, what the published recipe used (SpeechBrain's
      ``rescale(..., amp_type="avg")``).
    """
    if reference == "active_rms":
        return active_rms(signal, sample_rate)
    if reference == "rms":
        return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)))) if len(signal) else 0.0
    if reference == "mean_abs":
        return float(np.mean(np.abs(signal))) if len(signal) else 0.0
    raise ValueError(f"level reference must be one of {LEVEL_REFERENCES}, got {reference!r}")


def set_level(signal: np.ndarray, sample_rate: int, level_db: float, reference: str = "active_rms") -> np.ndarray:
    """Scale ``signal`` so that its ``reference`` level is ``level_db`` dB re. full scale.

    0 dB is a level of 1.0 on the float scale where full scale is ±1 (so a full-scale sine has an
    RMS of −3 dB). Digital silence stays silence.
    """
    level = signal_level(signal, sample_rate, reference)
    if level <= 0.0:
        return np.zeros_like(signal, dtype=np.float64)
    return signal * (10.0 ** (level_db / 20.0) / level)


def peak_factor(signals: Sequence[np.ndarray], max_peak: float | None = 0.9) -> float:
    """Common gain that brings the largest absolute sample of ``signals`` down to ``max_peak``.

    1.0 when nothing exceeds ``max_peak`` (or ``max_peak`` is None): quiet mixtures keep their drawn
    levels. Apply it to the mixture *and* every source (and the noise) so that they stay consistent.
    """
    if max_peak is None:
        return 1.0
    peak = max((float(np.max(np.abs(s))) for s in signals if s.size), default=0.0)
    return max_peak / peak if peak > max_peak else 1.0


def sum_sources(sources: Sequence[np.ndarray], noise: np.ndarray | None = None) -> np.ndarray:
    """The mixture: ``s1 + s2 (+ s3) (+ noise)``, added in that order in the sources' dtype.

    The *sum*, not the mean (as in the published recipe), so the SNR loss sees the true levels; the
    fixed order makes ``mix == s1 + s2 + ...`` hold bit for bit for float32 tensors.
    """
    mixture = np.array(sources[0], copy=True)
    for source in list(sources[1:]) + ([noise] if noise is not None else []):
        mixture += source
    return mixture


def looped_segment(signal: np.ndarray, start: int, length: int) -> np.ndarray:
    """``signal[start : start + length]`` along axis 0, wrapping around the end (a short noise repeats)."""
    if len(signal) == 0:
        raise ValueError("cannot take a segment of an empty signal")
    return signal[(start + np.arange(length)) % len(signal)]


def draw_noise_starts(rng: np.random.Generator, n_samples: int, channels: int, length: int) -> tuple[int, ...]:
    """Where the noise segments start: one for a stereo file, two for a mono file (left, right).

    The right-ear segment of a mono file starts at least ``length`` samples after the left one
    whenever the file holds two disjoint segments, so the ears get different noise.
    """
    left = int(rng.integers(0, n_samples))
    if channels >= 2:
        return (left,)
    gap = int(rng.integers(length, n_samples - length + 1)) if n_samples >= 2 * length else int(rng.integers(0, n_samples))
    return left, (left + gap) % n_samples


def binaural_noise(noise: np.ndarray, starts: Sequence[int], length: int) -> np.ndarray:
    """Two-ear noise ``[length, 2]`` from a ``[time, channel]`` recording.

    A stereo (or wider) file gives its first two channels from ``starts[0]``; a mono file gives two
    different segments (``starts[0]`` left, ``starts[1]`` right): independent noise per ear, as a
    diffuse field would give, rather than one copy that would sound centred.
    """
    if noise.ndim != 2:
        raise ValueError(f"noise must be [time, channel], got shape {noise.shape}")
    if noise.shape[1] >= 2:
        return np.asarray(looped_segment(noise[:, :2], starts[0], length), dtype=np.float64)
    mono = noise[:, 0]
    return np.stack([looped_segment(mono, starts[0], length), looped_segment(mono, starts[1], length)], axis=1)


def noise_gain(reference: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """Gain that puts ``noise`` ``snr_db`` dB below ``reference`` (mean power over time and ears)."""
    noise_power = float(np.mean(np.square(noise)))
    if noise_power <= 0.0:
        return 0.0
    return math.sqrt(float(np.mean(np.square(reference))) / noise_power * 10.0 ** (-snr_db / 10.0))


def resampled_length(n_samples: int, rate_in: int, rate_out: int) -> int:
    """Samples that ``binaural.data.mixing.resample`` (``resample_poly``) returns: ``ceil(n * up / down)``."""
    divisor = gcd(rate_in, rate_out)
    up, down = rate_out // divisor, rate_in // divisor
    return -(-n_samples * up // down)


# =============================================================================================
# Listeners and spatialisation (the HRTF placer; a BRIR placer would have the same methods)
# =============================================================================================


def training_listeners(
    all_subjects: Sequence[str], listener_split: str = "auto", split_seed: int = 0
) -> tuple[list[str], set[str]]:
    """The listeners dynamic mixing may use, and those it must never use (cv and tt).

    Args:
        all_subjects: the HRTF set's listeners.
        listener_split: ``"official"``: the official Binaural-WSJ0Mix split
            (:data:`OFFICIAL_LISTENERS`, CIPIC only); ``"own"``: ``metadata.split_subjects(all,
            split_seed)``, the split of own-mode metadata drawn with ``--seed split_seed``;
            ``"auto"``: official when the set holds every official listener (CIPIC), else own;
            ``"none"``: every listener, nothing held out.
    Returns:
        (training listeners, held-out listeners).
    """
    if listener_split not in LISTENER_SPLITS:
        raise DynamicMixingError(f"listener_split must be one of {LISTENER_SPLITS}, got {listener_split!r}")
    available = set(all_subjects)
    official = set().union(*OFFICIAL_LISTENERS.values())
    if listener_split == "auto":
        listener_split = "official" if official <= available else "own"
    if listener_split == "none":
        return sorted(available), set()
    if listener_split == "official":
        missing = sorted(official - available)
        if missing:
            raise DynamicMixingError(
                f"listener_split='official' needs the CIPIC listeners of the official metadata; the HRTF set "
                f"lacks {missing[:5]}{'...' if len(missing) > 5 else ''}: pass the CIPIC wav_database or use 'own'"
            )
        return list(OFFICIAL_LISTENERS["tr"]), set(OFFICIAL_LISTENERS["cv"]) | set(OFFICIAL_LISTENERS["tt"])
    split = split_subjects(sorted(available), split_seed)
    return list(split["tr"]), set(split["cv"]) | set(split["tt"])


@dataclass(frozen=True)
class Placement:
    """Where the talkers of one mixture are: one listener (or room) and one position per talker.

    ``positions[k]`` is spelled for the item id (``"az_el"`` in the metadata's degrees);
    ``keys[k]`` is what the placer needs to fetch the talker's filter.
    """

    listener: str
    positions: tuple[str, ...]
    keys: tuple[tuple[Any, ...], ...]


class Placer(Protocol):
    """Chooses binaural filters: the extension point for BRIRs (reverberant variant)."""

    def check(self) -> None:
        """Raise a clear error now if a filter cannot be loaded later."""

    def draw(self, rng: np.random.Generator, n_sources: int) -> Placement:
        """Draw a listener (room) and ``n_sources`` distinct positions."""

    def filters(self, placement: Placement) -> list[np.ndarray]:
        """One ``[2, taps]`` impulse response per talker, at the dataset's rate."""

    # Optional: ``spatialize(dry [time], filter) -> [time, 2]``, how a talker is rendered with one
    # of its filters (default :func:`binaural.data.mixing.spatialize`, for ``[2, taps]`` HRIRs).


class HrtfPlacer:
    """One listener per mixture from ``subjects``, a distinct grid direction per talker, its HRIR.

    The HRTF set caches each (listener, azimuth) block per process, so a worker reads and
    resamples each HRIR file once, the first time a mixture needs it.
    """

    def __init__(self, hrtf_set: HRTFSet, subjects: Sequence[str], sample_rate: int, n_spks: int) -> None:
        self.hrtf_set = hrtf_set
        self.subjects = list(subjects)
        self.sample_rate = sample_rate
        if not self.subjects:
            raise DynamicMixingError("no training listener to spatialise the talkers with")
        known = set(hrtf_set.subjects())
        unknown = [s for s in self.subjects if s not in known]
        if unknown:
            raise DynamicMixingError(f"listener(s) {unknown} are not in the HRTF set {hrtf_set!r}")
        self._grids = {s: hrtf_set.directions(s) for s in self.subjects}
        for subject, grid in self._grids.items():
            if len(grid) < n_spks:
                raise DynamicMixingError(
                    f"{hrtf_set!r}: listener {subject} has {len(grid)} direction(s), "
                    f"{n_spks} talkers need {n_spks} distinct ones"
                )

    def __repr__(self) -> str:
        return f"HrtfPlacer({self.hrtf_set!r}, {len(self.subjects)} listeners)"

    def check(self) -> None:
        """Load one HRIR per listener (and, for the CIPIC WAV layout, check that every file exists)."""
        for subject in self.subjects:
            first = self._grids[subject][0]
            try:
                self.hrtf_set.hrir(subject, first.azimuth, first.index, self.sample_rate)
            except HRTFError as error:
                raise HRTFError(f"dynamic mixing, training listener {subject}: {error}") from error
            if isinstance(self.hrtf_set, CipicWavHRTF):
                for azimuth in CIPIC_AZIMUTHS:
                    for ear in ("left", "right"):
                        path = self.hrtf_set.path(subject, str(azimuth), ear)
                        if not path.is_file():
                            raise HRTFError(
                                f"dynamic mixing, training listener {subject}: {path} not found; the CIPIC WAV "
                                "database must hold subjectNN/{az}az{left|right}.wav for every azimuth "
                                "(re-extract it, or leave the listener out with subjects=[...])"
                            )

    def preload(self) -> None:
        """Load every HRIR of every listener now (forked DataLoader workers then share them)."""
        for subject, grid in self._grids.items():
            for direction in grid:
                self.hrtf_set.hrir(subject, direction.azimuth, direction.index, self.sample_rate)

    def draw(self, rng: np.random.Generator, n_sources: int) -> Placement:
        subject = self.subjects[int(rng.integers(len(self.subjects)))]
        grid = self._grids[subject]
        picks = rng.choice(len(grid), size=n_sources, replace=False)  # distinct directions
        chosen = [grid[int(p)] for p in picks]
        return Placement(
            subject,
            tuple(f"{d.azimuth}_{d.elevation}" for d in chosen),
            tuple((d.azimuth, d.index) for d in chosen),
        )

    def filters(self, placement: Placement) -> list[np.ndarray]:
        return [
            self.hrtf_set.hrir(placement.listener, azimuth, index, self.sample_rate)
            for azimuth, index in placement.keys
        ]


class BrirPlacer:
    """Reverberant mixtures: one room (reverb time) per mixture, a distinct azimuth per talker, its BRIR.

    The BRIRs come from :mod:`binaural.data.rooms`, as the reverberant data set's: the BRIR Sim Set (``brir_dir``
    a ``CATT_RIRs`` folder, or None to download it into ``download_parent/CATT_RIRs``) or simulated
    shoebox rooms (``brir_dir="simulate"``, cached in ``cache_dir``, default
    ``download_parent/simulated_brirs``, the generator's cache, seeded by ``seed``). Each talker is
    rendered with :func:`binaural.data.mixing.spatialize_reverb` (``reverb_mode`` ``"per_ear"``: each ear through
    its own BRIR, aligned on the direct sound; ``"published"``: the public 2-D convolution, flaw
    included), so a source is the reverberant binaural image the static reverberant set has.

    Construction only stores the options (it is cheap and touches no file, so a YAML can build it);
    :meth:`check` opens the set and makes sure every (reverb time, azimuth) it may draw can be
    served, simulating the missing ones once (under DDP each rank starts at its own share).

    Args:
        reverb_times: the rooms to draw from, spelled ``"0_4s"`` (or seconds); default the
            training reverb times of the public metadata (:data:`binaural.data.rooms.PUBLIC_REVERB_TIMES`), so the
            validation and test rooms stay unseen.
        azimuths: degrees (-90..90); default every azimuth of the BRIR Sim Set (-90..90 by 5).
    """

    def __init__(
        self,
        brir_dir: str | Path | None = None,
        reverb_times: Sequence[str | float] | None = None,
        azimuths: Sequence[str | int | float] | None = None,
        n_spks: int = 2,
        sample_rate: int = 8000,
        seed: int = 0,
        reverb_mode: str = "per_ear",
        download_parent: str | Path | None = None,
        cache_dir: str | Path | None = None,
        brir_set: Any = None,
    ) -> None:
        from binaural.data.rooms import (
            BRIR_AZIMUTHS,
            PUBLIC_REVERB_TIMES,
            REVERB_MODES,
            parse_azimuth,
            parse_reverb_time,
            reverb_time_name,
        )

        if reverb_mode not in REVERB_MODES:
            raise DynamicMixingError(f"reverb_mode must be one of {REVERB_MODES}, got {reverb_mode!r}")
        times = PUBLIC_REVERB_TIMES["tr"] if reverb_times is None else reverb_times
        try:
            self.reverb_times = sorted({reverb_time_name(parse_reverb_time(str(t))) for t in times})
            self.azimuths = sorted(
                {f"{parse_azimuth(a):g}" for a in (BRIR_AZIMUTHS if azimuths is None else azimuths)}, key=float
            )
        except ValueError as error:
            raise DynamicMixingError(f"BRIR placer: {error}") from error
        if not self.reverb_times:
            raise DynamicMixingError("BRIR placer: reverb_times is empty; give at least one room")
        if len(self.azimuths) < n_spks:
            raise DynamicMixingError(
                f"BRIR placer: {len(self.azimuths)} azimuth(s) {self.azimuths}, {n_spks} talkers need {n_spks} distinct ones"
            )
        self.brir_dir = None if brir_dir in (None, "", "null", "None") else str(brir_dir)
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.reverb_mode = reverb_mode
        self.download_parent = None if download_parent is None else Path(download_parent)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._brirs = brir_set
        self.subjects = list(self.reverb_times)  # the "listeners" of the item ids: rooms

    def __repr__(self) -> str:
        return (
            f"BrirPlacer({self.brir_dir or 'BRIR Sim Set'}, rooms {self.reverb_times}, {len(self.azimuths)} azimuths, "
            f"{self.reverb_mode})"
        )

    def pairs(self) -> list[tuple[str, str]]:
        """Every (reverb time, azimuth) this placer may draw."""
        return [(rt, az) for rt in self.reverb_times for az in self.azimuths]

    @property
    def brirs(self):
        """The :class:`binaural.data.rooms.BRIRSet` (opened, and the BRIR Sim Set downloaded if needed, on first use)."""
        if self._brirs is None:
            from binaural.data.rooms import SIMULATE, SimulatedBRIRSet, open_brir_set

            parent = self.download_parent
            cache = self.cache_dir or (parent / SIMULATED_BRIR_FOLDER if parent is not None else None)
            if self.brir_dir is not None and self.brir_dir.strip().lower() == SIMULATE:
                if cache is None:
                    raise DynamicMixingError("BRIR placer: simulated rooms need cache_dir (or download_parent)")
                self._brirs = SimulatedBRIRSet(cache, self.seed)
            else:
                if self.brir_dir is None and parent is None:
                    raise DynamicMixingError(
                        "BRIR placer: no brir_dir (a CATT_RIRs folder, or 'simulate') and no download_parent to "
                        "download the BRIR Sim Set into"
                    )
                self._brirs = open_brir_set(self.brir_dir, parent, cache, self.seed, progress=False)
        return self._brirs

    def check(self) -> None:
        """Open the set and make every BRIR servable now (simulating the missing ones once)."""
        from binaural.data.rooms import SIM_SHORTEST_RT60, SimulatedBRIRSet, parse_reverb_time

        brirs = self.brirs
        pairs = self.pairs()
        if isinstance(brirs, SimulatedBRIRSet):
            too_short = [rt for rt in self.reverb_times if 0 < parse_reverb_time(rt) < SIM_SHORTEST_RT60]
            if too_short:
                raise DynamicMixingError(
                    f"BRIR placer: simulated rooms need a reverb time of 0 (anechoic) or at least {SIM_SHORTEST_RT60} s, "
                    f"got {too_short}"
                )
            todo = [p for p in pairs if not brirs.path(*p).exists()]
            if todo:
                rank, world = _distributed_rank_world()
                first = rank * len(todo) // world
                logger.info("dynamic mixing: simulating %d room impulse response(s) into %s (once)", len(todo), brirs.cache_dir)
                for pair in todo[first:] + todo[:first]:
                    brirs.simulate(*pair)  # skips what another rank cached meanwhile
        else:
            brirs.check(pairs)
        rt, az = pairs[0]
        brirs.brir(rt, az, self.sample_rate)

    def preload(self) -> None:
        """Load every BRIR at the dataset's rate now (forked DataLoader workers then share them)."""
        for reverb_time, azimuth in self.pairs():
            self.brirs.brir(reverb_time, azimuth, self.sample_rate)

    def draw(self, rng: np.random.Generator, n_sources: int) -> Placement:
        room = self.reverb_times[int(rng.integers(len(self.reverb_times)))]
        picks = rng.choice(len(self.azimuths), size=n_sources, replace=False)  # distinct directions
        chosen = [self.azimuths[int(p)] for p in picks]
        return Placement(room, tuple(chosen), tuple((room, azimuth) for azimuth in chosen))

    def filters(self, placement: Placement) -> list[np.ndarray]:
        """One ``[taps, 2]`` BRIR per talker at the dataset's rate."""
        return [self.brirs.brir(room, azimuth, self.sample_rate) for room, azimuth in placement.keys]

    def spatialize(self, dry: np.ndarray, brir: np.ndarray) -> np.ndarray:
        """The reverberant binaural image ``[time, 2]`` of a dry ``[time]`` talker, at its energy per ear."""
        return spatialize_reverb(dry, brir, self.reverb_mode)


# =============================================================================================
# The corpus at the model rate (scanned and checked at start-up, resampled once to disk)
# =============================================================================================


@dataclass(frozen=True)
class AudioCatalogue:
    """Audio files at the model rate.

    ``names[i]``: the file relative to its root, as listed; ``paths[i]``: the file to read (the
    original, or its resampled copy); ``lengths[i]``: samples at ``sample_rate``;
    ``channels[i]``: channel count.
    """

    names: tuple[str, ...]
    paths: tuple[str, ...]
    lengths: np.ndarray  # int64 [files], samples
    channels: np.ndarray  # int64 [files]
    sample_rate: int


def _cached_copy_ok(copy: Path, original: Path, n_samples: int, sample_rate: int, channels: int) -> bool:
    """A resampled copy can be reused: complete (atomic writes), right shape, newer than its original."""
    try:
        if copy.stat().st_mtime_ns < original.stat().st_mtime_ns:
            return False
        info = sf.info(str(copy))
    except (OSError, RuntimeError, sf.LibsndfileError):
        return False
    return info.frames == n_samples and info.samplerate == sample_rate and info.channels == channels


def _resample_to_cache(original: Path, copy: Path, sample_rate: int) -> None:
    """Read, resample (``binaural.data.mixing.resample``) and write one file as float32 through a temporary file."""
    samples, rate = read_float(original)  # [time, channel], ±1 scale
    write_atomic(copy, resample(samples, rate, sample_rate, axis=0).astype(np.float32), sample_rate, subtype="FLOAT")


def build_catalogue(
    root: Path,
    names: Sequence[str],
    sample_rate: int,
    cache_root: Path,
    what: str = "utterance",
    rank: int = 0,
    world_size: int = 1,
) -> AudioCatalogue:
    """Check every file's header and make a copy at ``sample_rate`` of those at another rate.

    Copies go to ``cache_root/wav{8k|16k}/<name>`` (float32 wav). A valid copy is reused, so an
    interrupted preparation resumes where it stopped. Several ranks may prepare at once: each
    starts at its own share of the missing files and skips those another rank has finished (each
    file appears complete or not at all, so a half-written copy is never read).

    Raises:
        DynamicMixingError: an unreadable file (the first one named, with the fix, and how many
            others are bad), or a cache folder that cannot be written.
    """
    root = Path(root)
    problems: list[str] = []
    paths: list[str] = []
    lengths: list[int] = []
    channels: list[int] = []
    todo: list[tuple[Path, Path, int, int]] = []  # original, copy, samples, channels
    for name in names:
        original = resolve_utterance(root, name)
        try:
            info = check_readable(original)
        except AudioFileError as error:
            problems.append(str(error))
            continue
        if info.samplerate == sample_rate:
            paths.append(str(original))
            lengths.append(info.frames)
        else:
            n_samples = resampled_length(info.frames, info.samplerate, sample_rate)
            copy = inside(cache_root, cache_root / rate_folder(sample_rate) / Path(name).with_suffix(".wav"))
            if not _cached_copy_ok(copy, original, n_samples, sample_rate, info.channels):
                todo.append((original, copy, n_samples, info.channels))
            paths.append(str(copy))
            lengths.append(n_samples)
        channels.append(info.channels)
    if problems:
        more = f" ({len(problems) - 1} other {what} file(s) are bad as well)" if len(problems) > 1 else ""
        raise DynamicMixingError(
            f"dynamic mixing: {problems[0]}{more}. Fix or remove the file(s) under {root} before training."
        )
    if todo:
        logger.info("dynamic mixing: resampling %d %s file(s) to %d Hz into %s (once)", len(todo), what, sample_rate, cache_root)
        first = rank * len(todo) // world_size
        for original, copy, n_samples, n_channels in todo[first:] + todo[:first]:
            if copy.exists() and _cached_copy_ok(copy, original, n_samples, sample_rate, n_channels):
                continue  # another rank made it meanwhile
            try:
                _resample_to_cache(original, copy, sample_rate)
            except AudioFileError as error:
                raise DynamicMixingError(f"dynamic mixing: {error}. Fix or remove the file before training.") from error
            except WriteError as error:  # read-only or full disk, no permission
                raise DynamicMixingError(
                    f"dynamic mixing: the {sample_rate} Hz copy: {error} (pass cache_dir= a writable folder)"
                ) from error
    return AudioCatalogue(
        tuple(names), tuple(paths), np.asarray(lengths, dtype=np.int64),
        np.asarray(channels, dtype=np.int64), sample_rate,
    )


def scan_talkers(base_folder: Path, talker_folders: Sequence[str] = ("si_tr_s",)) -> dict[str, list[str]]:
    """Utterances per talker, ``{talker: [relative .wav name, ...]}`` (sorted).

    ``base_folder`` is a WSJ0 root (``wsj0/<folder>/<talker>/<utt>.wav`` for each of
    ``talker_folders``) or, as the published recipe's ``base_folder_dm``, a talker-set folder itself
    (``<talker>/<utt>.wav``). SPHERE ``.wv1`` files count as their ``.wav`` name (read through
    :func:`binaural.io.audio.resolve_utterance`).

    Raises:
        DynamicMixingError: a missing folder, or a talker folder without audio (an interrupted copy).
    """
    base = Path(base_folder)
    if not base.is_dir():
        raise DynamicMixingError(
            f"{base}: no such folder; base_folder must be a WSJ0 root (wsj0/si_tr_s/<talker>/<utt>.wav) "
            "or a talker-set folder (<talker>/<utt>.wav)"
        )
    if (base / "wsj0").is_dir():
        sets = [base / "wsj0" / folder for folder in talker_folders]
        missing = [str(s) for s in sets if not s.is_dir()]
        if missing:
            raise DynamicMixingError(f"{', '.join(missing)}: not found; the WSJ0 root must hold wsj0/<folder>/<talker>/")
    else:
        sets = [base]
    talkers: dict[str, list[str]] = {}
    empty: list[Path] = []
    for talker_set in sets:
        for folder in sorted(p for p in talker_set.iterdir() if p.is_dir()):
            stems = sorted({f.stem for f in folder.iterdir() if f.is_file() and f.suffix.lower() in UTTERANCE_SUFFIXES})
            if not stems:
                empty.append(folder)
                continue
            talkers.setdefault(folder.name, []).extend((folder / f"{s}.wav").relative_to(base).as_posix() for s in stems)
    if empty:
        more = f" ({len(empty) - 1} other talker folder(s) are empty as well)" if len(empty) > 1 else ""
        raise DynamicMixingError(
            f"{empty[0]}: talker folder without .wav/.wv1 files{more} (an interrupted copy or conversion?); "
            "re-copy it or remove it"
        )
    if not talkers:
        raise DynamicMixingError(f"{base}: no talker folders with audio under {', '.join(map(str, sets))}")
    return talkers


# =============================================================================================
# One mixture: drawn (plan), then rendered
# =============================================================================================


@dataclass(frozen=True)
class MixturePlan:
    """Everything random about one mixture; rendering it reads files but draws nothing.

    Offsets and lengths are samples at the dataset's rate, levels dB re. full scale.
    """

    epoch: int
    global_index: int
    talkers: tuple[str, ...]
    utterances: tuple[int, ...]  # catalogue indices
    crop_starts: tuple[int, ...]
    levels_db: tuple[float, ...]
    placement: Placement
    noise_file: int | None = None  # noise catalogue index
    noise_starts: tuple[int, ...] = ()
    snr_db: float | None = None


class MixturePlanner:
    """Draws :class:`MixturePlan` s from talkers' utterance lists: no audio is read.

    Args:
        talker_names: ``[talkers]``.
        talker_utterances: per talker, the catalogue indices of its utterances.
        lengths: samples of each catalogue entry at the model rate.
        placer: listeners and filters (:class:`HrtfPlacer`).
        noise_lengths / noise_channels: the noise catalogue, or None for clean mixtures.
    """

    def __init__(
        self,
        talker_names: Sequence[str],
        talker_utterances: Sequence[Sequence[int]],
        lengths: np.ndarray,
        n_spks: int,
        signal_len: int,
        placer: Placer,
        level_first_db: tuple[float, float] = LEVEL_FIRST_DB,
        level_relative_db: tuple[float, float] = LEVEL_RELATIVE_DB,
        level_clip_db: tuple[float, float] = LEVEL_CLIP_DB,
        noise_lengths: np.ndarray | None = None,
        noise_channels: np.ndarray | None = None,
        noise_snr_db: tuple[float, float] = NOISE_SNR_DB,
    ) -> None:
        self.talker_names = list(talker_names)
        self.talker_utterances = [np.asarray(u, dtype=np.int64) for u in talker_utterances]
        # Weights = utterance counts (SpeechBrain's spk_weights): every utterance is equally likely
        # to be a mixture's first talker.
        self.weights = np.array([len(u) for u in self.talker_utterances], dtype=np.float64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.n_spks = n_spks
        self.signal_len = signal_len
        self.placer = placer
        self.level_first_db = level_first_db
        self.level_relative_db = level_relative_db
        self.level_clip_db = level_clip_db
        self.noise_lengths = noise_lengths
        self.noise_channels = noise_channels
        self.noise_snr_db = noise_snr_db

    def draw(self, rng: np.random.Generator, epoch: int = 0, global_index: int = 0) -> MixturePlan:
        # Draw order is fixed (talkers, utterances, crops, levels, placement, noise): noise comes
        # last, so switching it on leaves the clean part of every item unchanged.
        talkers = draw_talkers(rng, self.weights, self.n_spks)
        utterances = [int(self.talker_utterances[t][rng.integers(len(self.talker_utterances[t]))]) for t in talkers]
        starts = [draw_crop_start(rng, int(self.lengths[u]), self.signal_len) for u in utterances]
        levels = draw_levels_db(rng, self.n_spks, self.level_first_db, self.level_relative_db, self.level_clip_db)
        placement = self.placer.draw(rng, self.n_spks)
        noise_file, noise_starts, snr_db = None, (), None
        if self.noise_lengths is not None:
            noise_file = int(rng.integers(len(self.noise_lengths)))
            noise_starts = draw_noise_starts(
                rng, int(self.noise_lengths[noise_file]), int(self.noise_channels[noise_file]), self.signal_len
            )
            snr_db = float(rng.uniform(*self.noise_snr_db))
        return MixturePlan(
            epoch, global_index, tuple(self.talker_names[t] for t in talkers), tuple(utterances), tuple(starts),
            tuple(float(x) for x in levels), placement, noise_file, noise_starts, snr_db,
        )


def _read_crop(path: str, start: int, length: int, n_samples: int) -> np.ndarray:
    """First channel of ``path[start : start + length]``, zero-padded: ``[length]`` float64.

    Reads only the crop (the catalogue knows ``n_samples``), not the whole utterance.
    """
    frames = max(0, min(length, n_samples - start))
    data, _ = sf.read(path, start=start, frames=frames, dtype="float64", always_2d=True)
    return crop_or_pad(data[:, 0], 0, length)


# =============================================================================================
# The Dataset
# =============================================================================================


def _distributed_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class DynamicMixingDataset(torch.utils.data.Dataset):
    """Binaural mixtures drawn afresh each epoch from a WSJ0-layout corpus and an HRTF set.

    Args:
        base_folder: WSJ0 root holding ``wsj0/<folder>/<talker>/<utt>.wav`` (or a talker-set
            folder ``<talker>/<utt>.wav``, the published ``base_folder_dm``).
        hrtf: an :class:`binaural.data.hrtf.HRTFSet`, or its spec for :func:`binaural.data.hrtf.open_hrtf_set` (CIPIC
            ``wav_database`` folder, SOFA file/folder, ``"spherical"``); unused with ``placer``.
        n_spks: talkers per mixture, 2 or 3.
        sample_rate: Hz of the items (8000 or 16000 for the recipe).
        training_signal_len: samples per item (random crop, zero-padded when shorter).
        epoch_size: mixtures per epoch over all ranks; default the number of usable utterances.
            Rounded down to a multiple of ``world_size`` so every rank runs as many steps (DDP
            would wait forever on a rank with one batch fewer).
        seed: with the epoch and the item's global index, fixes the item.
        subjects: training listeners; default the ``tr`` listeners of ``listener_split``. Listeners
            that the split holds out (cv/tt) are refused.
        talker_folders: WSJ0 folders the talkers come from (default ``si_tr_s``).
        talker_scan: lists the talkers' utterances, ``(base_folder, talker_folders) -> {talker: [name]}``
            (default :func:`scan_talkers`, the WSJ0 layout); the corpus gives its own
            (:meth:`binaural.data.corpora.Corpus.dynamic_mixing_options`).
        listener_split / hrtf_split_seed: see :func:`training_listeners` (``"auto"``: the official
            CIPIC split, or ``split_subjects(all, hrtf_split_seed)`` for other sets: the split that
            own-mode metadata drawn with ``--seed hrtf_split_seed`` uses).
        rank / world_size: this process's share of the epoch (default from ``torch.distributed``
            when it is initialised, else 0 / 1).
        level_reference: how a talker's level is measured (:func:`signal_level`); default the
            active RMS level (dBFS of the RMS over active 20 ms frames).
        max_peak: mixtures (and sources) whose peak exceeds it are scaled down to it; None: never.
        min_utterance_len: utterances shorter than this (samples at ``sample_rate``; default one
            second) are not used; a talker with none left is an error.
        cache_dir: where files at another rate are resampled to (default
            ``<base_folder>_processed`` and ``<noise_folder>_processed``, as the published recipe).
        noise_folder: if given, a random segment of one of its wavs (mono: a different segment per
            ear; stereo: its two channels) is added at a random SNR, returned as ``noise_sig``.
        noise_files: the noise files to use, relative to ``noise_folder`` (e.g. the DEMAND training
            environments ``["DWASHING/ch01.wav", ...]``, so that validation and test noise stays
            unheard); default every ``.wav`` under ``noise_folder``.
        diotic_noise: both ears get the same noise (the first channel, one segment), as the
            published noisy data set has it; default False: two different ears.
        noise_snr_db: range (dB) of the loudest talker's SNR to the noise, uniform.
        preload_hrirs: load every HRIR of the training listeners at construction (forked workers
            then inherit them) instead of lazily in each worker.
        placer: replaces the HRTF placer (e.g. :class:`BrirPlacer` for reverberant mixtures).
    """

    def __init__(
        self,
        base_folder: str | Path,
        hrtf: str | Path | HRTFSet | None,
        n_spks: int = 2,
        sample_rate: int = 8000,
        training_signal_len: int = 32000,
        epoch_size: int | None = None,
        seed: int = 0,
        subjects: Sequence[str] | None = None,
        *,
        talker_folders: Sequence[str] = ("si_tr_s",),
        talker_scan: Callable[[Path, Sequence[str]], dict[str, list[str]]] | None = None,
        listener_split: str = "auto",
        hrtf_split_seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        level_reference: str = "active_rms",
        max_peak: float | None = 0.9,
        min_utterance_len: int | None = None,
        cache_dir: str | Path | None = None,
        noise_folder: str | Path | None = None,
        noise_files: Sequence[str] | None = None,
        diotic_noise: bool = False,
        noise_snr_db: tuple[float, float] = NOISE_SNR_DB,
        preload_hrirs: bool = False,
        placer: Placer | None = None,
    ) -> None:
        super().__init__()
        if n_spks not in (2, 3):
            raise DynamicMixingError(f"n_spks must be 2 or 3, got {n_spks!r}")
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise DynamicMixingError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
        if not isinstance(training_signal_len, int) or training_signal_len <= 0:
            raise DynamicMixingError(f"training_signal_len must be a positive number of samples, got {training_signal_len!r}")
        if level_reference not in LEVEL_REFERENCES:
            raise DynamicMixingError(f"level_reference must be one of {LEVEL_REFERENCES}, got {level_reference!r}")
        if max_peak is not None and not max_peak > 0:
            raise DynamicMixingError(f"max_peak must be positive or None, got {max_peak!r}")
        if len(noise_snr_db) != 2 or noise_snr_db[0] > noise_snr_db[1]:
            raise DynamicMixingError(f"noise_snr_db must be (low, high) in dB, got {noise_snr_db!r}")
        default_rank, default_world = _distributed_rank_world()
        self.rank = default_rank if rank is None else int(rank)
        self.world_size = default_world if world_size is None else int(world_size)
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise DynamicMixingError(f"need 0 <= rank < world_size, got rank={self.rank}, world_size={self.world_size}")
        self.base_folder = Path(base_folder)
        self.n_spks = n_spks
        self.sample_rate = sample_rate
        self.training_signal_len = training_signal_len
        self.seed = int(seed)
        self.level_reference = level_reference
        self.max_peak = max_peak
        self.diotic_noise = bool(diotic_noise)
        min_len = sample_rate if min_utterance_len is None else int(min_utterance_len)

        # 1. Talkers and utterances: every header checked, files at another rate resampled once.
        talkers = (talker_scan or scan_talkers)(self.base_folder, talker_folders)
        names = [name for talker in sorted(talkers) for name in talkers[talker]]
        speech_cache = Path(cache_dir) / "speech" if cache_dir is not None else Path(str(self.base_folder).rstrip("/\\") + "_processed")
        self.catalogue = build_catalogue(
            self.base_folder, names, sample_rate, speech_cache, "utterance", self.rank, self.world_size
        )
        index_of = {name: k for k, name in enumerate(names)}
        talker_names: list[str] = []
        talker_utterances: list[list[int]] = []
        dropped = 0
        for talker in sorted(talkers):
            usable = [index_of[n] for n in talkers[talker] if self.catalogue.lengths[index_of[n]] >= min_len]
            dropped += len(talkers[talker]) - len(usable)
            if not usable:
                longest = max(int(self.catalogue.lengths[index_of[n]]) for n in talkers[talker])
                folder = self.base_folder / Path(talkers[talker][0]).parent
                raise DynamicMixingError(
                    f"{folder}: all {len(talkers[talker])} utterance(s) of talker {talker} are shorter than "
                    f"min_utterance_len={min_len} samples ({min_len / sample_rate:.2f} s at {sample_rate} Hz; the "
                    f"longest has {longest}); remove the folder, re-copy it, or lower min_utterance_len"
                )
            talker_names.append(talker)
            talker_utterances.append(usable)
        if dropped:
            logger.warning("dynamic mixing: %d utterance(s) shorter than %d samples are not used", dropped, min_len)
        if len(talker_names) < n_spks:
            raise DynamicMixingError(
                f"{self.base_folder}: {len(talker_names)} talker(s) with usable utterances, but a {n_spks}-talker "
                f"mixture needs {n_spks} different talkers; point base_folder at the full si_tr_s set"
            )
        self.n_utterances = sum(len(u) for u in talker_utterances)

        # 2. Listeners: the training ones only, each checked now.
        if placer is None:
            hrtf_set = hrtf if isinstance(hrtf, HRTFSet) else open_hrtf_set(hrtf)
            train, held_out = training_listeners(hrtf_set.subjects(), listener_split, hrtf_split_seed)
            if subjects is not None:
                leaking = sorted(set(subjects) & held_out)
                if leaking:
                    raise DynamicMixingError(
                        f"subjects {leaking} are validation/test listeners of the {listener_split!r} listener split; "
                        "training on them would leak them into the evaluation (pass listener_split='none' to allow it)"
                    )
                train = list(subjects)
            self.subjects = list(train)
            placer = HrtfPlacer(hrtf_set, self.subjects, sample_rate, n_spks)
        else:
            self.subjects = list(getattr(placer, "subjects", []))
        placer.check()
        if preload_hrirs and hasattr(placer, "preload"):
            placer.preload()
        self.placer = placer

        # 3. Optional noise, checked and resampled as the speech.
        self.noise_catalogue: AudioCatalogue | None = None
        if noise_folder is not None:
            noise_root = Path(noise_folder)
            if not noise_root.is_dir():
                raise DynamicMixingError(f"noise_folder {noise_root}: no such folder (it must hold the mono or stereo noise wavs)")
            if noise_files is not None:
                noise_names = sorted({Path(str(name)).as_posix() for name in noise_files})
                absent = [name for name in noise_names if not (noise_root / name).is_file()]
                if absent:
                    more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
                    raise DynamicMixingError(
                        f"noise file(s) not found under {noise_root}: {', '.join(absent[:3])}{more}; noise_files names "
                        "files relative to noise_folder (a DEMAND tree holds <ENV>/ch01.wav)"
                    )
            else:
                noise_names = sorted(p.relative_to(noise_root).as_posix() for p in noise_root.rglob("*") if p.suffix.lower() == ".wav")
            if not noise_names:
                raise DynamicMixingError(f"{noise_root}: no .wav noise files (noise_folder must hold mono or stereo wavs)")
            noise_cache = Path(cache_dir) / "noise" if cache_dir is not None else Path(str(noise_root).rstrip("/\\") + "_processed")
            self.noise_catalogue = build_catalogue(
                noise_root, noise_names, sample_rate, noise_cache, "noise", self.rank, self.world_size
            )
            if np.any(self.noise_catalogue.lengths == 0):
                raise DynamicMixingError(f"{noise_root}: a noise file has no sample at {sample_rate} Hz")
        self.planner = MixturePlanner(
            talker_names, talker_utterances, self.catalogue.lengths, n_spks, training_signal_len, placer,
            noise_lengths=None if self.noise_catalogue is None else self.noise_catalogue.lengths,
            noise_channels=None if self.noise_catalogue is None else self.noise_catalogue.channels,
            noise_snr_db=noise_snr_db,
        )

        # 4. Epoch: split evenly across ranks.
        total = self.n_utterances if epoch_size is None else int(epoch_size)
        if total < self.world_size:
            raise DynamicMixingError(f"epoch_size={total} is smaller than world_size={self.world_size}: a rank would get nothing")
        if total % self.world_size:
            logger.warning(
                "dynamic mixing: epoch_size %d rounded down to %d, a multiple of world_size=%d",
                total, total - total % self.world_size, self.world_size,
            )
        self.epoch_size = total - total % self.world_size
        # Shared memory: set_epoch in the main process reaches persistent DataLoader workers too.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    # ------------------------------------------------------------------ epochs and indices
    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose mixtures ``__getitem__`` returns (call before iterating)."""
        self._epoch[0] = int(epoch)

    def __len__(self) -> int:
        """This rank's share of the epoch."""
        return self.epoch_size // self.world_size

    def global_index(self, index: int) -> int:
        """Rank-global index of this rank's item ``index``: ranks take every ``world_size``-th item."""
        return self.rank + index * self.world_size

    def plan(self, index: int) -> MixturePlan:
        """What item ``index`` of this rank will be in the current epoch (no audio read)."""
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items")
        epoch, global_index = self.epoch, self.global_index(index)
        rng = np.random.default_rng([self.seed, epoch, global_index])
        return self.planner.draw(rng, epoch, global_index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.render(self.plan(index))

    # ------------------------------------------------------------------ rendering
    def item_id(self, plan: MixturePlan) -> str:
        """``dm<epoch>-<global index>_<listener>_<utt1>_<az1>_<el1>_<utt2>_...``."""
        parts = [f"dm{plan.epoch}-{plan.global_index:07d}", plan.placement.listener]
        for utterance, position in zip(plan.utterances, plan.placement.positions):
            parts += [Path(self.catalogue.names[utterance]).stem, position]
        return "_".join(parts)

    def render(self, plan: MixturePlan) -> dict[str, Any]:
        """Read, level, spatialise and sum the talkers of ``plan``: the item dict (float32 ``[time, 2]``)."""
        length, rate = self.training_signal_len, self.sample_rate
        dry = [
            set_level(
                _read_crop(self.catalogue.paths[u], start, length, int(self.catalogue.lengths[u])),
                rate, level, self.level_reference,
            )
            for u, start, level in zip(plan.utterances, plan.crop_starts, plan.levels_db)
        ]  # n_spks x [time]
        render_talker = getattr(self.placer, "spatialize", spatialize)  # HRIRs: mixing.spatialize
        sources = [render_talker(d, h) for d, h in zip(dry, self.placer.filters(plan.placement))]  # n_spks x [time, 2]
        noise = None
        if plan.noise_file is not None and self.noise_catalogue is not None:
            recording, _ = sf.read(self.noise_catalogue.paths[plan.noise_file], dtype="float64", always_2d=True)
            starts = plan.noise_starts
            if self.diotic_noise:  # one segment of one channel, in both ears
                recording, starts = recording[:, :1], (starts[0], starts[0])
            noise = binaural_noise(recording, starts, length)  # [time, 2]
            loudest = max(sources, key=lambda s: float(np.mean(np.square(s))))
            noise = noise * noise_gain(loudest, noise, plan.snr_db)
        mixture = sum_sources(sources, noise)
        factor = peak_factor([mixture, *sources] + ([noise] if noise is not None else []), self.max_peak)
        # Scale first, then cast, then sum in float32: the mixture is exactly the sum of the tensors.
        sources32 = [(s * factor).astype(np.float32) for s in sources]
        noise32 = None if noise is None else (noise * factor).astype(np.float32)
        item: dict[str, Any] = {"id": self.item_id(plan), "mix_sig": torch.from_numpy(sum_sources(sources32, noise32))}
        for k, source in enumerate(sources32, start=1):
            item[f"s{k}_sig"] = torch.from_numpy(source)
        if noise32 is not None:
            item["noise_sig"] = torch.from_numpy(noise32)
        return item

    def __repr__(self) -> str:
        return (
            f"DynamicMixingDataset({str(self.base_folder)!r}, {self.n_spks} talkers, {self.sample_rate} Hz, "
            f"{self.training_signal_len} samples, {len(self.planner.talker_names)} talkers / {self.n_utterances} "
            f"utterances, {len(self.subjects)} listeners, rank {self.rank}/{self.world_size}: {len(self)} of "
            f"{self.epoch_size} items, epoch {self.epoch})"
        )

    # ------------------------------------------------------------------ recipe glue
    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any], **overrides: Any) -> "DynamicMixingDataset":
        """Build from the recipe's YAML keys.

        Required: ``base_folder_dm``, ``hrtf_wav_path`` (or ``hrtf``), ``num_spks``, ``sample_rate``,
        ``training_signal_len``. Optional: ``seed``, ``dm_epoch_size``, ``dm_subjects``,
        ``hrtf_split_seed``, ``dm_cache_dir``, ``dm_noise_folder``, ``dm_noise_files``, ``dm_noise_snr_db``,
        ``dm_max_peak``. ``overrides`` are passed to the constructor last.
        """
        hrtf = hparams.get("hrtf", hparams.get("hrtf_wav_path"))
        if hrtf is None:
            raise DynamicMixingError("hparams: set hrtf_wav_path (CIPIC wav_database, SOFA, or 'spherical')")
        kwargs: dict[str, Any] = dict(
            base_folder=hparams["base_folder_dm"], hrtf=hrtf, n_spks=int(hparams["num_spks"]),
            sample_rate=int(hparams["sample_rate"]), training_signal_len=int(hparams["training_signal_len"]),
            epoch_size=hparams.get("dm_epoch_size"), seed=int(hparams.get("seed", 0)), subjects=hparams.get("dm_subjects"),
            hrtf_split_seed=int(hparams.get("hrtf_split_seed", 0)), cache_dir=hparams.get("dm_cache_dir"),
            noise_folder=hparams.get("dm_noise_folder"), noise_files=hparams.get("dm_noise_files"),
        )
        if "dm_noise_snr_db" in hparams:
            kwargs["noise_snr_db"] = tuple(hparams["dm_noise_snr_db"])
        if "dm_max_peak" in hparams:
            kwargs["max_peak"] = hparams["dm_max_peak"]
        kwargs.update(overrides)
        return cls(**kwargs)
