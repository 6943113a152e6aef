"""Where everything of Binaural WSJ0-mix lies on disk: the one home of the dataset's layout.

A generated tree (the generator's ``--output_dir``, the recipe's ``data_folder``) holds::

    binaural_wsj0mix.json                    the dataset record (see :mod:`binaural.data.record`)
    wav8k/min/tt/{mix,s1,s2}/NAME.wav        one *part* per (rate, length mode, split); its
    wav16k/max/tr/...                        folders are the data variant's (see :mod:`binaural.data.variants`)
    metadata/                                own-mode metadata (``--own_metadata``)
    noise_metadata/                          cached replay of the public noise draws (noisy variant)

and, beside it (or inside a recipe's ``data_folder``), what is downloaded: ``Binaural-WSJ0Mix-main``
(official metadata + CIPIC), ``DEMAND`` (noise), ``CATT_RIRs`` (BRIR Sim Set) and
``simulated_brirs`` (the cache of simulated rooms). Units: rates in Hz.
"""
from __future__ import annotations

from pathlib import Path

from binaural.errors import RecipeError

#: The splits of the dataset: training, validation, test.
SPLITS: tuple[str, ...] = ("tr", "cv", "tt")
#: The rates of the dataset, as spelled in folder names, and in Hz.
FREQS: tuple[str, ...] = ("8k", "16k")
SAMPLE_RATES: dict[str, int] = {"8k": 8000, "16k": 16000}
#: Length modes: ``min`` cuts a mixture to its shortest talker, ``max`` pads to the longest.
MODES: tuple[str, ...] = ("min", "max")
#: The rate of the WSJ0 utterances (and of the DEMAND noise and BRIR Sim Set) in Hz.
WSJ0_RATE = 16000

#: The dataset record of a generated tree, and the lock its writer holds.
RECORD_NAME = "binaural_wsj0mix.json"
LOCK_NAME = ".binaural_wsj0mix.lock"
#: Folders of a tree, or of its parent, that are not parts of the dataset.
REPO_FOLDER = "Binaural-WSJ0Mix-main"
OWN_METADATA_FOLDER = "metadata"
NOISE_DRAWS_FOLDER = "noise_metadata"
DEMAND_FOLDER = "DEMAND"
CATT_FOLDER = "CATT_RIRs"
SIMULATED_BRIR_FOLDER = "simulated_brirs"
#: In an experiment's audio_results/: which test utterances were saved and why ({"rule": sentence,
#: "examples": {snt_id: [reason, ...]}}), written by train.py's test stage, read by the listening page.
CHOSEN_EXAMPLES_NAME = "chosen_examples.json"


def freq_name(sample_rate: int) -> str:
    """The folder spelling of a dataset rate: 8000 -> ``"8k"``, 16000 -> ``"16k"``.

    Raises
    ------
    RecipeError
        ``sample_rate`` is not a rate of Binaural WSJ0-mix.
    """
    names = {rate: name for name, rate in SAMPLE_RATES.items()}
    if sample_rate not in names:
        raise RecipeError(f"sample_rate: {sample_rate} Hz is not a rate of Binaural WSJ0-mix; use 8000 or 16000")
    return names[sample_rate]


def rate_folder(sample_rate: int) -> str:
    """``wav8k``, ``wav16k`` (any whole kHz), else ``wav<rate>hz``: a folder of files at one rate."""
    return f"wav{sample_rate // 1000}k" if sample_rate % 1000 == 0 else f"wav{sample_rate}hz"


def part_name(freq: str, mode: str, split: str) -> str:
    """``"wav8k/min/tt"``: one part of a tree (the key of its status in the dataset record)."""
    return f"wav{freq}/{mode}/{split}"


def split_folder(root: str | Path, freq: str, mode: str, split: str) -> Path:
    """``root/wav{freq}/{mode}/{split}``: the folder holding one part's folders."""
    return Path(root) / part_name(freq, mode, split)


def source_folders(n_spks: int) -> tuple[str, ...]:
    """``("s1", "s2"[, "s3"])``: the folders (and manifest columns) of the talkers."""
    return tuple(f"s{k}" for k in range(1, n_spks + 1))


def manifest_name(n_spks: int, split: str) -> str:
    """``binaural_wsj0-2mix_tr.csv``: the SpeechBrain manifest of one split."""
    return f"binaural_wsj0-{n_spks}mix_{split}.csv"


def check_subset(values, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``values`` as a tuple, checked to be a non-empty subset of ``allowed`` (``what`` names the option)."""
    chosen = tuple(values)
    if not chosen or any(v not in allowed for v in chosen):
        raise RecipeError(f"{what} must be a non-empty subset of {list(allowed)}, got {list(chosen)}")
    return chosen
