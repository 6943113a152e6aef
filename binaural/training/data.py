"""The data a training run reads: the dataset options of the YAML, the manifests' datasets, the
dynamic-mixing training set. Items are ``{"id", "mix_sig", "s1_sig", ...[, "noise_sig"]}``, each
signal float32 ``[time, ear]``.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import speechbrain as sb
import torch

from binaural.data.layout import freq_name
from binaural.data.corpora import Corpus
from binaural.data.record import GenerationOptions
from binaural.errors import RecipeError
from binaural.io.audio import read_float

logger = logging.getLogger(__name__)


def dataset_options(hparams: dict, splits: Sequence[str]) -> GenerationOptions:
    """The YAML's ``dataset_options`` (:class:`binaural.data.record.GenerationOptions`) for the ``splits`` this run needs.

    Raises
    ------
    RecipeError
        The hparams file declares no ``dataset_options`` (one written before the dataset record),
        or its rates and length modes do not hold ``sample_rate`` and ``length_mode``.
    """
    options = hparams.get("dataset_options")
    if options is None or not _has_corpus(options):
        raise RecipeError(
            "the hparams file has no `dataset_options: !new:binaural.data.record.GenerationOptions` (with `data_variant: "
            "!new:binaural.data.variants.CleanVariant` or another variant; LibriMix: binaural.data.librimix.LibriMixOptions): "
            "add them as hparams/convtasnet-parallel.yaml has them"
        )
    freq = freq_name(hparams["sample_rate"])
    if freq not in options.freqs:
        raise RecipeError(f"sample_rate {hparams['sample_rate']} needs '{freq}' in data_freqs (got {list(options.freqs)})")
    if hparams["length_mode"] not in options.modes:
        raise RecipeError(f"length_mode {hparams['length_mode']} must be one of data_modes {list(options.modes)}")
    if options.n_spks != hparams["num_spks"]:
        raise RecipeError(f"dataset_options has n_spks={options.n_spks} but num_spks is {hparams['num_spks']}")
    return dataclasses.replace(options, splits=tuple(splits), progress=sys.stderr.isatty())


def _has_corpus(options: object) -> bool:
    try:
        Corpus.of(options)
    except RecipeError:
        return False
    return True


def read_binaural(path: str, sample_rate: int) -> torch.Tensor:
    """Read a stereo wav as float32 ``[time, ear]`` in [-1, 1], checking its rate, channels and length.

    ``binaural.io.audio`` refuses a file whose header announces more samples than it holds (a truncated
    copy would otherwise train as a shorter utterance).
    """
    if not os.path.isfile(path):
        raise RecipeError(f"{path}: file not found; regenerate the data or rerun without skip_prep")
    audio, rate = read_float(Path(path), dtype="float32")  # [time, ear]; one header check, in the loader
    if rate != sample_rate:
        raise RecipeError(
            f"{path}: {rate} Hz but sample_rate is {sample_rate}; set --sample_rate {rate} or "
            f"use the wav{freq_name(sample_rate)} data"
        )
    if audio.shape[1] != 2:
        raise RecipeError(
            f"{path}: {audio.shape[1]} channel(s), expected 2 (left, right); "
            "the binaural recipe needs the stereo Binaural WSJ0-mix files"
        )
    return torch.from_numpy(audio)


def signal_keys(n_spks: int) -> list[str]:
    """Dataset item keys of the signals: ``["mix_sig", "s1_sig", ..., "s{n}_sig"]``."""
    return ["mix_sig"] + [f"s{k}_sig" for k in range(1, n_spks + 1)]


def static_dataset(
    csv_path: str | Path, n_spks: int, sample_rate: int, data_folder: str | Path
) -> sb.dataio.dataset.DynamicItemDataset:
    """A SpeechBrain dataset of one manifest, yielding ``{"id", "mix_sig", "s1_sig", ...[, "noise_sig"]}``.

    Each ``*_sig`` is float32 ``[time, ear]``: the same items as the dynamic-mixing dataset, so the
    training step does not know which one it gets. A manifest with a ``noise_wav`` column (the
    noisy variant) gives ``noise_sig`` too: the training augmentations add it back to the talkers
    they perturb. ``$data_root`` in the CSV (the published manifests' placeholder) is replaced by
    ``data_folder``.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise RecipeError(f"{csv_path}: manifest not found; run without skip_prep to write it")
    with open(csv_path, encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    needed = ["ID", "mix_wav"] + [f"s{k}_wav" for k in range(1, n_spks + 1)]
    absent = [column for column in needed if column not in header]
    if absent:
        raise RecipeError(
            f"{csv_path}: no column {', '.join(absent)} (num_spks is {n_spks}); regenerate the "
            "manifest for this talker count (run without skip_prep)"
        )
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(
        csv_path=str(csv_path), replacements={"data_root": str(data_folder)}
    )
    reader = functools.partial(read_binaural, sample_rate=sample_rate)
    keys = signal_keys(n_spks) + (["noise_sig"] if "noise_wav" in header else [])
    for key in keys:
        name = key[: -len("_sig")]
        dataset.add_dynamic_item(reader, takes=f"{name}_wav", provides=key)
    dataset.set_output_keys(["id"] + keys)
    return dataset


def dynamic_mixing_factory(hparams: dict) -> Callable[[], torch.utils.data.Dataset]:
    """The YAML's ``dynamic_mixing_dataset`` factory, after checking that it can work.

    The dynamic-mixing dataset plugs in through the YAML: ``dynamic_mixing_dataset`` is a
    ``!name:`` factory, called with no argument (its arguments bound in the YAML), returning a
    torch Dataset of the same items as :func:`static_dataset`, optionally with ``set_epoch(epoch)``
    (called at the start of every training epoch) and sharding itself across DDP ranks.
    """
    base = Path(hparams["base_folder_dm"])
    if not base.is_dir():
        raise RecipeError(
            f"dynamic_mixing: True draws utterances from base_folder_dm={base}, which is not a folder; "
            "set --base_folder_dm (default <wsj_root>/wsj0/si_tr_s/)"
        )
    factory = hparams.get("dynamic_mixing_dataset")
    if factory is None:
        raise RecipeError(
            "dynamic_mixing: True needs dynamic_mixing_dataset in the hparams file, e.g. "
            "`dynamic_mixing_dataset: !name:dynamic_mixing.DynamicMixingDataset` with its arguments "
            "(the dataset to train on); set it, or set dynamic_mixing: False"
        )
    return factory


def training_set(
    hparams: dict, static_train: torch.utils.data.Dataset, options: GenerationOptions
) -> torch.utils.data.Dataset:
    """The training data: the static manifest's dataset, or the dynamic-mixing one when asked for.

    The dynamic-mixing dataset is the YAML's factory, with what the data set adds to it: with own
    metadata its listeners are the training heads of the own split (``listener_split="own"``; the
    official CIPIC split would let own-mode validation/test heads into training), and the data
    variant's own options (:meth:`binaural.data.variants.DataVariant.dynamic_mixing_options`, e.g. diotic
    noise when the generated noise is). Start-up errors name the file and the fix.
    """
    if not hparams["dynamic_mixing"]:
        return static_train
    factory = dynamic_mixing_factory(hparams)
    variant = options.variant
    arguments = Corpus.of(options).dynamic_mixing_options(options) | variant.dynamic_mixing_options()
    if variant.uses_hrtf and options.hrtf_dir is not None and str(options.hrtf_dir) != str(hparams["hrtf_dm"]):
        logger.warning(
            f"dynamic mixing places the talkers with hrtf_dm={hparams['hrtf_dm']}, but the data was generated with "
            f"hrtf_dir={options.hrtf_dir}: set --hrtf_dm to the same HRTF set to train on the heads you test on"
        )
    noise_folder = getattr(factory, "keywords", {}).get("noise_folder")
    if noise_folder is not None and not Path(noise_folder).is_dir():
        raise RecipeError(
            f"noise_folder_dm={noise_folder}: no such folder. Dynamic mixing adds the DEMAND noise of "
            "the training environments (noise_files_dm) from there: set --noise_folder_dm to your DEMAND copy "
            "(the --noise_root the data was generated with)"
        )
    try:
        dataset = factory(**arguments)
    except RecipeError as error:
        raise RecipeError(f"dynamic mixing: {error}") from error
    variant.check_dynamic_mixing(dataset)
    placer = getattr(dataset, "placer", None)
    logger.info(f"dynamic mixing: training on {dataset!r}" + (f", talkers placed by {placer!r}" if placer else ""))
    return dataset
