"""SpeechBrain CSV manifests for generated Binaural WSJ0-mix data.

One CSV per split, ``binaural_wsj0-{n}mix_{split}.csv``, with columns
``ID, duration, mix_wav, s1_wav, s2_wav[, s3_wav][, noise_wav]``; ``duration`` is the mixture's
real length in seconds (the published preparation wrote 1.0 for every row, which makes
duration-sorted batching and length limits meaningless).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import soundfile as sf

from atomic import atomic_text
from metadata import SPLITS


class ManifestError(ValueError):
    """Generated data that is absent or incomplete."""


def manifest_path(savepath: str | Path, n_spks: int, split: str) -> Path:
    """Where the CSV of ``split`` goes: ``savepath/binaural_wsj0-{n}mix_{split}.csv``."""
    return Path(savepath) / f"binaural_wsj0-{n_spks}mix_{split}.csv"


def split_folder(datapath: str | Path, freq: str, mode: str, split: str) -> Path:
    """``datapath/wav{freq}/{mode}/{split}``: the generator's layout."""
    return Path(datapath) / f"wav{freq}" / mode / split


def manifest_rows(
    folder: Path, n_spks: int, mix_folder: str = "mix", noise_folder: str | None = None
) -> list[dict[str, str]]:
    """One row per mixture wav in ``folder/mix_folder``, sorted by name.

    Raises:
        ManifestError: the folder is absent or empty, or a mixture lacks a source (or noise) file.
    """
    mixtures = folder / mix_folder
    if not mixtures.is_dir():
        raise ManifestError(
            f"{mixtures}: not found. Generate the data first (python create_binaural_wsj0mix.py ...) "
            "or point data_folder at the folder that holds wav8k/ and wav16k/"
        )
    names = sorted(f for f in os.listdir(mixtures) if f.endswith(".wav") and not f.startswith("."))
    if not names:
        raise ManifestError(f"{mixtures}: no wav files; the generation did not run or was interrupted, rerun it")
    columns = [f"s{k}" for k in range(1, n_spks + 1)] + ([noise_folder] if noise_folder else [])
    rows = []
    for name in names:
        row = {"ID": Path(name).stem, "duration": f"{sf.info(str(mixtures / name)).duration:.4f}"}
        row["mix_wav"] = str((mixtures / name).resolve())
        for column in columns:
            path = folder / column / name
            if not path.exists():
                raise ManifestError(f"{path}: missing although {mixtures / name} exists; rerun the generation")
            row[f"{'noise' if column == noise_folder else column}_wav"] = str(path.resolve())
        rows.append(row)
    return rows


def write_manifest(rows: Sequence[dict[str, str]], path: Path) -> None:
    """Write ``rows`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_text(path) as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def prepare_binaural_wsj0mix(
    datapath: str | Path,
    savepath: str | Path,
    n_spks: int = 2,
    freq: str = "8k",
    mode: str = "min",
    splits: Sequence[str] = SPLITS,
    mix_folder: str = "mix",
    noise_folder: str | None = None,
    skip_prep: bool = False,
) -> dict[str, Path]:
    """Write the manifests of ``splits`` and return their paths.

    Args:
        datapath: the generator's output root (holds ``wav8k/``, ``wav16k/``).
        savepath: folder for the CSVs (usually the experiment's ``save_folder``).
        mix_folder: ``mix`` for the clean data; ``mix_both`` etc. for the noisy variant.
        noise_folder: adds a ``noise_wav`` column from that folder.
        skip_prep: only return the paths (the user prepared the CSVs already).
    """
    paths = {split: manifest_path(savepath, n_spks, split) for split in splits}
    if skip_prep:
        return paths
    for split in splits:
        rows = manifest_rows(split_folder(datapath, freq, mode, split), n_spks, mix_folder, noise_folder)
        write_manifest(rows, paths[split])
    return paths
