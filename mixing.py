"""The binaural mixing chain as small pure functions (the public Binaural-WSJ0Mix processing).

Per mixture: raw int16 source -> (8 kHz: ``resample_poly``) -> gain -> min/max length ->
HRIR convolution per ear (``fftconvolve(mode="same")``) -> energy rescaling -> sum.
Each step is a function of arrays only, so the generator and dynamic mixing share them and each
is tested on its own.
"""
from __future__ import annotations

from math import gcd
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.signal import fftconvolve, resample_poly

from audio_io import read_int16_first_channel, resolve_utterance

WSJ0_RATE = 16000


def resample(samples: np.ndarray, rate_in: int, rate_out: int, axis: int = 0) -> np.ndarray:
    """Polyphase resampling as the public scripts do (``resample_poly(x, out, in)``).

    The public scripts pass the raw rates (8000, 16000) without reducing them; ``resample_poly``
    reduces by the gcd itself, so the result is the same. Returns the input unchanged (no copy,
    same dtype) when the rates match.
    """
    if rate_in == rate_out:
        return samples
    divisor = gcd(rate_out, rate_in)
    return resample_poly(samples, rate_out // divisor, rate_in // divisor, axis=axis)


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
