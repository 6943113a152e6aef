"""The binaural mixing chain as small pure functions (the public Binaural-WSJ0Mix processing).

Per mixture: raw int16 source -> (8 kHz: ``resample_poly``) -> gain -> min/max length ->
HRIR convolution per ear (``fftconvolve(mode="same")``) -> energy rescaling -> sum.
Each step is a function of arrays only, so the generator and dynamic mixing share them and each
is tested on its own.
"""
from __future__ import annotations

from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.signal import fftconvolve, firwin, resample_poly

from binaural.io.audio import read_int16_first_channel, resolve_utterance
from binaural.data.layout import WSJ0_RATE


@lru_cache(maxsize=None)
def _antialias_filter(up: int, down: int) -> np.ndarray:
    """The low-pass FIR that ``resample_poly`` designs for reduced ``up``/``down`` (its default
    Kaiser window, beta 5): ``21 * max(up, down)`` taps (odd), float64, read-only.

    Designing it costs more than filtering a 200-tap HRIR, so it is designed once per ratio.
    """
    max_rate = max(up, down)
    taps = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    taps.setflags(write=False)
    return taps


def resample(samples: np.ndarray, rate_in: int, rate_out: int, axis: int = 0) -> np.ndarray:
    """Polyphase resampling as the public scripts do (``resample_poly(x, out, in)``), bit for bit.

    The public scripts pass the raw rates (8000, 16000) without reducing them; ``resample_poly``
    reduces by the gcd itself, so the result is the same. The filter is ``resample_poly``'s own,
    designed once per ratio (:func:`_antialias_filter`) and cast to a floating input's dtype as
    ``resample_poly`` does. Returns the input unchanged (no copy, same dtype) when the rates match.

    Args:
        samples: any shape; resampled along ``axis`` (samples at ``rate_in`` Hz).
    Returns:
        ``ceil(n * rate_out / rate_in)`` samples along ``axis``.
    """
    if rate_in == rate_out:
        return samples
    divisor = gcd(rate_out, rate_in)
    up, down = rate_out // divisor, rate_in // divisor
    taps = _antialias_filter(up, down)
    if np.issubdtype(samples.dtype, np.floating):
        taps = taps.astype(samples.dtype)
    return resample_poly(samples, up, down, axis=axis, window=taps)


class StreamResampler:
    """:func:`resample` of a signal that arrives in pieces, with the same result.

    ``push`` each piece (along axis 0, in order), then ``finish``; together they return exactly
    ``resample(whole, rate_in, rate_out)`` (same filter, same zero padding at both ends), while
    holding only about one piece plus the filter's reach. An output sample is returned once every
    input it depends on has arrived: ``resample_poly`` of a stretch starting at an input index
    ``s`` that is a multiple of ``down`` gives the whole signal's outputs from ``s * up / down`` on,
    except within the filter's reach of the stretch's ends.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        divisor = gcd(rate_out, rate_in)
        self.up, self.down = rate_out // divisor, rate_in // divisor
        self.identity = rate_in == rate_out
        self.taps = None if self.identity else _antialias_filter(self.up, self.down)
        # Input samples that an output sample reaches on each side (the filter's half length on the
        # upsampled grid, in input samples), plus slack for resample_poly's delay alignment.
        self.margin = 0 if self.taps is None else (len(self.taps) // 2) // self.up + 2
        self._buffer: np.ndarray | None = None
        self._buffer_start = 0  # input index of _buffer[0]
        self.n_in = 0  # input samples pushed
        self.n_out = 0  # output samples returned

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add the next input samples; returns the output samples that are now final (maybe none)."""
        if self.identity:
            self.n_in += len(samples)
            self.n_out += len(samples)
            self._buffer = samples[:0]  # finish returns an empty piece of this shape
            return samples
        self._buffer = samples if self._buffer is None else np.concatenate([self._buffer, samples])
        self.n_in += len(samples)
        return self._emit(max(self.n_out, (self.n_in - self.margin) * self.up // self.down))

    def finish(self) -> np.ndarray:
        """The last output samples: ``ceil(n_in * rate_out / rate_in)`` in all."""
        if self.identity or self._buffer is None:
            return self._buffer if self._buffer is not None else np.zeros((0,), dtype=np.float32)
        return self._emit(-(-self.n_in * self.up // self.down))

    def _stretch_start(self) -> int:
        """The input index, a multiple of ``down``, from which output ``n_out`` on is exact."""
        return max(0, self.n_out * self.down // self.up - self.margin) // self.down * self.down

    def _emit(self, stop: int) -> np.ndarray:
        """Outputs ``[n_out, stop)`` from the buffered inputs; drops the inputs no longer needed."""
        assert self._buffer is not None
        if stop <= self.n_out:
            return self._buffer[:0]
        start = self._stretch_start()
        stretch = self._buffer[start - self._buffer_start :]
        taps = self.taps.astype(stretch.dtype) if np.issubdtype(stretch.dtype, np.floating) else self.taps
        offset = start * self.up // self.down
        out = resample_poly(stretch, self.up, self.down, axis=0, window=taps)[self.n_out - offset : stop - offset]
        self.n_out = stop
        keep = self._stretch_start()
        self._buffer = self._buffer[keep - self._buffer_start :]
        self._buffer_start = keep
        return out


def load_source(wsj_root: Path, relative_path: str, rate: int, expected_rate: int | None = WSJ0_RATE) -> np.ndarray:
    """Raw int16 values of an utterance's first channel at ``rate`` Hz (float64 when resampled).

    Returns:
        ``[time]`` at ``rate``; int16 when no resampling was needed, as the public scripts have it.
    """
    samples, file_rate = read_int16_first_channel(resolve_utterance(wsj_root, relative_path), expected_rate)
    return resample(samples, file_rate, rate)


def fix_length(sources: Sequence[np.ndarray], mode: str) -> list[np.ndarray]:
    """``min``: cut every source to the shortest; ``max``: zero-pad at the end to the longest.

    Args:
        sources: one ``[time_k]`` array per talker.
    Returns:
        one float64 ``[time]`` array per talker, all of the same length.
    """
    if mode == "min":
        length = min(len(s) for s in sources)
        return [np.asarray(s[:length], dtype=np.float64) for s in sources]
    if mode == "max":
        length = max(len(s) for s in sources)
        return [np.concatenate([np.asarray(s, dtype=np.float64), np.zeros(length - len(s))]) for s in sources]
    raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def convolve_binaural(source: np.ndarray, hrir: np.ndarray) -> np.ndarray:
    """Convolve a dry source with a left/right HRIR pair, keeping the source's length.

    Args:
        source: ``[time]``.
        hrir: ``[2, taps]`` (left, right).
    Returns:
        ``[time, 2]``: ``fftconvolve(mode="same")`` per ear, so the output is centred on the
        HRIR's middle tap as in the public dataset.
    """
    if hrir.ndim != 2 or hrir.shape[0] != 2:
        raise ValueError(f"hrir must be [2, taps], got shape {hrir.shape}")
    return np.stack([fftconvolve(source, hrir[ear], mode="same") for ear in range(2)], axis=1)


def match_energy(dry: np.ndarray, binaural: np.ndarray) -> np.ndarray:
    """Rescale a binaural source ``[time, 2]`` so its energy per ear equals the dry source's.

    Factor ``sqrt(2 * sum(dry**2) / sum(binaural**2))``: the talker keeps the level the metadata
    gave it, whatever the HRIR's gain.
    """
    energy = np.sum(binaural**2)
    if energy == 0:
        return binaural
    return binaural * np.sqrt(np.sum(dry**2) * 2 / energy)


def spatialize(source: np.ndarray, hrir: np.ndarray) -> np.ndarray:
    """Dry ``[time]`` -> binaural ``[time, 2]`` at the dry source's energy."""
    return match_energy(source, convolve_binaural(source, hrir))


def mix_sources(binaural_sources: Sequence[np.ndarray]) -> np.ndarray:
    """The mixture is the sum of the binaural sources (not their mean): ``[time, 2]``."""
    return np.sum(np.stack(binaural_sources, axis=0), axis=0)


# --------------------------------------------------------------------------------------------
# Noisy variant (WHAM!-style noise, the public noisy Binaural-WSJ0Mix chain)
# --------------------------------------------------------------------------------------------


def to_unit_scale(samples: np.ndarray) -> np.ndarray:
    """Raw int16-valued samples to [-1, 1] floats: the public ``quantize`` (``float64(x) / 2**15``)."""
    return np.float64(samples) / (2**15)


def wham_speech_sources(sources: Sequence[np.ndarray], gains: Sequence[float], speech_gain: float) -> list[np.ndarray]:
    """Dry sources of the noisy variant, in the public order of operations.

    ``read_scaled_wav`` (raw int16 values times the WSJ0-2mix gain), ``quantize`` (to [-1, 1]),
    then times the WHAM! speech gain ``scaling_wham_speech_*``.

    Args:
        sources: one ``[time_k]`` raw-int16-valued array per talker, at the output rate.
    Returns:
        one float64 ``[time_k]`` array per talker.
    """
    return [to_unit_scale(s * g) * speech_gain for s, g in zip(sources, gains)]


def place_in_noise(
    sources: Sequence[np.ndarray], noise: np.ndarray, mode: str, speech_start_16k: int, rate: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """The public ``append_or_truncate``: line the sources up with the noise segment.

    ``min``: the noise is cut to the sources, from the speech start; ``max``: the sources are
    zero-padded to the noise's length, starting at the speech start. The start is given at 16 kHz
    and halved (floor) at 8 kHz, as the public scripts do.

    Args:
        sources: ``[time, ...]`` arrays of equal length (after :func:`fix_length`).
        noise: ``[noise_time, ...]``, at least ``start + time`` long.
    Raises:
        ValueError: the noise segment is too short to hold the sources at the speech start.
    """
    start = speech_start_16k // (WSJ0_RATE // rate) if rate != WSJ0_RATE else speech_start_16k
    length = len(sources[0])
    if start + length > len(noise):
        raise ValueError(
            f"noise segment of {len(noise)} samples cannot hold {length} samples of speech starting at {start}"
        )
    if mode == "min":
        return [np.asarray(s) for s in sources], noise[start : start + length]
    if mode == "max":
        placed = []
        for s in sources:
            padded = np.zeros(noise.shape[:1] + np.shape(s)[1:], dtype=np.result_type(s, noise))
            padded[start : start + length] = s
            placed.append(padded)
        return placed, noise
    raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def wham_mixtures(sources: Sequence[np.ndarray], noise: np.ndarray) -> dict[str, np.ndarray]:
    """``mix_clean`` (sum of the sources), ``mix_single`` (noise + s1) and ``mix_both`` (noise + all
    sources), summed in the public order so the float bits match."""
    mix_clean = sources[0]
    for s in sources[1:]:
        mix_clean = mix_clean + s
    mix_both = noise + sources[0]
    for s in sources[1:]:
        mix_both = mix_both + s
    return {"mix_clean": mix_clean, "mix_single": noise + sources[0], "mix_both": mix_both}


# --------------------------------------------------------------------------------------------
# Reverberant variant (binaural room impulse responses, ``[taps, 2]`` as the wav files hold them)
# --------------------------------------------------------------------------------------------


def _check_brir(brir: np.ndarray) -> None:
    if brir.ndim != 2 or brir.shape[1] != 2:
        raise ValueError(f"brir must be [taps, 2] (left, right), got shape {brir.shape}")


def direct_path_onset(brir: np.ndarray, threshold_db: float = -20.0, lead: int = 16) -> int:
    """Sample index just before the direct sound of a BRIR, common to both ears.

    The first tap where either ear comes within ``threshold_db`` of the BRIR's largest magnitude,
    minus ``lead`` samples (room for the band-limited onset), at least 0.

    Args:
        brir: ``[taps, 2]``.
    """
    _check_brir(brir)
    envelope = np.max(np.abs(brir), axis=1)
    peak = float(envelope.max()) if len(envelope) else 0.0
    if peak == 0.0:
        return 0
    first = int(np.argmax(envelope >= peak * 10 ** (threshold_db / 20)))
    return max(0, first - lead)


def convolve_brir(source: np.ndarray, brir: np.ndarray, onset: int | None = None) -> np.ndarray:
    """Reverberant binaural image of a dry source: each ear convolved with its own BRIR.

    The output keeps the source's length and starts at ``onset`` of the full convolution (default
    :func:`direct_path_onset`), so the direct sound stays where the dry speech is: nothing of the
    utterance is cut, the tail beyond the source's end is. Both ears share the offset, so the
    interaural time difference is kept.

    Args:
        source: ``[time]``.
        brir: ``[taps, 2]`` (left, right).
    Returns:
        ``[time, 2]``: ``np.convolve(source, brir[:, ear])[onset : onset + time]`` per ear.
    """
    _check_brir(brir)
    onset = direct_path_onset(brir) if onset is None else int(onset)
    length = len(source)
    ears = []
    for ear in range(2):
        full = fftconvolve(source, brir[:, ear])
        ears.append(full[onset : onset + length])
    return np.stack(ears, axis=1)


def convolve_brir_published(source: np.ndarray, brir: np.ndarray) -> np.ndarray:
    """The published reverberant Binaural-WSJ0Mix convolution, flaw included.

    The public ``convolve_hrtf_reverb`` stacks the source into ``[time, 2]`` and calls
    ``fftconvolve(stacked, brir, mode="same")``: a 2-D convolution over time *and* ear. Its left
    output is the source convolved with the left BRIR, its right output the source convolved with
    the *sum* of the left and right BRIRs; ``mode="same"`` then centres the output on the BRIR's
    middle tap (the start of the reverberant speech is cut, ``(taps - 1) // 2`` samples of tail
    are kept). Only for comparisons with published numbers.

    Returns:
        ``[time, 2]``.
    """
    _check_brir(brir)
    return fftconvolve(np.stack((source, source), 1), brir, mode="same")


def spatialize_reverb(source: np.ndarray, brir: np.ndarray, mode: str = "per_ear", onset: int | None = None) -> np.ndarray:
    """Dry ``[time]`` -> reverberant binaural ``[time, 2]`` at the dry source's energy per ear.

    Args:
        mode: ``"per_ear"`` (:func:`convolve_brir`) or ``"published"``
            (:func:`convolve_brir_published`).
    """
    if mode == "per_ear":
        return match_energy(source, convolve_brir(source, brir, onset))
    if mode == "published":
        return match_energy(source, convolve_brir_published(source, brir))
    raise ValueError(f"reverb mode must be 'per_ear' or 'published', got {mode!r}")
