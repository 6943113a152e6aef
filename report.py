#!/usr/bin/env python3
"""A results report (Markdown + PNG figures) for one experiment folder, headless.

    python report.py RESULTS_FOLDER

Reads what the recipe leaves in a SpeechBrain output folder:
- ``test_results.csv`` (required): ``snt_id`` + metrics per test mixture, last row ``avg``;
- ``train_log.txt`` (optional): SpeechBrain's ``FileTrainLogger`` lines, one per epoch, e.g.
  ``epoch: N, lr: ... - train loss: X, ... - valid loss: Y, ...`` (this recipe) or
  ``... - train si-snr: X - valid si-snr: Y`` (SpeechBrain's separation recipes). Both log the
  loss, a NEGATIVE SNR, so the curves show −X and −Y (dB);
- ``audio_results/`` (optional, also looked for under ``save/``): ``item<id>_mix.wav``,
  ``item<id>_source<k>.wav`` (target) and ``item<id>_source<k>hat.wav`` (estimate), stereo.

Writes ``report.md`` and its figures next to ``test_results.csv``: training curve, distributions
of SNRi / ΔITD / ΔILD, SNRi and ΔITD against the talkers' angular separation (when the test names
carry azimuths: ``subject_utt1_az1_el1_utt2_az2_el2[_utt3_az3_el3]``), and spectrograms of one
example, both ears. A part whose input is absent is skipped with a note in the report. Every file
is written to a temporary file and moved into place, so a reader never sees half a figure.

Figures are drawn with matplotlib's object API on Agg canvases: no display is needed, and the
caller's pyplot backend is left alone.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.signal import spectrogram

from atomic import atomic_path
from metrics import METRIC_UNITS
from errors import RecipeError

REPORT_NAME = "report.md"
RESULTS_CSV = "test_results.csv"
TRAIN_LOG = "train_log.txt"
FIGURES = {
    "curve": "training_curve.png",
    "distributions": "test_distributions.png",
    "separation": "metrics_vs_separation.png",
    "example": "example_spectrograms.png",
}
# Units of the recipe's metrics, from the module that computes them (others are shown without a unit).
UNITS = METRIC_UNITS
LABELS = {
    "snr": "SNR", "snr_i": "SNRi", "si_snr": "SI-SNR", "si_snr_i": "SI-SNRi", "sdr": "SDR", "sdr_i": "SDRi",
    "delta_ITD": "ΔITD", "delta_ITD_fine": "ΔITD (1/16 sample)", "delta_ILD": "ΔILD",
}
# The histograms: the separation quality and the two binaural-cue errors of the published table.
DISTRIBUTIONS = ("snr_i", "delta_ITD", "delta_ILD")


class ReportError(RecipeError):
    """A results folder the report cannot be made from."""


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_EPOCH = re.compile(r"(?:^|[\s,])epoch:\s*(\d+)")
_STAT = re.compile(rf"\b(train|valid)\s+([^:,\-][^:,]*?):\s*({_NUMBER})(?=\s*(?:,|-\s|$))", re.IGNORECASE)


@dataclass
class TrainLog:
    """Per-epoch statistics: ``stats[(stage, key)] = {epoch: value}``, stage ``train``/``valid``."""

    stats: dict[tuple[str, str], dict[int, float]]

    def keys(self) -> list[str]:
        return sorted({key for _, key in self.stats})


def parse_train_log(path: Path) -> TrainLog:
    """Every ``train <key>: <value>`` and ``valid <key>: <value>`` of each ``epoch: N`` line.

    Lines without ``epoch:`` (e.g. SpeechBrain's final ``Epoch loaded: N - test ...``) are skipped;
    an epoch logged twice (a resumed run) keeps its last values.
    """
    stats: dict[tuple[str, str], dict[int, float]] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        epoch = _EPOCH.search(line)
        if not epoch:
            continue
        for stage, key, value in _STAT.findall(line):
            stats.setdefault((stage.lower(), key.strip()), {})[int(epoch.group(1))] = float(value)
    return TrainLog(stats)


def _normalise_column(name: str) -> str:
    """``si-snr_i`` and `` si_snr_i`` are the same column (SpeechBrain spells some with hyphens)."""
    name = name.strip()
    return name if name in UNITS else name.replace("-", "_")


def read_results(path: Path) -> tuple[list[dict], dict | None]:
    """The per-utterance rows (``snt_id`` + float metrics) and the ``avg`` row (None if absent).

    Values that are not numbers become NaN rather than stopping the report.
    """
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream, skipinitialspace=True)
        if not reader.fieldnames or "snt_id" not in [_normalise_column(c) for c in reader.fieldnames]:
            raise ReportError(
                f"{path}: no snt_id column (header {reader.fieldnames}); expected SpeechBrain's test_results.csv "
                "(snt_id, snr, snr_i, ..., last row avg)"
            )
        rows, average = [], None
        for raw in reader:
            row: dict = {}
            for column, value in raw.items():
                if column is None:
                    continue
                column = _normalise_column(column)
                if column == "snt_id":
                    row[column] = (value or "").strip()
                else:
                    try:
                        row[column] = float(value)
                    except (TypeError, ValueError):
                        row[column] = math.nan
            if row.get("snt_id") == "avg":
                average = row
            elif row.get("snt_id"):
                rows.append(row)
    return rows, average


def parse_azimuths(name: str) -> list[float] | None:
    """Azimuths (degrees) from ``subject_utt1_az1_el1_utt2_az2_el2[_utt3_az3_el3]``, else None.

    The name is split on ``_`` (subject names and WSJ0 utterance ids have none; a negative azimuth
    keeps its ``-``), so the azimuths are parts 2, 5 (and 8). A directory or ``.wav`` is ignored.
    """
    stem = Path(str(name).strip()).name
    if stem.lower().endswith(".wav"):
        stem = stem[: -len(".wav")]
    parts = stem.split("_")
    if len(parts) not in (7, 10):
        return None
    try:
        azimuths = [float(parts[k]) for k in range(2, len(parts), 3)]
        [float(parts[k]) for k in range(3, len(parts), 3)]  # elevations: also numbers in a real name
    except ValueError:
        return None
    if not all(math.isfinite(a) for a in azimuths):
        return None
    return azimuths


def angular_separation(azimuths: Sequence[float]) -> float:
    """Smallest pairwise |az_i − az_j| (degrees), taken around the circle (≤ 180°).

    CIPIC azimuths lie in [−80°, 80°], where this is the plain difference; the wrap only matters
    for HRTF sets with azimuths all around the head.
    """
    separations = []
    for i in range(len(azimuths)):
        for j in range(i + 1, len(azimuths)):
            difference = abs(azimuths[i] - azimuths[j]) % 360.0
            separations.append(min(difference, 360.0 - difference))
    if not separations:
        raise ValueError(f"need at least two azimuths, got {list(azimuths)}")
    return min(separations)


def separation_of(name: str) -> float | None:
    """The talkers' angular separation (degrees) spelled in a test name, or None."""
    azimuths = parse_azimuths(name)
    return angular_separation(azimuths) if azimuths else None


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)`` then move the result onto ``path`` (same folder: atomic)."""
    with atomic_path(path) as temporary:
        write(str(temporary))


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    _write_atomic(path, lambda temporary: figure.savefig(temporary, format="png", dpi=110))


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def _label(metric: str) -> str:
    unit = UNITS.get(metric)
    return f"{LABELS.get(metric, metric)} ({unit})" if unit else LABELS.get(metric, metric)


# --------------------------------------------------------------------------------------------
# Figures: each returns (markdown, note), either may be None (a note says what was left out)
# --------------------------------------------------------------------------------------------


# Logged keys whose value is a negative SNR (the recipe's loss), in order of preference, and what
# the flipped value is: SpeechBrain's separation recipes log ``si-snr: <loss>``; this recipe's
# train.py logs ``loss`` (``get_snr_with_pitwrapper``: the negative SNR) for both stages.
NEGATIVE_SNR_KEYS = {"si-snr": "SI-SNR", "si_snr": "SI-SNR", "loss": "SNR"}


def _pick_curve_key(log: TrainLog) -> tuple[str | None, str | None]:
    """(key, quantity): the first ``NEGATIVE_SNR_KEYS`` key logged for training (else for validation)
    and the SNR it is the negative of; else (first key naming an SNR or first key, None): as logged."""
    keys = log.keys()
    for stage in ("train", "valid"):
        for wanted, quantity in NEGATIVE_SNR_KEYS.items():
            for key in keys:
                if key.lower() == wanted and (stage, key) in log.stats:
                    return key, quantity
    snr_keys = [k for k in keys if "snr" in k.lower()]
    return (snr_keys or keys or [None])[0], None


def snr_curves(log: TrainLog) -> tuple[str | None, str | None, dict[str, tuple[list[int], list[float]]]]:
    """(key, quantity, {stage: (epochs, values)}) of the curve to draw.

    With a negative-SNR key (``quantity`` names the SNR), values are in dB, sign-flipped; otherwise
    ``quantity`` is None and the values are as logged. ``key`` is None when nothing was logged.
    """
    key, quantity = _pick_curve_key(log)
    sign = -1.0 if quantity else 1.0
    curves = {}
    for stage in ("train", "valid"):
        series = log.stats.get((stage, key), {})
        if series:
            epochs = sorted(series)
            curves[stage] = (epochs, [sign * series[e] for e in epochs])
    return key, quantity, curves


def training_curve(folder: Path, out: Path) -> tuple[str | None, str | None]:
    """Training and validation SNR (dB) per epoch from ``train_log.txt``: the logged loss, sign-flipped."""
    log_path = folder / TRAIN_LOG
    if not log_path.exists():
        return None, f"No training curve: `{TRAIN_LOG}` is not in this folder (a test-only run, or another folder)."
    key, quantity, curves = snr_curves(parse_train_log(log_path))
    if key is None:
        return None, f"No training curve: `{TRAIN_LOG}` has no `epoch: N ... train <key>: <value>` lines."
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    for stage, style in (("train", "o-"), ("valid", "s--")):
        if stage in curves:
            axes.plot(*curves[stage], style, label=stage, markersize=4)
    axes.set_xlabel("epoch")
    axes.set_ylabel(f"{quantity} (dB) = −logged {key}" if quantity else f"{key} (as logged)")
    axes.set_title(f"Training curve ({quantity or key})")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, out)
    caption = (
        f"Training and validation {quantity} per epoch (dB): the logged `{key}` with its sign flipped."
        if quantity else f"Training and validation `{key}` per epoch, as logged (no negative-SNR loss found)."
    )
    return f"![Training curve]({out.name})\n\n*{caption}*", None


def distributions(rows: list[dict], out: Path) -> tuple[str | None, str | None]:
    """Histograms of SNRi (dB), ΔITD (µs) and ΔILD (dB) over the test utterances."""
    metrics = [m for m in DISTRIBUTIONS if len(_finite([r.get(m, math.nan) for r in rows]))]
    if not metrics:
        return None, f"No distributions: none of {list(DISTRIBUTIONS)} has values in `{RESULTS_CSV}`."
    figure = Figure(figsize=(4 * len(metrics), 3.6))
    for index, metric in enumerate(metrics, start=1):
        values = _finite([r.get(metric, math.nan) for r in rows])
        axes = figure.add_subplot(1, len(metrics), index)
        axes.hist(values, bins=min(30, max(5, len(values) // 3)), color=f"C{index - 1}", alpha=0.8)
        axes.axvline(values.mean(), color="k", linestyle="--", linewidth=1, label=f"mean {values.mean():.2f}")
        axes.set_xlabel(_label(metric))
        axes.set_ylabel("test mixtures")
        axes.legend(fontsize=8)
    figure.suptitle(f"Distributions over {len(rows)} test mixtures")
    _save(figure, out)
    missing = [m for m in DISTRIBUTIONS if m not in metrics]
    note = f"No histogram for {missing}: no values in `{RESULTS_CSV}`." if missing else None
    names = ", ".join(_label(m) for m in metrics)
    return f"![Distributions]({out.name})\n\n*Histograms of {names} over the test mixtures (dashed: mean).*", note


def _binned_means(x: np.ndarray, y: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``y`` in bins of ``width`` over ``x`` (bin centres, means), empty bins left out."""
    edges = np.arange(0.0, x.max() + width, width)
    if len(edges) < 2:
        edges = np.array([0.0, width])
    index = np.clip(np.digitize(x, edges) - 1, 0, len(edges) - 2)
    centres, means = [], []
    for b in range(len(edges) - 1):
        chosen = index == b
        if chosen.any():
            centres.append((edges[b] + edges[b + 1]) / 2)
            means.append(y[chosen].mean())
    return np.asarray(centres), np.asarray(means)


def against_separation(rows: list[dict], out: Path) -> tuple[str | None, str | None]:
    """SNRi and ΔITD against the talkers' angular separation: scatter + binned mean."""
    parsed = [separation_of(r["snt_id"]) for r in rows]
    separations = np.array([math.nan if value is None else value for value in parsed], dtype=float)
    known = np.isfinite(separations)
    if not known.any():
        return None, (
            "No plot against angular separation: the test names carry no azimuths "
            "(expected `subject_utt1_az1_el1_utt2_az2_el2[_utt3_az3_el3]`)."
        )
    metrics = [m for m in ("snr_i", "delta_ITD") if len(_finite([r.get(m, math.nan) for r in rows]))]
    if not metrics:
        return None, f"No plot against angular separation: `{RESULTS_CSV}` has no snr_i or delta_ITD values."
    span = np.nanmax(separations)
    width = 10.0 if span <= 90 else 20.0
    figure = Figure(figsize=(5 * len(metrics), 3.8))
    for index, metric in enumerate(metrics, start=1):
        y = np.array([r.get(metric, math.nan) for r in rows], dtype=float)
        usable = known & np.isfinite(y)
        axes = figure.add_subplot(1, len(metrics), index)
        axes.scatter(separations[usable], y[usable], s=12, alpha=0.5, color=f"C{index - 1}", label="mixtures")
        centres, means = _binned_means(separations[usable], y[usable], width)
        axes.plot(centres, means, "k-o", markersize=4, label=f"mean per {width:.0f}° bin")
        axes.set_xlabel("angular separation |az1 − az2| (degrees)")
        axes.set_ylabel(_label(metric))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    _save(figure, out)
    skipped = int((~known).sum())
    note = f"{skipped} test name(s) without azimuths left out of the separation plot." if skipped else None
    caption = (
        f"{' and '.join(LABELS[m] for m in metrics)} against the talkers' angular separation (minimum pairwise "
        "|Δazimuth| for 3 talkers); points: mixtures, line: binned mean."
    )
    return f"![Against angular separation]({out.name})\n\n*{caption}*", note


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def find_example(folder: Path) -> tuple[Path, list[Path], list[Path]] | None:
    """(mixture, targets, estimates) of the first saved example, or None.

    Looks in ``folder/audio_results``, ``folder/save/audio_results``, then any ``audio_results``
    below ``folder``. Estimates: ``*hat*.wav`` with the mixture's prefix; targets: the other wavs
    with that prefix.
    """
    candidates = [folder / "audio_results", folder / "save" / "audio_results"]
    candidates += sorted(p for p in folder.rglob("audio_results") if p.is_dir() and p not in candidates)
    for audio in candidates:
        if not audio.is_dir():
            continue
        mixtures = sorted(audio.glob("*mix*.wav"), key=_natural_key)
        for mixture in mixtures:
            prefix = _example_prefix(mixture)
            # SpeechBrain's names first (``<prefix>source<k>[hat].wav``), so that an example whose id
            # extends this one's is not taken in; then anything with the prefix.
            strict = re.compile(re.escape(prefix) + r"source\d+(hat)?\.wav")
            others = [p for p in audio.glob(f"{glob_escape(prefix)}*.wav") if p != mixture]
            siblings = [p for p in others if strict.fullmatch(p.name)] or others
            if prefix == "":  # no prefix: any other wav of the folder belongs to this one example
                siblings = [p for p in siblings if "mix" not in p.name]
            siblings.sort(key=_natural_key)
            estimates = [p for p in siblings if "hat" in p.name]
            targets = [p for p in siblings if "hat" not in p.name]
            if estimates or targets:
                return mixture, targets, estimates
    return None


def _example_prefix(mixture: Path) -> str:
    """``item<id>_`` of ``item<id>_mix.wav``: up to the last ``mix`` (an id may contain the word)."""
    return mixture.name[: mixture.name.rfind("mix")]


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters made literal."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _spectrogram_db(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequencies Hz, times s, power dB) with 32 ms windows and 8 ms hops."""
    window = max(16, int(0.032 * rate))
    freqs, times, power = spectrogram(samples, fs=rate, nperseg=min(window, len(samples)),
                                      noverlap=min(window, len(samples)) * 3 // 4)
    return freqs, times, 10 * np.log10(power + 1e-12)


def example_figure(folder: Path, out: Path) -> tuple[str | None, str | None]:
    """Spectrograms of one example: mixture, then target and estimate of each talker; ears in columns."""
    found = find_example(folder)
    if found is None:
        return None, (
            "No example figure: no `audio_results/` with `*mix*.wav` and `*hat*.wav` files "
            "(SpeechBrain separation recipes write them at test time when `save_audio: True`)."
        )
    mixture, targets, estimates = found
    rows: list[tuple[str, Path]] = [("mixture", mixture)]
    # Interleave target k / estimate k: a talker's pair sits on adjacent rows.
    for k in range(max(len(targets), len(estimates))):
        if k < len(targets):
            rows.append((f"target: {targets[k].stem}", targets[k]))
        if k < len(estimates):
            rows.append((f"estimate: {estimates[k].stem}", estimates[k]))
    signals = []
    for title, path in rows:
        try:
            samples, rate = sf.read(str(path), dtype="float64", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as error:
            return None, f"No example figure: `{path}` is unreadable ({error})."
        signals.append((title, samples, rate))
    ears = max(s.shape[1] for _, s, _ in signals)
    ear_names = ["left ear", "right ear"] if ears == 2 else [f"channel {c + 1}" for c in range(ears)]
    peak = max(
        float(_spectrogram_db(s[:, c], r)[2].max()) for _, s, r in signals for c in range(s.shape[1]) if len(s) > 1
    )
    figure = Figure(figsize=(5.5 * ears, 1.9 * len(signals) + 0.6))
    image = None
    for row, (title, samples, rate) in enumerate(signals):
        for ear in range(ears):
            axes = figure.add_subplot(len(signals), ears, row * ears + ear + 1)
            channel = samples[:, min(ear, samples.shape[1] - 1)]
            freqs, times, power = _spectrogram_db(channel, rate)
            image = axes.pcolormesh(times, freqs / 1000, power, shading="auto", cmap="magma",
                                    vmin=peak - 80, vmax=peak)
            axes.set_title(f"{title} — {ear_names[ear]}", fontsize=9)
            axes.set_ylabel("kHz")
            if row == len(signals) - 1:
                axes.set_xlabel("time (s)")
    FigureCanvasAgg(figure)
    # One colour bar for all panels (same dB scale) in its own strip on the right.
    figure.subplots_adjust(left=0.07, right=0.88, top=0.95, bottom=0.07, hspace=0.6, wspace=0.2)
    if image is not None:
        figure.colorbar(image, cax=figure.add_axes((0.91, 0.25, 0.015, 0.5)), label="power (dB)")
    _write_atomic(out, lambda temporary: figure.savefig(temporary, format="png", dpi=110))
    mono = " (mono files: one column)" if ears == 1 else ""
    example = _example_prefix(mixture).rstrip("_") or mixture.stem
    caption = f"Spectrograms of example `{example}`: mixture, targets and estimates, left and right ear{mono}."
    return f"![Example]({out.name})\n\n*{caption}*", None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _format(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2f}"


def _average_table(rows: list[dict], average: dict | None) -> tuple[str, str | None]:
    note = None
    if average is None:
        average = {}
        for column in (c for c in rows[0] if c != "snt_id"):
            values = _finite([r.get(column, math.nan) for r in rows])
            average[column] = float(values.mean()) if len(values) else math.nan
        note = f"`{RESULTS_CSV}` has no `avg` row; the averages above are computed here over {len(rows)} rows."
    lines = ["| metric | average | unit |", "| --- | ---: | --- |"]
    for column, value in average.items():
        if column == "snt_id":
            continue
        name, unit = LABELS.get(column, column), UNITS.get(column, "")
        lines.append(f"| {name} (`{column}`) | {_format(float(value))} | {unit} |")
    return "\n".join(lines), note


def write_report(results_folder: str | os.PathLike) -> Path:
    """Write ``report.md`` and its PNG figures into ``results_folder``; returns the report's path.

    Raises:
        ReportError: the folder or its ``test_results.csv`` is missing or unusable.
    """
    folder = Path(results_folder)
    csv_path = folder / RESULTS_CSV
    if not folder.is_dir():
        raise ReportError(
            f"{folder}: not a folder; give the experiment's output folder (the one holding {RESULTS_CSV})"
        )
    if not csv_path.exists():
        raise ReportError(
            f"{csv_path}: not found. {folder} has no test results yet: run the recipe's test stage "
            f"(training ends with it and SpeechBrain writes {RESULTS_CSV} into the output folder), or score "
            f"saved estimates with `python metrics.py --mix_dir D/mix --ref_dir D --est_dir E --out {csv_path}`"
        )
    rows, average = read_results(csv_path)
    if not rows:
        raise ReportError(f"{csv_path}: no per-mixture rows (only a header or the avg row); rerun the test stage")

    table, table_note = _average_table(rows, average)
    sections = [
        f"# Results: {'/'.join(folder.resolve().parts[-2:])}",
        f"Report of `{folder}`: {len(rows)} test mixtures from `{RESULTS_CSV}`.",
        "## Test averages",
        table,
    ]
    notes = [table_note] if table_note else []
    parts = [
        ("Training", lambda out: training_curve(folder, out), FIGURES["curve"]),
        ("Distributions over the test set", lambda out: distributions(rows, out), FIGURES["distributions"]),
        ("Against the talkers' angular separation", lambda out: against_separation(rows, out), FIGURES["separation"]),
        ("Example", lambda out: example_figure(folder, out), FIGURES["example"]),
    ]
    for heading, make, name in parts:
        markdown, note = make(folder / name)
        if markdown:
            sections += [f"## {heading}", markdown]
        if note:
            notes.append(note)
    if notes:
        sections += ["## Notes", "\n".join(f"- {n}" for n in notes)]
    text = "\n\n".join(sections) + "\n"
    report = folder / REPORT_NAME

    def write(temporary: str) -> None:
        Path(temporary).write_text(text, encoding="utf-8")

    _write_atomic(report, write)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write report.md and PNG figures for one experiment's results.")
    parser.add_argument("results_folder", type=Path, help=f"the SpeechBrain output folder holding {RESULTS_CSV}")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.results_folder)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
