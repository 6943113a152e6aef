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


#: Evenly spaced SNRi quantiles of the test set whose utterances are saved besides the first N: 0 (the
#: worst), 0.25, 0.5, 0.75 and 1 (the best).
EXAMPLE_QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def _quantile_reason(quantile: float) -> str:
    return {0.0: "worst SNRi", 1.0: "best SNRi"}.get(quantile, f"SNRi quantile {quantile:.2f}")


def choose_examples(rows: list[dict], n_first: int, metric: str = "snr_i",
                    quantiles: tuple[float, ...] = EXAMPLE_QUANTILES) -> dict[str, list[str]]:
    """The test utterances whose audio the listening page shows, each with why it was chosen.

    The first ``n_first`` rows (the test set's order), and the utterance at each of ``quantiles`` of
    ``metric`` over every scored row (0: the true worst, 1: the true best, nearest rank between): the
    page then shows the spread of the whole test set, not of its first few utterances.

    Arguments
    ---------
    rows : one dict per test utterance, in the test order: ``snt_id`` and the metrics (``snr_i`` in dB).
    n_first : how many of the first utterances are chosen whatever their score.

    Returns
    -------
    {snt_id: [reason, ...]} in the test order, e.g. ``{"a": ["first 10", "best SNRi"]}``.
    """
    reasons: dict[str, list[str]] = {row["snt_id"]: [f"first {n_first}"] for row in rows[:max(n_first, 0)]}
    scored = sorted((float(row[metric]), index) for index, row in enumerate(rows)
                    if np.isfinite(float(row.get(metric, np.nan))))
    for quantile in quantiles if scored else ():
        index = scored[round(quantile * (len(scored) - 1))][1]
        reasons.setdefault(rows[index]["snt_id"], []).append(_quantile_reason(quantile))
    order = {row["snt_id"]: index for index, row in enumerate(rows)}
    return dict(sorted(reasons.items(), key=lambda item: order[item[0]]))


def choice_rule(n_first: int, n_rows: int, quantiles: tuple[float, ...] = EXAMPLE_QUANTILES) -> str:
    """How :func:`choose_examples` chose, in one sentence for the listening page."""
    shown = ", ".join(f"{q:g}" for q in quantiles)
    return (f"Saved examples: the first {n_first} of the {n_rows} test mixtures, and the mixtures at the SNRi "
            f"quantiles {shown} of the whole test set (0: its worst, 1: its best); a subset, chosen after scoring.")
