"""Saved test examples: binaural estimates written as 16-bit stereo wavs, one gain for both ears."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from binaural.io.audio import write_atomic


def peak_normalize(signal: np.ndarray, peak: float = 1.0) -> tuple[np.ndarray, float]:
    """Scale a binaural signal so its largest sample is ``peak``, with ONE factor for both ears.

    The published recipe divides each ear by its own peak, which erases the interaural level
    difference of every saved file; one common factor keeps it. A silent signal is returned as is.

    Arguments
    ---------
    signal : np.ndarray
        ``[time, ear]``.
    peak : float
        Target peak magnitude (full scale = 1.0).

    Returns
    -------
    (scaled, factor)
        ``[time, ear]`` float64 and the factor applied.
    """
    signal = np.asarray(signal, dtype=np.float64)
    largest = float(np.max(np.abs(signal))) if signal.size else 0.0
    factor = peak / largest if largest > 0 else 1.0
    return signal * factor, factor


def to_pcm16(signal: np.ndarray) -> np.ndarray:
    """``[time, ear]`` in [-1, 1] -> int16 by rounding ``x * 32767``: full scale never clips."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.size and float(np.max(np.abs(signal))) > 1.0:
        raise ValueError("to_pcm16 needs samples within [-1, 1]; peak_normalize the signal first")
    return np.round(signal * 32767.0).astype(np.int16)


def save_binaural_wav(path: Path, signal: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write ``[time, ear]`` as a 16-bit stereo wav, peak-normalised with one factor for both ears."""
    if isinstance(signal, torch.Tensor):
        signal = signal.detach().float().cpu().numpy()
    scaled, _ = peak_normalize(signal)
    write_atomic(Path(path), to_pcm16(scaled), sample_rate, subtype="PCM_16")
