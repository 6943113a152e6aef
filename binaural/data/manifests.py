"""SpeechBrain CSV manifests for generated Binaural WSJ0-mix data.

One CSV per split, ``binaural_wsj0-{n}mix_{split}.csv``, with columns ``ID, duration`` and the data
variant's files (:meth:`binaural.data.variants.DataVariant.manifest_columns`): ``mix_wav, s1_wav, s2_wav[,
s3_wav]``, plus ``noise_wav`` for the noisy variant, whose ``mix_wav`` is ``mix_both``.
``duration`` is the mixture's real length in seconds (the published preparation wrote 1.0 for
every row, which makes duration-sorted batching and length limits meaningless).

The manifests list what the tree holds; that the tree is complete is :func:`binaural.data.generation.ensure_dataset`'s
business (train.py calls it first).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

from binaural.io.atomic import atomic_text
from binaural.io.audio import check_readable
from binaural.data.variants import CleanVariant, DataVariant
from binaural.errors import RecipeError
from binaural.data.layout import SPLITS, manifest_name, split_folder


class ManifestError(RecipeError):
    """Generated data that is absent or incomplete."""


def manifest_path(savepath: str | Path, n_spks: int, split: str, corpus=None) -> Path:
    """Where the CSV of ``split`` goes: ``savepath/binaural_wsj0-{n}mix_{split}.csv`` (WSJ0), or the name
    ``corpus`` (:class:`binaural.data.corpora.Corpus`) gives it (``binaural_libri2mix_test.csv``)."""
    return Path(savepath) / (corpus.manifest_name(n_spks, split) if corpus is not None else manifest_name(n_spks, split))


def manifest_rows(folder: Path, n_spks: int, variant: DataVariant) -> list[dict[str, str]]:
    """One row per mixture wav of the split folder ``folder`` (what the model hears), sorted by name.

    Raises
    ------
    ManifestError
        The folder is absent or empty, or a mixture lacks one of its files.
    """
    columns = variant.manifest_columns(n_spks)
    mixtures = folder / columns["mix_wav"]
    if not mixtures.is_dir():
        raise ManifestError(
            f"{mixtures}: not found. Generate the data first (python create_binaural_wsj0mix.py ...) "
            "or point data_folder at the folder that holds wav8k/ and wav16k/"
        )
    names = sorted(f for f in os.listdir(mixtures) if f.endswith(".wav") and not f.startswith("."))
    if not names:
        raise ManifestError(f"{mixtures}: no wav files; the generation did not run or was interrupted, rerun it")
    rows = []
    for name in names:
        row = {"ID": Path(name).stem}
        for column, sub in columns.items():
            path = folder / sub / name
            if not path.exists():
                raise ManifestError(f"{path}: missing although {mixtures / name} exists; rerun the generation")
            info = check_readable(path)  # a truncated or unreadable file fails here, not an hour into training
            if column == "mix_wav":
                row["duration"] = f"{info.duration:.4f}"
            row[column] = str(path.resolve())
        rows.append({"ID": row.pop("ID"), "duration": row.pop("duration"), **row})
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
    variant: DataVariant | None = None,
    skip_prep: bool = False,
    corpus=None,
) -> dict[str, Path]:
    """Write the manifests of ``splits`` and return their paths.

    Arguments
    ---------
    datapath : path
        The generator's output root (holds ``wav8k/``, ``wav16k/``).
    savepath : path
        Folder for the CSVs (usually the experiment's ``save_folder``).
    variant : DataVariant, optional
        The data set (default: clean); it names the folders and columns.
    skip_prep : bool
        Only return the paths (the user prepared the CSVs already).
    corpus : binaural.data.corpora.Corpus, optional
        Names the CSVs (default: Binaural WSJ0-mix's names).
    """
    variant = variant or CleanVariant()
    paths = {split: manifest_path(savepath, n_spks, split, corpus) for split in splits}
    if skip_prep:
        return paths
    for split in splits:
        write_manifest(manifest_rows(split_folder(datapath, freq, mode, split), n_spks, variant), paths[split])
    return paths
