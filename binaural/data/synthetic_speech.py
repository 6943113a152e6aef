"""A built-in synthetic speech corpus in the WSJ0 layout, so that the recipe runs offline without WSJ0.

WSJ0 (LDC93S6A) is licensed; a newcomer can still run every stage of the recipe (generation,
training, evaluation) on this stand-in and check the plumbing before getting the real corpus.
Separation results on it say nothing about real speech.

    python synthetic_speech.py --root R [--seed 0] ...   (the command line)

Output: ``R/wsj0/<set>/<talker>/<utterance>.wav`` (mono, PCM_16) for the sets ``si_tr_s`` (training
and validation talkers), ``si_dt_05`` and ``si_et_05`` (unseen test talkers), and
``R/wsj0/corpus.json`` with the parameters and each talker's voice. Ids are spelled as WSJ0's:
3-character talkers whose first letter names the set (``t01`` in si_tr_s, ``d01`` in si_dt_05,
``e01`` in si_et_05, so talkers of different sets never share an id) and 8-character utterances
that start with the talker (``t01c0101``). Pass ``--wsj_root R`` to the generator.

The voice is a source-filter model. Source: a Rosenberg glottal pulse train whose pitch follows a
per-phrase contour (declination, pitch accents on stressed syllables, a final fall or rise, slow
wander and cycle-scale jitter, shimmer), plus breath noise. Filter: a cascade of four 2nd-order
resonators (F1–F4) whose frequencies are interpolated between vowel, diphthong, nasal and
consonant-locus targets, updated every 4 ms. Unvoiced sounds: band-passed noise fricatives,
stops (closure silence, burst, aspiration through the formants). Words are separated by short
pauses, phrases by long ones. Each talker has a sex, a mean pitch (male 100–140 Hz, female
180–240 Hz), a vocal-tract length (formant scale factor), a speaking rate, a glottal pulse shape
and small vowel idiosyncrasies, so that talkers are distinguishable.

Each file is a function of (seed, set, talker, utterance) only: the same seed gives identical
bytes, and a resumed run writes exactly what an uninterrupted one would. Writes are atomic
(temporary file + ``os.replace``), complete files are kept on a rerun, and a rerun with other
parameters into the same root is refused.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, sosfilt
from scipy.signal.windows import hann, tukey

from binaural.io.atomic import atomic_text, exclusive, make_folder, remove_partial_files
from binaural.io.audio import write_atomic
from binaural.errors import RecipeError
from binaural.data.metadata import active_rms

logger = logging.getLogger(__name__)

# Bump when the synthesis changes: the bytes change, so an old corpus must not be mixed with new files.
GENERATOR_VERSION = 1
CORPUS_JSON = "corpus.json"
#: Held by the one process writing a corpus root (see atomic.exclusive).
CORPUS_LOCK = ".synthetic_wsj0.lock"
# WSJ0 talker sets the recipe reads, in a fixed order (the order enters the random seeds), and the
# first letter of their talker ids.
TALKER_SETS: dict[str, str] = {"si_tr_s": "t", "si_dt_05": "d", "si_et_05": "e"}
DEFAULT_TALKERS: dict[str, int] = {"si_tr_s": 8, "si_dt_05": 2, "si_et_05": 2}

LEVEL_DBFS = -25.0  # active speech level of every utterance, as the WSJ0-2mix scripts assume
PEAK_DBFS = -1.0  # ceiling on the peak: never clip, even for a loud burst
NOISE_FLOOR_DBFS = -75.0  # a recording-like floor: pauses are quiet but not digital zeros
PITCH_SPAN_ST = 6.0  # the contour stays within ± this many semitones of the talker's mean pitch
MALE_F0_HZ = (100.0, 140.0)
FEMALE_F0_HZ = (180.0, 240.0)
# Formant scale factor ~ 1 / vocal-tract length: adult female tracts are ~15–20 % shorter.
MALE_FORMANT_SCALE = (0.95, 1.05)
FEMALE_FORMANT_SCALE = (1.12, 1.22)
BLOCK_S = 0.004  # formant update period (s): short against formant movements (~50 ms)

# Adult male vowel targets F1–F4 (Hz), after Peterson & Barney (1952); F4 is not in their table.
VOWELS: dict[str, tuple[float, float, float, float]] = {
    "iy": (270, 2290, 3010, 3500),
    "ih": (390, 1990, 2550, 3500),
    "eh": (530, 1840, 2480, 3500),
    "ae": (660, 1720, 2410, 3500),
    "aa": (730, 1090, 2440, 3400),
    "ao": (570, 840, 2410, 3400),
    "uh": (440, 1020, 2240, 3400),
    "uw": (300, 870, 2240, 3400),
    "ah": (640, 1190, 2390, 3400),
    "er": (490, 1350, 1690, 3300),
}
VOWEL_NAMES = tuple(VOWELS)
DIPHTHONGS = (("aa", "iy"), ("eh", "iy"), ("ao", "uw"), ("aa", "uh"), ("ao", "iy"))
# Nasal murmurs: low F1, weak (the oral tract is closed).
NASALS: dict[str, tuple[float, float, float, float]] = {"m": (250, 1100, 2200, 3300), "n": (250, 1500, 2500, 3400)}
# Consonant loci (Hz): where F1–F4 head during a constriction, by place of articulation.
LOCI: dict[str, tuple[float, float, float, float]] = {
    "labial": (300, 1000, 2300, 3400),
    "alveolar": (300, 1750, 2600, 3500),
    "velar": (300, 2000, 2300, 3500),
    "palatal": (300, 2100, 2700, 3500),
}
# Unvoiced fricatives: noise band (Hz, male tract), level re. the vowels' RMS (dB), place.
FRICATIVES: dict[str, tuple[float, float, float, str]] = {
    "s": (4000, 7600, -6, "alveolar"),
    "sh": (2200, 5200, -6, "palatal"),
    "f": (1200, 7600, -18, "labial"),
}
# Stops: burst band (Hz), burst level (dB re. vowels), place, voiced.
STOPS: dict[str, tuple[float, float, float, str, bool]] = {
    "p": (300, 3000, -8, "labial", False),
    "t": (3000, 7000, -4, "alveolar", False),
    "k": (1500, 3500, -4, "velar", False),
    "b": (300, 3000, -14, "labial", True),
    "d": (3000, 7000, -10, "alveolar", True),
    "g": (1500, 3500, -10, "velar", True),
}


class SyntheticCorpusError(RecipeError):
    """Parameters that cannot make a corpus, or a root that holds another one."""


# --------------------------------------------------------------------------------------------
# Ids and seeds
# --------------------------------------------------------------------------------------------

_ALPHANUMERIC = "0123456789abcdefghijklmnopqrstuvwxyz"
# Two-character codes: "01".."99" first (readable for the usual sizes), then those with a letter.
_CODES = [f"{n:02d}" for n in range(1, 100)] + sorted(
    a + b for a in _ALPHANUMERIC for b in _ALPHANUMERIC if not (a + b).isdigit()
)
MAX_PER_LEVEL = len(_CODES)  # 1295 talkers per set, 1295 utterances per talker


def talker_id(talker_set: str, index: int) -> str:
    """3-character WSJ0-like talker id, e.g. ``t01`` for the first si_tr_s talker (index 0)."""
    return TALKER_SETS[talker_set] + _CODES[index]


def utterance_id(talker: str, index: int) -> str:
    """8-character WSJ0-like utterance id, no underscore: talker + ``c01`` + code, e.g. ``t01c0101``."""
    return f"{talker}c01{_CODES[index]}"


def _rng(seed: int, purpose: int, set_index: int, talker: int = 0, utterance: int = 0) -> np.random.Generator:
    """Independent stream per (purpose, set, talker, utterance).

    Always five words: SeedSequence pads short entropy with zeros, so ``[a, b]`` and ``[a, b, 0]``
    would collide.
    """
    return np.random.default_rng([seed, purpose, set_index, talker, utterance])


# --------------------------------------------------------------------------------------------
# Talkers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceProfile:
    """One talker's voice; every field but ``vowel_factors`` is recorded in ``corpus.json``."""

    talker: str
    talker_set: str
    sex: str  # "male" or "female"
    f0_hz: float  # mean pitch (Hz)
    formant_scale: float  # multiplies every formant (1 / relative vocal-tract length)
    speaking_rate: float  # > 1: faster (segment durations are divided by it)
    breathiness: float  # breath noise riding on the glottal pulses, re. the voiced source
    opening: float  # Rosenberg opening phase, fraction of the period
    closing: float  # Rosenberg closing phase, fraction of the period
    vowel_factors: np.ndarray = field(repr=False, compare=False)  # [vowel, 4] multiplicative offsets

    @property
    def f0_range_hz(self) -> tuple[float, float]:
        """The band the pitch contour is held in (Hz): ± ``PITCH_SPAN_ST`` semitones around the mean."""
        factor = 2 ** (PITCH_SPAN_ST / 12)
        return (round(self.f0_hz / factor, 1), round(self.f0_hz * factor, 1))

    def to_json(self) -> dict:
        return {
            "set": self.talker_set,
            "sex": self.sex,
            "f0_hz": self.f0_hz,
            "f0_range_hz": list(self.f0_range_hz),
            "formant_scale": self.formant_scale,
            "speaking_rate": self.speaking_rate,
        }


def talker_profiles(talker_set: str, n_talkers: int, seed: int) -> list[VoiceProfile]:
    """The ``n_talkers`` voices of ``talker_set``; sexes alternate so that any two talkers include both."""
    set_index = list(TALKER_SETS).index(talker_set)
    first_female = int(_rng(seed, 1, set_index).integers(2))
    profiles = []
    for index in range(n_talkers):
        rng = _rng(seed, 2, set_index, index)
        female = (index + first_female) % 2 == 1
        f0_low, f0_high = FEMALE_F0_HZ if female else MALE_F0_HZ
        scale_low, scale_high = FEMALE_FORMANT_SCALE if female else MALE_FORMANT_SCALE
        profiles.append(
            VoiceProfile(
                talker=talker_id(talker_set, index),
                talker_set=talker_set,
                sex="female" if female else "male",
                # Rounded so that corpus.json holds exactly what the synthesis used.
                f0_hz=round(float(rng.uniform(f0_low, f0_high)), 1),
                formant_scale=round(float(rng.uniform(scale_low, scale_high)), 3),
                speaking_rate=round(float(rng.uniform(0.85, 1.15)), 3),
                breathiness=float(rng.uniform(0.10, 0.25) if female else rng.uniform(0.04, 0.12)),
                # Female pulses are smoother (longer open phase, slower closure): a steeper spectral tilt.
                opening=float(rng.uniform(0.40, 0.48) if female else rng.uniform(0.34, 0.42)),
                closing=float(rng.uniform(0.16, 0.24) if female else rng.uniform(0.09, 0.15)),
                vowel_factors=np.exp(rng.normal(0.0, 0.04, size=(len(VOWELS), 4))),
            )
        )
    return profiles


# --------------------------------------------------------------------------------------------
# Utterance plan: segments on a time line
# --------------------------------------------------------------------------------------------


@dataclass
class Segment:
    """One sound: ``kind`` in vowel, nasal, fricative, closure(_voiced), burst, aspiration; times in s."""

    kind: str
    start: float
    stop: float
    targets: tuple = ()  # formant targets F1–F4 (Hz, male tract): one, or two for a diphthong
    gain: float = 1.0  # linear amplitude re. a stressed vowel
    band: tuple[float, float] = (0.0, 0.0)  # noise band (Hz, male tract) for fricatives and bursts
    stressed: bool = False


@dataclass
class Phrase:
    start: float
    stop: float
    segments: list[Segment]
    rising: bool  # question-like final rise instead of the usual fall


# Consonant classes (and how often) before and after a vowel; "h" only starts a syllable.
_ONSETS = (("fricative", "stop", "nasal", "h"), (0.35, 0.35, 0.2, 0.1))
_CODAS = (("fricative", "stop", "nasal"), (0.4, 0.35, 0.25))


def _syllable(rng: np.random.Generator, profile: VoiceProfile, stressed: bool, gain: float) -> list[tuple]:
    """One (onset) vowel (coda) syllable as ``(kind, duration_s, targets, gain, band)`` tuples."""
    slow = 1.0 / profile.speaking_rate
    parts: list[tuple] = []

    def consonant(coda: bool) -> None:
        kinds, weights = _CODAS if coda else _ONSETS
        kind = str(rng.choice(kinds, p=weights))
        if kind == "fricative":
            name = str(rng.choice(list(FRICATIVES)))
            low, high, level, place = FRICATIVES[name]
            duration = rng.uniform(0.07, 0.13) * slow
            parts.append(("fricative", duration, (LOCI[place],), gain * 10 ** (level / 20), (low, high)))
        elif kind == "stop":
            name = str(rng.choice(list(STOPS)))
            low, high, level, place, voiced = STOPS[name]
            closure = rng.uniform(0.03, 0.05) if voiced else rng.uniform(0.04, 0.07)
            parts.append(("closure_voiced" if voiced else "closure", closure * slow, (LOCI[place],), gain, (0, 0)))
            parts.append(("burst", rng.uniform(0.008, 0.015), (LOCI[place],), gain * 10 ** (level / 20), (low, high)))
            if not voiced and not coda:
                # Aspiration: breath noise through the formants before voicing starts (VOT).
                parts.append(("aspiration", rng.uniform(0.03, 0.06) * slow, (), gain * 0.5, (0, 0)))
        elif kind == "nasal":
            name = str(rng.choice(list(NASALS)))
            parts.append(("nasal", rng.uniform(0.05, 0.08) * slow, (NASALS[name],), gain * 0.3, (0, 0)))
        else:
            parts.append(("aspiration", rng.uniform(0.05, 0.08) * slow, (), gain * 0.6, (0, 0)))

    if rng.random() < 0.75:
        consonant(coda=False)
    stretch = 1.3 if stressed else 1.0
    if rng.random() < 0.2:
        first, second = DIPHTHONGS[rng.integers(len(DIPHTHONGS))]
        duration = rng.uniform(0.16, 0.24) * stretch * slow
        parts.append(("vowel", duration, (first, second), gain, (0, 0)))
    else:
        duration = rng.uniform(0.07, 0.15) * stretch * slow
        parts.append(("vowel", duration, (VOWEL_NAMES[rng.integers(len(VOWELS))],), gain, (0, 0)))
    if rng.random() < 0.35:
        consonant(coda=True)
    return parts


def _word(rng: np.random.Generator, profile: VoiceProfile) -> list[tuple]:
    """1–3 syllables, one of them stressed; unstressed ones 2–7 dB weaker."""
    n_syllables = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    stressed_index = int(rng.integers(n_syllables))
    parts: list[tuple] = []
    for index in range(n_syllables):
        stressed = index == stressed_index
        gain = 1.0 if stressed else 10 ** (-rng.uniform(2, 7) / 20)
        parts += [part + (stressed,) for part in _syllable(rng, profile, stressed, gain)]
    return parts


def _vowel_targets(names: tuple, profile: VoiceProfile) -> tuple:
    """Male-tract vowel names → this talker's F1–F4 targets (Hz, before the formant scale)."""
    return tuple(tuple(np.asarray(VOWELS[n]) * profile.vowel_factors[VOWEL_NAMES.index(n)]) for n in names)


def plan_utterance(rng: np.random.Generator, profile: VoiceProfile, duration_s: float) -> list[Phrase]:
    """Phrases of words separated by pauses, filling ``duration_s`` with leading and trailing silence.

    A word that would run past the end is not started; an utterance too short for any word gets
    one vowel.
    """
    lead = rng.uniform(0.1, 0.3) * min(1.0, duration_s / 3)
    end = duration_s - max(0.05, 0.05 * duration_s)
    t = lead
    phrases: list[Phrase] = []
    full = False
    while not full:
        segments: list[Segment] = []
        phrase_start, phrase_length = t, rng.uniform(0.8, 2.2)  # read speech: ~1–2 s between breaths
        while t - phrase_start < phrase_length:
            parts = _word(rng, profile)
            if t + sum(p[1] for p in parts) > end:
                full = True
                break
            for kind, duration, targets, gain, band, stressed in parts:
                if kind == "vowel":
                    targets = _vowel_targets(targets, profile)
                segments.append(Segment(kind, t, t + duration, targets, gain, band, stressed))
                t += duration
            if rng.random() < 0.45:  # words often run together; otherwise a short gap
                t += rng.uniform(0.04, 0.12)
        if segments:
            phrases.append(Phrase(segments[0].start, segments[-1].stop, segments, bool(rng.random() < 0.15)))
        t += rng.uniform(0.2, 0.45)  # pause between phrases
        if t >= end:
            full = True
    if not phrases:
        stop = min(end, lead + 0.2)
        vowel = Segment("vowel", lead, stop, _vowel_targets(("aa",), profile), 1.0, (0, 0), True)
        phrases.append(Phrase(lead, stop, [vowel], False))
    return phrases


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _samples(t: float, rate: int, n: int) -> int:
    return int(min(max(round(t * rate), 0), n))


def _smooth(track: np.ndarray, rate: int, width_s: float) -> np.ndarray:
    """Hann-window smoothing (``width_s`` s): gives every on/off step a natural ramp."""
    window = hann(max(3, int(width_s * rate)) | 1)
    return fftconvolve(track, window / window.sum(), mode="same")


def pitch_contour(
    rng: np.random.Generator, phrases: Sequence[Phrase], profile: VoiceProfile, n: int, rate: int
) -> np.ndarray:
    """Instantaneous pitch (Hz), ``[n]``: per phrase a declination line, pitch accents on stressed
    vowels and a final fall (or rise), plus slow wander and jitter; held in ``f0_range_hz``."""
    semitones = np.zeros(n)
    time = np.arange(n) / rate
    for phrase in phrases:
        a, b = _samples(phrase.start, rate, n), _samples(phrase.stop, rate, n)
        if b <= a:
            continue
        local = time[a:b]
        # Centred so that, with the (upward) accents, the contour averages about the talker's mean.
        high, low = rng.uniform(0.5, 2.0), -rng.uniform(2.0, 3.5)
        contour = high + (low - high) * (local - phrase.start) / max(phrase.stop - phrase.start, 1e-3)
        vowels = [s for s in phrase.segments if s.kind == "vowel"]
        for segment in vowels:
            if segment.stressed:
                centre, width = (segment.start + segment.stop) / 2, (segment.stop - segment.start) / 2
                contour += rng.uniform(1.0, 3.0) * np.exp(-0.5 * ((local - centre) / width) ** 2)
        if vowels:
            last = vowels[-1]
            ramp = np.clip((local - last.start) / max(last.stop - last.start, 1e-3), 0, 1)
            contour += (rng.uniform(3, 5) if phrase.rising else -rng.uniform(1, 3)) * ramp
        semitones[a:b] = contour
        semitones[b:] = contour[-1]  # unvoiced pauses: hold, so that the next phrase starts smoothly
    # Slow wander (0.1 s) and jitter (~0.7 % cycle-scale period perturbation, 4 ms control rate).
    for step, spread in ((0.1, 0.4), (0.004, 0.12)):
        knots = np.arange(0, n / rate + 2 * step, step)
        semitones += np.interp(time, knots, rng.normal(0.0, spread, size=len(knots)))
    semitones = np.clip(semitones, -PITCH_SPAN_ST, PITCH_SPAN_ST)
    return profile.f0_hz * 2 ** (semitones / 12)


def glottal_flow(f0: np.ndarray, rate: int, opening: float, closing: float, rng: np.random.Generator) -> np.ndarray:
    """Rosenberg glottal flow pulses (0..1) following ``f0`` (Hz) ``[n]``, with ±4 % per-cycle shimmer."""
    phase = np.cumsum(f0 / rate)
    p = phase % 1.0
    flow = np.where(
        p < opening,
        0.5 * (1 - np.cos(np.pi * p / opening)),
        np.where(p < opening + closing, np.cos(0.5 * np.pi * (p - opening) / closing), 0.0),
    )
    cycle = phase.astype(np.int64)
    shimmer = 1 + 0.04 * rng.standard_normal(int(cycle[-1]) + 1 if len(cycle) else 1)
    return flow * shimmer[cycle]


def formant_tracks(phrases: Sequence[Phrase], profile: VoiceProfile, n: int, rate: int) -> np.ndarray:
    """F1–F4 (Hz) per sample, ``[4, n]``: linear moves between targets, scaled by the talker's tract."""
    times: list[float] = []
    points: list[Sequence[float]] = []
    for phrase in phrases:
        for s in phrase.segments:
            d = s.stop - s.start
            if s.kind == "vowel" and len(s.targets) == 2:  # diphthong: glide from one to the other
                times += [s.start + 0.2 * d, s.stop - 0.2 * d]
                points += [s.targets[0], s.targets[1]]
            elif s.kind == "vowel":
                times += [s.start + 0.25 * d, s.stop - 0.25 * d]
                points += [s.targets[0], s.targets[0]]
            elif s.targets:  # nasal murmur or consonant locus
                times.append(s.start + 0.5 * d)
                points.append(s.targets[0])
    if not times:
        times, points = [0.0], [VOWELS["ah"]]
    targets = np.asarray(points, dtype=float).T * profile.formant_scale
    time = np.arange(n) / rate
    tracks = np.stack([np.interp(time, times, row) for row in targets])
    # Stay below Nyquist and keep the formants in order (8 kHz corpora, large scale factors).
    tracks[3] = np.minimum(tracks[3], 0.46 * rate)
    for k in (2, 1, 0):
        tracks[k] = np.minimum(tracks[k], tracks[k + 1] - 150)
    return np.maximum(tracks, 150.0)


def formant_cascade(excitation: np.ndarray, tracks: np.ndarray, rate: int) -> np.ndarray:
    """Cascade of four 2nd-order resonators (unity gain at 0 Hz) with coefficients updated every
    ``BLOCK_S`` s; each resonator's state carries over between blocks.

    Args:
        excitation: ``[n]``. tracks: formant frequencies (Hz), ``[4, n]``.
    """
    n = len(excitation)
    block = max(1, int(BLOCK_S * rate))
    centres = np.minimum(np.arange(0, n, block) + block // 2, n - 1)
    freqs = tracks[:, centres]  # [4, blocks]
    # Bandwidths (Hz) widen with frequency, roughly as measured on vowels.
    bandwidths = np.array([50.0, 70.0, 110.0, 180.0])[:, None] + 0.03 * freqs
    radius = np.exp(-np.pi * bandwidths / rate)
    a1 = -2 * radius * np.cos(2 * np.pi * freqs / rate)
    a2 = radius**2
    sos = np.zeros((freqs.shape[1], 4, 6))
    sos[..., 0] = (1 + a1 + a2).T  # unity DC gain: the formants shape, the source sets the tilt
    sos[..., 3] = 1.0
    sos[..., 4] = a1.T
    sos[..., 5] = a2.T
    out = np.empty(n)
    state = np.zeros((4, 2))
    for index, start in enumerate(range(0, n, block)):
        out[start : start + block], state = sosfilt(sos[index], excitation[start : start + block], zi=state)
    return out


def _band_noise(
    rng: np.random.Generator, length: int, band: tuple[float, float], scale: float, rate: int
) -> np.ndarray:
    """White noise band-passed to ``band`` (Hz, scaled by ``scale``), unit RMS, ``[length]``."""
    nyquist = rate / 2
    high = min(band[1] * scale, 0.95 * nyquist)
    low = min(band[0] * scale, 0.6 * high)
    noise = sosfilt(butter(2, [low, high], btype="band", fs=rate, output="sos"), rng.standard_normal(length + 256))
    noise = noise[256:]  # drop the filter's start-up transient
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def synthesize(profile: VoiceProfile, duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """One utterance of ``duration_s`` s at ``rate`` Hz, float ``[n]``, not yet level-normalised."""
    n = int(round(duration_s * rate))
    phrases = plan_utterance(rng, profile, duration_s)
    segments = [s for p in phrases for s in p.segments]

    voicing = np.zeros(n)  # voiced-source amplitude
    breath = np.zeros(n)  # aspiration amplitude (noise through the formants)
    for s in segments:
        a, b = _samples(s.start, rate, n), _samples(s.stop, rate, n)
        if s.kind in ("vowel", "nasal"):
            voicing[a:b] = s.gain
        elif s.kind == "closure_voiced":
            voicing[a:b] = 0.05 * s.gain  # voice bar: weak low-frequency voicing behind the closure
        elif s.kind == "aspiration":
            breath[a:b] = s.gain
    for p in phrases:  # amplitude declines by ~4 dB over a phrase, as the lungs empty
        a, b = _samples(p.start, rate, n), _samples(p.stop, rate, n)
        voicing[a:b] *= np.linspace(1.0, 0.63, b - a)
    voicing = _smooth(voicing, rate, 0.015)
    breath = _smooth(breath, rate, 0.010)

    f0 = pitch_contour(rng, phrases, profile, n, rate)
    flow = glottal_flow(f0, rate, profile.opening, profile.closing, rng)
    source = np.diff(flow * voicing, prepend=0.0)  # flow derivative: lip radiation's +6 dB/octave
    strong = voicing > 0.5
    source /= max(float(np.sqrt(np.mean(source[strong] ** 2))) if strong.any() else 1.0, 1e-12)
    noise = rng.standard_normal(n)
    excitation = source + noise * (breath + profile.breathiness * voicing * flow)
    speech = formant_cascade(excitation, formant_tracks(phrases, profile, n, rate), rate)

    # Fricatives and bursts bypass the cascade (front-cavity noise); levels re. the vowels' RMS.
    vowel_rms = float(np.sqrt(np.mean(speech[strong] ** 2))) if strong.any() else 1.0
    for s in segments:
        a, b = _samples(s.start, rate, n), _samples(s.stop, rate, n)
        if s.kind not in ("fricative", "burst") or b - a < 4:
            continue
        band = _band_noise(rng, b - a, s.band, profile.formant_scale, rate)
        if s.kind == "fricative":
            envelope = tukey(b - a, 0.5)
        else:  # burst: 1 ms onset, then a fast decay
            envelope = np.minimum(np.arange(b - a) / (0.001 * rate), 1.0) * np.exp(-np.arange(b - a) / (0.004 * rate))
        speech[a:b] += vowel_rms * s.gain * envelope * band
    return speech


def normalise(speech: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Active level ``LEVEL_DBFS``, a noise floor at ``NOISE_FLOOR_DBFS``, peak ≤ ``PEAK_DBFS``;
    returns int16 ``[n]`` (full scale 32767), never clipped."""
    level = active_rms(speech, rate)
    scaled = speech * (10 ** (LEVEL_DBFS / 20) / max(level, 1e-12))
    scaled += rng.standard_normal(len(scaled)) * 10 ** (NOISE_FLOOR_DBFS / 20)
    peak = float(np.max(np.abs(scaled))) if len(scaled) else 0.0
    ceiling = 10 ** (PEAK_DBFS / 20)
    if peak > ceiling:  # rare (speech has a ~15–20 dB crest factor): lower the level, never clip
        scaled *= ceiling / peak
    return np.round(scaled * 32767).astype(np.int16)


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------


def _utterance_rng(seed: int, talker_set: str, talker_index: int, utterance_index: int) -> np.random.Generator:
    return _rng(seed, 3, list(TALKER_SETS).index(talker_set), talker_index, utterance_index)


def _draw_length(rng: np.random.Generator, duration_s: tuple[float, float], rate: int) -> int:
    """The utterance's length in samples: the first draw of its stream (so a rerun can check it cheaply)."""
    return int(round(rng.uniform(*duration_s) * rate))


def make_utterance(
    profile: VoiceProfile, talker_index: int, utterance_index: int, seed: int,
    duration_s: tuple[float, float], sample_rate: int,
) -> np.ndarray:
    """The int16 samples ``[n]`` of one utterance; a pure function of its arguments."""
    rng = _utterance_rng(seed, profile.talker_set, talker_index, utterance_index)
    n = _draw_length(rng, duration_s, sample_rate)
    speech = synthesize(profile, n / sample_rate, sample_rate, rng)
    return normalise(speech, sample_rate, rng)


def _check_parameters(
    n_talkers: Mapping[str, int], utterances_per_talker: int, duration_s: Sequence[float], sample_rate: int, seed: int
) -> None:
    unknown = [s for s in n_talkers if s not in TALKER_SETS]
    if unknown:
        raise SyntheticCorpusError(f"unknown talker set(s) {unknown}; the recipe reads {list(TALKER_SETS)}")
    for name, count in n_talkers.items():
        if not 1 <= int(count) <= MAX_PER_LEVEL:
            raise SyntheticCorpusError(f"n_talkers[{name!r}] = {count}: give 1..{MAX_PER_LEVEL} (or leave the set out)")
    if not 1 <= utterances_per_talker <= MAX_PER_LEVEL:
        raise SyntheticCorpusError(f"utterances_per_talker = {utterances_per_talker}: give 1..{MAX_PER_LEVEL}")
    if len(duration_s) != 2 or not 0.3 <= duration_s[0] <= duration_s[1]:
        raise SyntheticCorpusError(f"duration_s = {tuple(duration_s)}: give (min, max) seconds with 0.3 <= min <= max")
    if sample_rate < 8000:
        raise SyntheticCorpusError(f"sample_rate = {sample_rate} Hz: give at least 8000 Hz (WSJ0 is 16000 Hz)")
    if seed < 0:
        raise SyntheticCorpusError(f"seed = {seed}: give a non-negative integer")


def _write_json_atomic(path: Path, content: dict) -> None:
    with atomic_text(path) as stream:
        json.dump(content, stream, indent=2)
        stream.write("\n")


def _claim_root(wsj0: Path, parameters: dict, talkers: dict) -> None:
    """Record the parameters in ``wsj0/corpus.json``, or check that they match those recorded.

    Raises:
        SyntheticCorpusError: the folder holds a corpus made with other parameters, or files that
            this generator did not make (a real WSJ0 copy, say).
    """
    record = wsj0 / CORPUS_JSON
    if record.exists():
        try:
            existing = json.loads(record.read_text(encoding="utf-8"))["parameters"]
        except (OSError, ValueError, KeyError, TypeError) as error:  # ValueError: not JSON, not text
            raise SyntheticCorpusError(
                f"{record}: unreadable ({error}); delete {wsj0} and rerun to regenerate the corpus"
            ) from error
        if existing != parameters:
            differences = ", ".join(
                f"{key}: {existing.get(key)!r} there, {parameters.get(key)!r} asked"
                for key in sorted(set(existing) | set(parameters))
                if existing.get(key) != parameters.get(key)
            )
            raise SyntheticCorpusError(
                f"{record}: this root holds a synthetic corpus made with other parameters ({differences}). "
                f"Rerun with the same parameters to complete it, pick another --root, or delete {wsj0} to regenerate"
            )
        return
    if wsj0.is_dir() and any(wsj0.iterdir()):
        raise SyntheticCorpusError(
            f"{wsj0}: exists and is not a synthetic corpus (no {CORPUS_JSON}); it may be a real WSJ0 copy. "
            "Pick an empty --root for the synthetic corpus"
        )
    wsj0.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(record, {"generator": "synthetic_speech.py", "parameters": parameters, "talkers": talkers})


def make_synthetic_wsj0(
    root: str | os.PathLike,
    n_talkers: Mapping[str, int] | None = None,
    utterances_per_talker: int = 10,
    duration_s: tuple[float, float] = (2.0, 4.0),
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Write a synthetic corpus under ``root/wsj0/<set>/<talker>/<utterance>.wav``; returns ``root``.

    Args:
        root: the folder to pass as ``--wsj_root`` (created if needed).
        n_talkers: talkers per set, default ``{"si_tr_s": 8, "si_dt_05": 2, "si_et_05": 2}``.
        utterances_per_talker: wavs per talker.
        duration_s: (min, max) utterance length (s), drawn uniformly per utterance.
        sample_rate: Hz (WSJ0: 16000).
        seed: everything is a function of it (same seed → identical bytes).

    Existing complete wavs (right rate, channel count and length) are kept, so an interrupted run
    is resumed by running it again.

    Raises:
        SyntheticCorpusError: bad parameters, or a root that holds another corpus.
    """
    n_talkers = dict(DEFAULT_TALKERS if n_talkers is None else n_talkers)
    duration = (float(duration_s[0]), float(duration_s[1])) if len(duration_s) == 2 else tuple(duration_s)
    _check_parameters(n_talkers, int(utterances_per_talker), duration, int(sample_rate), int(seed))
    sets = [s for s in TALKER_SETS if s in n_talkers]  # fixed order, whatever the mapping's
    parameters = {
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "sample_rate": int(sample_rate),
        "n_talkers": {s: int(n_talkers[s]) for s in sets},
        "utterances_per_talker": int(utterances_per_talker),
        "duration_s": list(duration),
        "level_dbfs": LEVEL_DBFS,
    }
    profiles = {s: talker_profiles(s, int(n_talkers[s]), int(seed)) for s in sets}
    talkers = {p.talker: p.to_json() for s in sets for p in profiles[s]}

    root = make_folder(Path(root), "--root")
    if (root / "wsj0").exists() and not (root / "wsj0").is_dir():
        raise SyntheticCorpusError(f"{root / 'wsj0'}: a file, not the corpus folder; pick another --root or move it away")
    with exclusive(root / CORPUS_LOCK, f"the synthetic corpus {root / 'wsj0'}"):  # one writer at a time
        _write_corpus(root / "wsj0", parameters, talkers, sets, profiles, int(utterances_per_talker), duration,
                      int(sample_rate), int(seed))
    return root


def _write_corpus(
    wsj0: Path, parameters: dict, talkers: dict, sets: Sequence[str], profiles: Mapping[str, list],
    utterances_per_talker: int, duration: tuple[float, float], sample_rate: int, seed: int,
) -> None:
    """:func:`make_synthetic_wsj0` once the corpus's lock is held: claim, clean up, write what lacks."""
    _claim_root(wsj0, parameters, talkers)
    removed = remove_partial_files(wsj0)
    if removed:
        logger.info("removed %d partial file(s) an interrupted run left under %s", removed, wsj0)

    written = kept = 0
    started = time.perf_counter()
    for talker_set in sets:
        for talker_index, profile in enumerate(profiles[talker_set]):
            folder = wsj0 / talker_set / profile.talker
            for utterance_index in range(utterances_per_talker):
                path = folder / f"{utterance_id(profile.talker, utterance_index)}.wav"
                if path.exists():
                    expected = _draw_length(
                        _utterance_rng(seed, talker_set, talker_index, utterance_index), duration, sample_rate
                    )
                    try:
                        info = sf.info(str(path))
                        complete = (info.frames, info.samplerate, info.channels) == (expected, sample_rate, 1)
                    except (RuntimeError, sf.LibsndfileError):
                        complete = False
                    if complete:
                        kept += 1
                        continue
                samples = make_utterance(profile, talker_index, utterance_index, seed, duration, sample_rate)
                write_atomic(path, samples, sample_rate, subtype="PCM_16")
                written += 1
    logger.info(
        "synthetic WSJ0 under %s: %d wav(s) written, %d kept, %.1f s",
        wsj0, written, kept, time.perf_counter() - started,
    )


def load_talkers(root: str | os.PathLike) -> dict[str, dict]:
    """The talkers recorded in ``root/wsj0/corpus.json``: ``{talker: {set, sex, f0_hz, ...}}``."""
    record = Path(root) / "wsj0" / CORPUS_JSON
    if not record.exists():
        raise SyntheticCorpusError(
            f"{record}: not found; make the corpus first (python synthetic_speech.py --root {root})"
        )
    return json.loads(record.read_text(encoding="utf-8"))["talkers"]
