"""A results report for one experiment folder, headless: ``report.md`` and a listening page ``report.html``.

    python report.py RESULTS_FOLDER   (the command line)

Reads what the recipe leaves in a SpeechBrain output folder:
- ``test_results.csv`` (required): ``snt_id`` + metrics per test mixture, last row ``avg``;
- ``train_log.txt`` (optional): SpeechBrain's ``FileTrainLogger`` lines, one per epoch, e.g.
  ``epoch: N, lr: ... - train loss: X, ... - valid loss: Y, ...`` (this recipe) or
  ``... - train si-snr: X - valid si-snr: Y`` (SpeechBrain's separation recipes). Both log the
  loss, a NEGATIVE SNR, so the curves show −X and −Y (dB);
- ``audio_results/`` (optional, also looked for under ``save/``): ``<id>_mix.wav``,
  ``<id>_source<k>.wav`` (target) and ``<id>_source<k>hat.wav`` (estimate), stereo (the published
  recipe's ``item<id>_...`` too), and ``chosen_examples.json``: why the test stage saved each.

Writes next to ``test_results.csv``:
- ``report.md`` and its figures: training curve, distributions of SNRi / ΔITD / ΔILD, SNRi and ΔITD
  against the talkers' angular separation (when the test names carry azimuths:
  ``subject_utt1_az1_el1_utt2_az2_el2[_utt3_az3_el3]``), and spectrograms of one example, both ears;
- ``report.html``, the listening page: the same table and figures, then one row per saved example,
  ordered by SNRi (best first; best and worst marked) with its SNRi, ΔITD and ΔILD, a player for the
  mixture, each target and each estimate (stereo files: with headphones, each talker is heard where
  it is), and a small spectrogram of each (``report_files/``: left ear above right ear, with time and frequency axes). The page is
  plain HTML and CSS with relative links: it works opened from disk (``file://``), fetches nothing
  from the network and needs no JavaScript. :func:`write_separation_page` makes the same page for
  ``separate.py --report`` (mixtures and estimates, no references, so no metrics).

A part whose input is absent is skipped with a note in the report. Every file is written to a
temporary file and moved into place, so a reader never sees half a figure.

Figures are drawn with matplotlib's object API on Agg canvases: no display is needed, and the
caller's pyplot backend is left alone.
"""
from __future__ import annotations

import csv
import dataclasses
import html
import json
import math
import os
import re
import textwrap
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import soundfile as sf
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from binaural.data.layout import CHOSEN_EXAMPLES_NAME
from binaural.io.atomic import atomic_path
from binaural.evaluation.metrics import METRIC_UNITS
from binaural.errors import RecipeError

REPORT_NAME = "report.md"
PAGE_NAME = "report.html"
# The listening page's spectrogram thumbnails, beside the page; the folder belongs to the page.
PAGE_FILES = "report_files"
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
    "delta_ITD": "ΔITD", "delta_ITD_fine": "ΔITD (1/16 sample, |ITD| ≤ 1 ms)", "delta_ILD": "ΔILD",
}
# The histograms: the separation quality and the two binaural-cue errors of the published table.
# ΔITD at whole-sample lags (spikes at multiples of 1/rate) and at 1/16 sample, side by side.
DISTRIBUTIONS = ("snr_i", "delta_ITD", "delta_ITD_fine", "delta_ILD")
# The metrics shown beside each example of the listening page; the first one orders the examples.
EXAMPLE_METRICS = ("snr_i", "delta_ITD", "delta_ILD")


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

    Values that are not numbers become NaN rather than stopping the report; a file that is not a
    text CSV (binary, unreadable) is a :class:`ReportError` naming it.
    """
    try:
        return _read_results(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        reason = "not a text CSV" if isinstance(error, (UnicodeDecodeError, csv.Error)) else "unreadable"
        raise ReportError(
            f"{path}: {reason} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else error!r}); "
            "expected SpeechBrain's test_results.csv (snt_id, snr, snr_i, ..., last row avg): rerun the test "
            "stage or metrics.py to write it again"
        ) from error


def _read_results(path: Path) -> tuple[list[dict], dict | None]:
    """:func:`read_results` without the translation of read errors."""
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


def parse_directions(name: str) -> tuple[str, list[tuple[float, float]]] | None:
    """(listener, [(azimuth, elevation) per talker], degrees) from the generator's test names
    ``listener_utt1_az1_el1_utt2_az2_el2[_utt3_az3_el3]`` (e.g. ``subject15_...``, ``sphere03_...``), else None.

    The name is split on ``_`` (listener names and WSJ0 utterance ids have none; a negative azimuth
    keeps its ``-``), so the azimuths are parts 2, 5 (and 8), the elevations the parts after them.
    A directory or ``.wav`` is ignored.
    """
    stem = Path(str(name).strip()).name
    if stem.lower().endswith(".wav"):
        stem = stem[: -len(".wav")]
    parts = stem.split("_")
    if len(parts) not in (7, 10):
        return None
    try:
        directions = [(float(parts[k]), float(parts[k + 1])) for k in range(2, len(parts), 3)]
    except ValueError:
        return None
    if not all(math.isfinite(a) for a, _ in directions):
        return None
    return parts[0], directions


def parse_azimuths(name: str) -> list[float] | None:
    """Azimuths (degrees) from ``subject_utt1_az1_el1_utt2_az2_el2[_utt3_az3_el3]``, else None
    (:func:`parse_directions`)."""
    parsed = parse_directions(name)
    return [azimuth for azimuth, _ in parsed[1]] if parsed else None


def directions_text(name: str) -> str | None:
    """The talkers' directions of a test name for the page, e.g. ``subject15: talker 1 az 30° el 56°;
    talker 2 az 10° el 62°``; None when the name does not spell them."""
    parsed = parse_directions(name)
    if parsed is None:
        return None
    listener, directions = parsed
    talkers = "; ".join(f"talker {k} az {az:g}° el {el:g}°" for k, (az, el) in enumerate(directions, start=1))
    return f"listener {listener}: {talkers}"


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
# Figures: each returns (figure, note), either may be None (a note says what was left out)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFigure:
    """A figure of the report: its PNG (a file name in the results folder) and what it shows.

    ``caption`` and ``alt`` may hold `` `code` `` spans; both renderers (Markdown, HTML) read them.
    """

    heading: str
    image: str
    alt: str
    caption: str


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


def training_curve(folder: Path, out: Path) -> tuple[ReportFigure | None, str | None]:
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
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5 tick
    axes.set_ylabel(f"{quantity} (dB) = −logged {key}" if quantity else f"{key} (as logged)")
    axes.set_title(f"Training curve ({quantity or key})")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, out)
    caption = (
        f"Training and validation {quantity} per epoch (dB): the logged `{key}` with its sign flipped."
        if quantity else f"Training and validation `{key}` per epoch, as logged (no negative-SNR loss found)."
    )
    return ReportFigure("Training", out.name, "Training curve", caption), None


def distributions(rows: list[dict], out: Path) -> tuple[ReportFigure | None, str | None]:
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
    caption = f"Histograms of {names} over the test mixtures (dashed: mean)."
    return ReportFigure("Distributions over the test set", out.name, "Distributions", caption), note


#: A bin of at most this many mixtures is drawn hollow: its mean is one or two points, not a trend.
SPARSE_BIN = 2


def _binned_means(x: np.ndarray, y: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of ``y`` in bins of ``width`` over ``x``: (bin centres, means, counts), empty bins left out."""
    edges = np.arange(0.0, x.max() + width, width)
    if len(edges) < 2:
        edges = np.array([0.0, width])
    index = np.clip(np.digitize(x, edges) - 1, 0, len(edges) - 2)
    centres, means, counts = [], [], []
    for b in range(len(edges) - 1):
        chosen = index == b
        if chosen.any():
            centres.append((edges[b] + edges[b + 1]) / 2)
            means.append(y[chosen].mean())
            counts.append(int(chosen.sum()))
    return np.asarray(centres), np.asarray(means), np.asarray(counts, dtype=int)


def _draw_binned_means(axes, centres: np.ndarray, means: np.ndarray, counts: np.ndarray, width: float) -> None:
    """The binned means as a line, each bin's count written above it (``n=3``); bins of at most
    SPARSE_BIN mixtures hollow, so that a mean of one or two mixtures is not read as a trend."""
    axes.plot(centres, means, "k-", linewidth=1)
    solid = counts > SPARSE_BIN
    axes.plot(centres[solid], means[solid], "ko", markersize=4, label=f"mean per {width:.0f}° bin")
    if (~solid).any():
        axes.plot(centres[~solid], means[~solid], "o", markersize=6, markerfacecolor="none", markeredgecolor="k",
                  label=f"bin of ≤ {SPARSE_BIN} mixtures")
    for centre, mean, count in zip(centres, means, counts):
        axes.annotate(f"n={count}", (centre, mean), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)


def against_separation(rows: list[dict], out: Path) -> tuple[ReportFigure | None, str | None]:
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
        _draw_binned_means(axes, *_binned_means(separations[usable], y[usable], width), width)
        axes.set_xlabel("angular separation |az1 − az2| (degrees)")
        axes.set_ylabel(_label(metric))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    _save(figure, out)
    skipped = int((~known).sum())
    note = f"{skipped} test name(s) without azimuths left out of the separation plot." if skipped else None
    caption = (
        f"{' and '.join(LABELS[m] for m in metrics)} against the talkers' angular separation (minimum pairwise "
        "|Δazimuth| for 3 talkers); points: mixtures, line: binned mean, `n=` the mixtures in each bin (hollow: "
        f"{SPARSE_BIN} or fewer)."
    )
    heading = "Against the talkers' angular separation"
    return ReportFigure(heading, out.name, "Against angular separation", caption), note


# --------------------------------------------------------------------------------------------
# Saved examples
# --------------------------------------------------------------------------------------------


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


@dataclass(frozen=True)
class Example:
    """One example of the listening page: a mixture and the targets and estimates of its talkers.

    All are wav files, ``[time, ear]``. ``estimates[k]`` estimates the talker of ``targets[k]``;
    ``targets`` is empty for a user's recording (no references). ``metrics``: the example's row of
    ``test_results.csv`` (column -> value, SNRi in dB, ΔITD in µs...), empty when unknown.
    """

    name: str
    mixture: Path
    targets: tuple[Path, ...]
    estimates: tuple[Path, ...]
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: Why the test stage saved it (``chosen_examples.json``: "first 10", "best SNRi"...); empty if unknown.
    chosen_as: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        """What orders the listening page: ``EXAMPLE_METRICS[0]`` (SNRi, dB); NaN when unknown."""
        return float(self.metrics.get(EXAMPLE_METRICS[0], math.nan))

    def files(self) -> list[tuple[str, Path]]:
        """(role, file) in the page's order: mixture, then target k and estimate k of each talker."""
        files = [("mixture", self.mixture)]
        for k in range(max(len(self.targets), len(self.estimates))):
            if k < len(self.targets):
                files.append((f"talker {k + 1} target", self.targets[k]))
            if k < len(self.estimates):
                files.append((f"talker {k + 1} estimate", self.estimates[k]))
        return files


def _example_prefix(mixture: Path) -> str:
    """``item<id>_`` of ``item<id>_mix.wav``: up to the last ``mix`` (an id may contain the word)."""
    return mixture.name[: mixture.name.rfind("mix")]


def _example_name(mixture: Path) -> str:
    """The test id of ``item<id>_mix.wav`` (train.py's ``save_audio`` names), else the prefix or stem."""
    name = _example_prefix(mixture)
    name = name[len("item"):] if name.startswith("item") else name
    name = name[:-1] if name.endswith("_") else name
    return name or mixture.stem


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters made literal."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _examples_in(audio: Path) -> list[Example]:
    """Every example of one folder, in natural order of the mixtures' names.

    Estimates: ``*hat*.wav`` with the mixture's prefix; targets: the other wavs with that prefix.
    """
    examples: list[Example] = []
    claimed: set[Path] = set()  # a target whose id holds "mix" is not a mixture of its own
    for mixture in sorted(audio.glob("*mix*.wav"), key=_natural_key):
        if mixture in claimed:
            continue
        prefix = _example_prefix(mixture)
        # SpeechBrain's names first (``<prefix>source<k>[hat].wav``), so that an example whose id
        # extends this one's is not taken in; then anything with the prefix.
        strict = re.compile(re.escape(prefix) + r"source\d+(hat)?\.wav")
        others = [p for p in audio.glob(f"{glob_escape(prefix)}*.wav") if p != mixture]
        siblings = [p for p in others if strict.fullmatch(p.name)] or others
        if prefix == "":  # no prefix: any other wav of the folder belongs to this one example
            siblings = [p for p in siblings if "mix" not in p.name]
        siblings.sort(key=_natural_key)
        estimates = tuple(p for p in siblings if "hat" in p.name)
        targets = tuple(p for p in siblings if "hat" not in p.name)
        if estimates or targets:
            claimed.update(siblings)
            examples.append(Example(_example_name(mixture), mixture, targets, estimates))
    return examples


def find_examples(folder: Path) -> list[Example]:
    """Every saved example (no metrics attached), from the first folder that holds one of
    ``folder/audio_results``, ``folder/save/audio_results`` and any ``audio_results`` below ``folder``."""
    candidates = [folder / "audio_results", folder / "save" / "audio_results"]
    candidates += sorted(p for p in folder.rglob("audio_results") if p.is_dir() and p not in candidates)
    for audio in candidates:
        examples = _examples_in(audio) if audio.is_dir() else []
        if examples:
            return examples
    return []


def find_example(folder: Path) -> tuple[Path, list[Path], list[Path]] | None:
    """(mixture, targets, estimates) of the first saved example (see :func:`find_examples`), or None."""
    examples = find_examples(folder)
    if not examples:
        return None
    return examples[0].mixture, list(examples[0].targets), list(examples[0].estimates)


def chosen_examples(examples: Sequence[Example]) -> tuple[list[Example], str | None]:
    """The examples the test stage chose, each with why, and the rule it followed, from the
    ``chosen_examples.json`` beside them (train.py's test stage); all of them and None without one
    (a folder from before it) or when it is unreadable. Other wavs there (an earlier run's) are left out."""
    if not examples:
        return [], None
    try:
        record = json.loads((examples[0].mixture.parent / CHOSEN_EXAMPLES_NAME).read_text(encoding="utf-8"))
        reasons, rule = dict(record["examples"]), str(record["rule"])
    except (OSError, ValueError, KeyError, TypeError):
        return list(examples), None
    chosen = [dataclasses.replace(e, chosen_as=tuple(reasons[e.name])) for e in examples if e.name in reasons]
    return chosen, rule


def with_metrics(examples: Sequence[Example], rows: Sequence[dict]) -> list[Example]:
    """Each example with its ``test_results.csv`` row (matched by ``snt_id``) as its metrics."""
    by_name = {row["snt_id"]: row for row in rows}
    return [
        dataclasses.replace(e, metrics={k: v for k, v in by_name[e.name].items() if k != "snt_id"})
        if e.name in by_name else e
        for e in examples
    ]


def order_by_score(examples: Sequence[Example]) -> list[Example]:
    """Best SNRi first (ties in the given order); examples without one last, in the given order."""
    scored = sorted((e for e in examples if math.isfinite(e.score)), key=lambda e: -e.score)
    return scored + [e for e in examples if not math.isfinite(e.score)]


# --------------------------------------------------------------------------------------------
# Spectrograms: the example figure and the page's thumbnails
# --------------------------------------------------------------------------------------------


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """``[time, channel]`` float64 samples and the rate (Hz) of an audio file."""
    try:
        samples, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as error:
        raise ReportError(f"`{path}` is unreadable ({error})") from error
    return samples, rate


def _spectrogram_db(
    samples: np.ndarray, rate: int, max_frames: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequencies Hz, frame centres s, power dB ``[freq, frame]``): 32 ms Hann windows, 8 ms hops.

    With ``max_frames``, a longer signal gets that many frames spread evenly from its start to its
    end instead: a thumbnail of an hour-long recording costs what one of a few seconds does. Power
    is the one-sided density, each frame's mean removed (as ``scipy.signal.spectrogram``).
    """
    samples = np.asarray(samples, dtype=np.float64)
    window = max(1, min(max(16, int(0.032 * rate)), len(samples)))
    starts = np.arange(0, len(samples) - window + 1, max(1, window // 4))
    if max_frames is not None and len(starts) > max_frames:
        starts = np.round(np.linspace(0, len(samples) - window, max_frames)).astype(int)
    frames = np.lib.stride_tricks.sliding_window_view(samples, window)[starts]  # [frame, window]
    taper = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)  # periodic Hann
    spectrum = np.fft.rfft((frames - frames.mean(axis=1, keepdims=True)) * taper, axis=1)
    power = np.abs(spectrum) ** 2 / (rate * np.sum(taper**2))
    power[:, 1 : (window + 1) // 2] *= 2  # one-sided: every bin but DC (and Nyquist) counts twice
    times = (starts + window / 2) / rate
    return np.fft.rfftfreq(window, 1 / rate), times, 10 * np.log10(power.T + 1e-12)


# Dynamic range of every spectrogram (figure and thumbnails), below the loudest bin of the example.
SPECTROGRAM_RANGE_DB = 80.0


def draw_example(example: Example) -> Figure:
    """Spectrograms of one example: mixture, then target and estimate of each talker; ears in columns.

    Panel titles are short (``talker 1 estimate — left ear``); the example's name, which can be
    long, is the figure's title, wrapped. One colour scale (dB) for every panel.

    Raises:
        ReportError: a file is unreadable.
    """
    signals = [(role, *_read_wav(path)) for role, path in example.files()]
    if all(len(samples) < 2 for _, samples, _ in signals):
        raise ReportError(f"the files of example `{example.name}` are empty")
    ears = max(s.shape[1] for _, s, _ in signals)
    ear_names = ["left ear", "right ear"] if ears == 2 else [f"channel {c + 1}" for c in range(ears)]
    peak = max(
        float(_spectrogram_db(s[:, c], r)[2].max()) for _, s, r in signals for c in range(s.shape[1]) if len(s) > 1
    )
    figure = Figure(figsize=(5.5 * ears, 1.9 * len(signals) + 0.9), layout="constrained")
    grid = figure.subplots(len(signals), ears, squeeze=False)
    image = None
    for row, (role, samples, rate) in enumerate(signals):
        for ear in range(ears):
            axes = grid[row, ear]
            freqs, times, power = _spectrogram_db(samples[:, min(ear, samples.shape[1] - 1)], rate)
            image = axes.pcolormesh(times, freqs / 1000, power, shading="auto", cmap="magma",
                                    vmin=peak - SPECTROGRAM_RANGE_DB, vmax=peak)
            axes.set_title(f"{role} — {ear_names[ear]}", fontsize=9)
            axes.set_ylabel("kHz")
            if row == len(signals) - 1:
                axes.set_xlabel("time (s)")
    figure.suptitle(textwrap.fill(f"Example {example.name}", width=100), fontsize=10)
    if image is not None:
        figure.colorbar(image, ax=grid, shrink=0.5, label="power (dB)")
    FigureCanvasAgg(figure)
    return figure


def example_figure(examples: Sequence[Example], out: Path) -> tuple[ReportFigure | None, str | None]:
    """Spectrograms of the first of the saved ``examples`` (:func:`draw_example`)."""
    if not examples:
        return None, (
            "No example figure: no `audio_results/` with `*mix*.wav` and `*hat*.wav` files "
            "(SpeechBrain separation recipes write them at test time when `save_audio: True`)."
        )
    try:
        figure = draw_example(examples[0])
    except ReportError as error:
        return None, f"No example figure: {error}."
    _write_atomic(out, lambda temporary: figure.savefig(temporary, format="png", dpi=110))
    ears = {sf.info(str(path)).channels for _, path in examples[0].files()}
    mono = " (mono files: one column)" if ears == {1} else ""
    caption = (
        f"Spectrograms of example `{examples[0].name}`: mixture, targets and estimates, left and right ear{mono}."
    )
    return ReportFigure("Example", out.name, "Example", caption), None


# A thumbnail: at most this many time columns, and frequency rows per ear (bins are averaged).
THUMBNAIL_FRAMES = 320
THUMBNAIL_BINS = 96
# Shown size (CSS pixels) of a thumbnail on the page.
THUMBNAIL_SIZE = (300, 150)
THUMBNAIL_DPI = 100


def spectrogram_image(samples: np.ndarray, rate: int) -> np.ndarray:
    """``[row, column]`` power (dB) of a ``[time, ear]`` signal: each ear's spectrogram, low frequencies
    down, the first ear on top, ears separated by a row of NaN (drawn white)."""
    panels = []
    for ear in range(samples.shape[1]):
        power = _spectrogram_db(samples[:, ear], rate, THUMBNAIL_FRAMES)[2]  # [freq, frame] dB
        edges = np.linspace(0, power.shape[0], min(THUMBNAIL_BINS, power.shape[0]) + 1).astype(int)
        linear = np.add.reduceat(10 ** (power / 10), edges[:-1], axis=0) / np.diff(edges)[:, None]
        panels.append(10 * np.log10(linear))
    gap = np.full((1, panels[0].shape[1]), np.nan)
    rows = []
    for panel in reversed(panels):  # row 0 is drawn at the bottom (origin="lower")
        rows += [panel, gap]
    return np.vstack(rows[:-1])


def thumbnail_figure(image: np.ndarray, rate: int, duration_s: float, colours, levels: tuple[float, float]) -> Figure:
    """A thumbnail of :func:`spectrogram_image` with its axes: time (s) below, frequency (kHz, 0 to
    ``rate / 2``) on the left of each ear's panel (L above R), ``levels`` (dB) the colour range."""
    figure = Figure(figsize=(THUMBNAIL_SIZE[0] / THUMBNAIL_DPI, THUMBNAIL_SIZE[1] / THUMBNAIL_DPI))
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.16, 0.2, 0.82, 0.77))
    axes.imshow(image, cmap=colours, vmin=levels[0], vmax=levels[1], origin="lower", aspect="auto", interpolation="nearest",
                extent=(0.0, duration_s, 0.0, image.shape[0]))
    rows = (image.shape[0] - 1) // 2  # per ear; one NaN row between the ears
    nyquist_khz = rate / 2000
    if rows:  # each ear from 0 to the Nyquist frequency; the panels' names inside them
        axes.set_yticks([0, rows / 2, rows + 1, rows * 1.5 + 1, 2 * rows + 1],
                        ["0", f"{nyquist_khz / 2:g}", "0", f"{nyquist_khz / 2:g}", f"{nyquist_khz:g}"])
        for name, bottom in (("R", 0), ("L", rows + 1)):
            axes.text(0.98, (bottom + rows * 0.85) / image.shape[0], name, transform=axes.transAxes, fontsize=7,
                      color="white", ha="right", va="center", bbox={"facecolor": "black", "alpha": 0.5, "pad": 1})
    axes.xaxis.set_major_locator(MaxNLocator(nbins=4))
    axes.tick_params(labelsize=6, length=2, pad=1)
    axes.set_xlabel("time (s)", fontsize=6, labelpad=1)
    axes.set_ylabel("kHz", fontsize=6, labelpad=1)
    return figure


def write_thumbnails(examples: Sequence[Example], folder: Path) -> list[dict[Path, str | None]]:
    """One spectrogram PNG per file of each example, in ``folder``; per example {file: PNG name or None}.

    The names are the example's rank and the file's role (``example03_talker1_estimate.png``),
    never the data's file names. One colour scale per example, so its mixture, targets and estimates
    compare. An unreadable, empty or non-finite file gets None. Other PNGs in ``folder`` are removed: they are
    the thumbnails of an earlier page.
    """
    folder.mkdir(parents=True, exist_ok=True)
    width = len(str(len(examples)))
    written: set[str] = set()
    result = []
    colours = colormaps["magma"].with_extremes(bad="white")
    for rank, example in enumerate(examples, start=1):
        images: dict[Path, np.ndarray | None] = {}
        spans: dict[Path, tuple[int, float]] = {}  # (rate Hz, duration s)
        for _, path in example.files():
            try:
                samples, rate = _read_wav(path)
            except ReportError:
                images[path] = None
                continue
            usable = len(samples) > 1 and np.isfinite(samples).all()
            images[path] = spectrogram_image(samples, rate) if usable else None
            spans[path] = (rate, len(samples) / rate)
        levels = [float(np.nanmax(i)) for i in images.values() if i is not None]
        names: dict[Path, str | None] = {}
        for role, path in example.files():
            image = images[path]
            if image is None:
                names[path] = None
                continue
            name = f"example{rank:0{width}d}_{role.replace('talker ', 'talker').replace(' ', '_')}.png"
            top = max(levels)

            figure = thumbnail_figure(image, *spans[path], colours, (top - SPECTROGRAM_RANGE_DB, top))

            def save(temporary: str, figure=figure) -> None:
                figure.savefig(temporary, format="png", dpi=THUMBNAIL_DPI)

            _write_atomic(folder / name, save)
            written.add(name)
            names[path] = name
        result.append(names)
    for stale in folder.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _format(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2f}"


@dataclass
class ReportContent:
    """What both renderers show (``report.md``, ``report.html``); texts may hold `` `code` `` spans.

    ``averages``: (label, column, value, unit) rows; ``listening``: the paragraph above the
    examples of the page; ``item``: what an example is called in its table.
    """

    title: str
    summary: str
    averages: list[tuple[str, str, float, str]]
    figures: list[ReportFigure]
    notes: list[str]
    listening: str
    item: str = "example"


def _averages(rows: list[dict], average: dict | None) -> tuple[list[tuple[str, str, float, str]], str | None]:
    note = None
    if average is None:
        average = {}
        for column in (c for c in rows[0] if c != "snt_id"):
            values = _finite([r.get(column, math.nan) for r in rows])
            average[column] = float(values.mean()) if len(values) else math.nan
        note = f"`{RESULTS_CSV}` has no `avg` row; the averages above are computed here over {len(rows)} rows."
    table = [
        (LABELS.get(column, column), column, float(value), UNITS.get(column, ""))
        for column, value in average.items() if column != "snt_id"
    ]
    return table, note


def _cell(text: str) -> str:
    """``text`` for a Markdown table cell: ``|`` escaped (GFM splits a row on every unescaped pipe,
    inside code spans too) and line breaks as spaces."""
    return " ".join(str(text).replace("|", "\\|").split())


def render_markdown(content: ReportContent) -> str:
    """``report.md``: title, summary, averages table, figures (each under its heading), notes."""
    sections = [
        f"# {content.title}",
        content.summary,
        f"Listen to the saved examples: [{PAGE_NAME}]({PAGE_NAME}) (a player and a spectrogram for each file).",
    ]
    if content.averages:
        lines = ["| metric | average | unit |", "| --- | ---: | --- |"]
        lines += [f"| {_cell(label)} (`{_cell(column)}`) | {_format(value)} | {_cell(unit)} |"
                  for label, column, value, unit in content.averages]
        sections += ["## Test averages", "\n".join(lines)]
    for figure in content.figures:
        sections += [f"## {figure.heading}", f"![{figure.alt}]({figure.image})\n\n*{figure.caption}*"]
    if content.notes:
        sections += ["## Notes", "\n".join(f"- {n}" for n in content.notes)]
    return "\n\n".join(sections) + "\n"


def _inline(text: str) -> str:
    """Report text as HTML: everything escaped, `` `code` `` spans as ``<code>``."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: shown as is
        return html.escape(text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def _href(path: Path, page_folder: Path) -> str:
    """A relative, percent-encoded link from the page to ``path`` (a file name may hold ``#``, ``?``, ``%``)."""
    relative = Path(os.path.relpath(Path(path).resolve(), Path(page_folder).resolve())).as_posix()
    return html.escape(urllib.parse.quote(relative, safe="/"), quote=True)


# No web fonts, no external sheet: the system's fonts and this inline style are all the page uses.
PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem auto;
       max-width: 84rem; padding: 0 1rem; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
code { font-size: 0.9em; background: #f2f2f4; padding: 0 0.2em; border-radius: 3px; overflow-wrap: anywhere; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d0d6; padding: 0.35rem 0.5rem; vertical-align: top; text-align: left; }
th { background: #f2f2f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-style: italic; color: #444; }
.scroll { overflow-x: auto; }
.examples td.name { min-width: 9rem; max-width: 14rem; }
.examples .note { font-size: 0.8em; color: #444; }
.examples td.files { min-width: 15rem; }
.examples .file + .file { margin-top: 0.5rem; padding-top: 0.4rem; border-top: 1px dashed #d0d0d6; }
.examples .role { font-size: 0.8rem; font-weight: 600; }
.examples audio { width: 15rem; display: block; }
.examples img { display: block; margin: 0.3rem 0; width: 15rem; height: 6rem; }
.examples a { font-size: 0.75rem; overflow-wrap: anywhere; color: #335; }
.mark { display: inline-block; padding: 0 0.35em; border-radius: 3px; color: #fff; font-size: 0.8rem; }
tr.best .mark { background: #1b7f3b; } tr.worst .mark { background: #b3261e; }
tr.best td:first-child { border-left: 4px solid #1b7f3b; } tr.worst td:first-child { border-left: 4px solid #b3261e; }
"""


def _file_block(role: str, label: str, path: Path, thumbnail: str | None, folder: Path) -> str:
    """A player, the spectrogram and a link for one file (``role`` names it for the player)."""
    link = _href(path, folder)
    if thumbnail is None:
        picture = "<p>(no spectrogram: unreadable, empty or non-finite file)</p>"
    else:
        width, height = THUMBNAIL_SIZE
        picture = (f'<img src="{_href(folder / PAGE_FILES / thumbnail, folder)}" width="{width}" height="{height}" '
                   f'alt="{html.escape(role, quote=True)}: spectrogram (time in s, frequency in kHz), left ear above right ear">')
    caption = f'<span class="role">{html.escape(label)}</span>' if label else ""
    return (f'<div class="file">{caption}<audio controls preload="metadata" src="{link}" '
            f'title="{html.escape(role, quote=True)}"></audio>{picture}'
            f'<a href="{link}">{html.escape(path.name)}</a></div>')


def _name_notes(example: Example) -> str:
    """Below an example's name: the talkers' directions its name spells, and why it was saved."""
    notes = [directions_text(example.name)]
    notes.append(f"chosen as: {', '.join(example.chosen_as)}" if example.chosen_as else None)
    return "".join(f'<br><span class="note">{html.escape(note)}</span>' for note in notes if note)


def _examples_table(examples: Sequence[Example], thumbnails: Sequence[dict[Path, str | None]], folder: Path,
                    item: str) -> str:
    """One row per example: rank (best and worst marked), name, metrics, the mixture, then one cell
    per talker holding its target above its estimate (both heard one after the other)."""
    metrics = [m for m in EXAMPLE_METRICS if any(m in e.metrics for e in examples)]
    talkers = max(max(len(e.targets), len(e.estimates)) for e in examples)
    groups = ["mixture"] + [f"talker {k}" for k in range(1, talkers + 1)]
    header = ["#", item] + [_label(m) for m in metrics] + groups
    scored = [i for i, e in enumerate(examples) if math.isfinite(e.score)]
    marks = {scored[0]: "best", scored[-1]: "worst"} if len(scored) >= 2 else {}
    lines = ['<div class="scroll"><table class="examples">',
             "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>", "<tbody>"]
    for index, (example, names) in enumerate(zip(examples, thumbnails)):
        mark = marks.get(index)
        cells = [f"<td>{index + 1}" + (f' <strong class="mark">{mark}</strong>' if mark else "") + "</td>",
                 f'<td class="name"><code>{html.escape(example.name)}</code>{_name_notes(example)}</td>']
        cells += [f'<td class="num">{_format(float(example.metrics.get(m, math.nan)))}</td>' for m in metrics]
        for group in groups:
            blocks = [_file_block(role, role[len(group):].strip(), path, names[path], folder)
                      for role, path in example.files() if role == group or role.startswith(group + " ")]
            cells.append('<td class="files">' + "".join(blocks) + "</td>")
        row_class = f' class="{mark}"' if mark else ""
        lines.append(f'<tr id="example-{index + 1}"{row_class}>' + "".join(cells) + "</tr>")
    lines += ["</tbody></table></div>"]
    return "\n".join(lines)


def render_page(content: ReportContent, examples: Sequence[Example],
                thumbnails: Sequence[dict[Path, str | None]], folder: Path) -> str:
    """``report.html``: one self-contained page (inline style, no script) linking files relatively."""
    body = [f"<h1>{_inline(content.title)}</h1>", f"<p>{_inline(content.summary)}</p>"]
    if content.averages:
        rows = "".join(
            f'<tr><td>{html.escape(label)} (<code>{html.escape(column)}</code>)</td>'
            f'<td class="num">{_format(value)}</td><td>{html.escape(unit)}</td></tr>'
            for label, column, value, unit in content.averages
        )
        body += ["<h2>Test averages</h2>",
                 "<table><thead><tr><th>metric</th><th>average</th><th>unit</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table>"]
    for figure in content.figures:
        body += [f"<h2>{_inline(figure.heading)}</h2>",
                 f'<figure><img src="{_href(folder / figure.image, folder)}" alt="{html.escape(figure.alt, quote=True)}">'
                 f"<figcaption>{_inline(figure.caption)}</figcaption></figure>"]
    body += ['<h2 id="listen">Listen</h2>', f"<p>{_inline(content.listening)}</p>"]
    if examples:
        body.append(_examples_table(examples, thumbnails, folder, content.item))
    if content.notes:
        body += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{_inline(n)}</li>" for n in content.notes) + "</ul>"]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(content.title)}</title>",
        f"<style>{PAGE_STYLE}</style></head>",
        "<body>", *body, "</body></html>", "",
    ])


def write_listening_page(folder: Path, content: ReportContent, examples: Sequence[Example]) -> Path:
    """Write ``folder/report.html`` and its thumbnails (``folder/report_files/``); returns the page's path."""
    folder = Path(folder)
    thumbnails = write_thumbnails(examples, folder / PAGE_FILES)
    text = render_page(content, examples, thumbnails, folder)
    page = folder / PAGE_NAME
    _write_atomic(page, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))
    return page


def write_report(results_folder: str | os.PathLike) -> Path:
    """Write ``report.md``, its PNG figures and ``report.html`` into ``results_folder``; returns
    the path of ``report.md`` (the page is its sibling ``PAGE_NAME``).

    Raises:
        ReportError: the folder or its ``test_results.csv`` is missing or unusable.
    """
    folder = Path(results_folder)
    csv_path = folder / RESULTS_CSV
    if not folder.is_dir():
        raise ReportError(
            f"{folder}: not a folder; give the experiment's output folder (the one holding {RESULTS_CSV})"
        )
    if csv_path.is_dir():
        raise ReportError(
            f"{csv_path}: a folder, not the results table; move it away and write {RESULTS_CSV} with the recipe's "
            f"test stage or `python metrics.py ... --out {csv_path}`"
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

    averages, table_note = _averages(rows, average)
    notes = [table_note] if table_note else []
    saved = find_examples(folder)
    figures = []
    parts = [
        (lambda out: training_curve(folder, out), FIGURES["curve"]),
        (lambda out: distributions(rows, out), FIGURES["distributions"]),
        (lambda out: against_separation(rows, out), FIGURES["separation"]),
        (lambda out: example_figure(saved, out), FIGURES["example"]),
    ]
    for make, name in parts:
        figure, note = make(folder / name)
        figures += [figure] if figure else []
        notes += [note] if note else []
    chosen, rule = chosen_examples(saved)
    examples = order_by_score(with_metrics(chosen, rows))
    how = rule or ("How they were chosen is not recorded (no `chosen_examples.json`, a folder from an earlier "
                   "version): they may be the first `n_audio_to_save` test mixtures only, and best and worst mark "
                   "the best and worst of them, not of the test set.")
    listening = (
        f"{len(examples)} saved example(s) of {len(rows)} test mixtures, best {LABELS[EXAMPLE_METRICS[0]]} first. "
        f"{how} Each row gives the talkers' directions where the test name spells them. Every file is stereo: "
        "with headphones, each talker is heard where it is. Each file is scaled by its own factor, the "
        "same for both ears: levels compare between the ears of a file, not between files."
        if examples else "No saved examples: the test stage writes them into `audio_results/` with `save_audio: True`."
    )
    content = ReportContent(
        title=f"Results: {'/'.join(folder.resolve().parts[-2:])}",
        summary=f"Report of `{folder}`: {len(rows)} test mixtures from `{RESULTS_CSV}`.",
        averages=averages, figures=figures, notes=notes, listening=listening,
    )
    report = folder / REPORT_NAME
    text = render_markdown(content)
    _write_atomic(report, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))
    write_listening_page(folder, content, examples)
    return report


def write_separation_page(
    output_dir: str | os.PathLike, separated: Sequence[tuple[Path, Sequence[Path]]], model: str,
    model_rate: int | None = None,
) -> Path:
    """The listening page of ``separate.py --report``: ``output_dir/report.html``, one row per recording.

    Arguments
    ---------
    separated : (mixture, estimates) per recording, in the page's order; the estimates are those
        ``separate.py`` wrote (``NAME_s1.wav``...), the mixture is linked where it is.
    model : where the weights came from (shown on the page).
    model_rate : the model's sample rate (Hz): the estimates hold nothing above half of it, which the
        page says (their spectrograms are blank there when the recording's rate is higher).
    """
    folder = Path(output_dir)
    examples = [Example(Path(mix).stem, Path(mix), (), tuple(Path(p) for p in estimates)) for mix, estimates in separated]
    content = ReportContent(
        title="Separated recordings",
        summary=f"{len(examples)} recording(s) separated with `{model}`; no references, so no metrics.",
        averages=[], figures=[], notes=[],
        listening=(
            "The mixture as recorded and each talker's estimate, stereo: with headphones, each talker is "
            "heard where it is."
            + (f" The model runs at {model_rate} Hz: the estimates (resampled back to each recording's rate) hold "
               f"nothing above {model_rate / 2000:g} kHz, so their spectrograms are blank there." if model_rate else "")
        ),
        item="recording",
    )
    return write_listening_page(folder, content, examples)
