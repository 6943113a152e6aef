"""The LibriMix experiments of hparams/librimix/: every file loads into the same models and a corpus
that names its splits and manifests; train.py trains one on a tiny Binaural Libri2Mix made on
the first run (from a LibriSpeech-shaped tree of real speech), tests it, and --test_only
reproduces the test numbers.

Every file trains one epoch and evaluates end to end; convtasnet-parallel (clean) and
convtasnet-parallel-noise (WHAM! noise, mix_both) are also evaluated again with --test_only, which
must reproduce the numbers. The clean two-talker experiments share one data folder (made by the
first of them, found complete by the others), as users sharing a data folder do.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import (
    FAST, LAUNCHERS, PROJECT_ROOT, TINY_MODEL, catt_tree, check_ok, check_test_results, free_port, librimix_tree,
    run, train_log_epochs,
)
from hyperpyyaml import load_hyperpyyaml

from binaural import models
from binaural.data.corpora import Corpus, LibriSpeechCorpus
from binaural.data.librimix import LibriMixClean, LibriMixNoise, LibriMixOptions, LibriMixReverb

LIBRIMIX_HPARAMS = PROJECT_ROOT / "hparams" / "librimix"
FILES = sorted(p.stem for p in LIBRIMIX_HPARAMS.glob("*.yaml"))
EXPECTED = {
    "convtasnet-independent": (models.IndependentTasNet, 2, LibriMixClean),
    "convtasnet-cross": (models.CrossChannelTasNet, 2, LibriMixClean),
    "convtasnet-parallel": (models.ParallelTasNet, 2, LibriMixClean),
    "convtasnet-parallel-causal": (models.ParallelTasNet, 2, LibriMixClean),
    "convtasnet-parallel-noise": (models.ParallelTasNet, 2, LibriMixNoise),
    "convtasnet-parallel-reverb": (models.ParallelTasNet, 2, LibriMixReverb),
    "convtasnet-independent-3spk": (models.IndependentTasNet, 3, LibriMixClean),
    "convtasnet-cross-3spk": (models.CrossChannelTasNet, 3, LibriMixClean),
    "convtasnet-parallel-3spk": (models.ParallelTasNet, 3, LibriMixClean),
}
TINY = {"N_encoder_out": 16, "B": 8, "H": 16, "X": 2, "R": 1}


def test_every_librimix_experiment_is_expected():
    assert FILES == sorted(EXPECTED)


@pytest.mark.parametrize("name", FILES)
def test_librimix_file_loads_separates_and_names_its_corpus(name, tmp_path):
    with open(LIBRIMIX_HPARAMS / f"{name}.yaml", encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, {"data_folder": str(tmp_path / "d"), "librispeech_root": str(tmp_path / "l"),
                                            "output_folder": str(tmp_path / "o"), **TINY})
    model_class, n_spks, variant_class = EXPECTED[name]
    assert type(hparams["Model"]) is model_class and hparams["num_spks"] == n_spks
    assert hparams["Model"](torch.randn(1, 800, 2)).shape == (1, 800, 2, n_spks)
    options = hparams["dataset_options"]
    assert isinstance(options, LibriMixOptions) and type(options.variant) is variant_class
    corpus = Corpus.of(options)
    assert isinstance(corpus, LibriSpeechCorpus) and hparams[corpus.root_key] == str(tmp_path / "l")
    train, valid, test = corpus.splits(options)
    for key, split in (("train_data", train), ("valid_data", valid), ("test_data", test)):
        assert Path(hparams[key]).name == corpus.manifest_name(n_spks, split)
    assert hparams["experiment_name"] == f"librimix-{name}"


@pytest.fixture(scope="module")
def tiny_librimix(librimix_metadata_dir, speech_dir, noise_dir, tmp_path_factory):
    return librimix_tree(librimix_metadata_dir, speech_dir, noise_dir, tmp_path_factory.mktemp("librimix"), 2, 2)


@pytest.mark.parametrize("name", ["convtasnet-parallel", "convtasnet-parallel-noise"])
def test_train_py_makes_trains_and_tests_librimix_and_test_only_reproduces(name, tiny_librimix, cipic_dir, tmp_path):
    metadata, librispeech, wham = tiny_librimix
    data, output = tmp_path / "data", tmp_path / "out"
    command = [
        sys.executable, "train.py", f"hparams/librimix/{name}.yaml", "--data_folder", str(data), "--wham_root", str(wham),
        "--librispeech_root", str(librispeech), "--metadata_dir", str(metadata), "--hrtf_dir", str(cipic_dir),
        "--output_folder", str(output), "--N_epochs", "1", "--num_workers", "1", *TINY_MODEL, *FAST,
    ]
    check_ok(run(command, timeout=300))
    assert sorted(p.name for p in (data / "wav8k" / "min").iterdir()) == ["dev", "test", "train-100"]
    for split in ("train-100", "dev", "test"):
        manifest = (output / "save" / f"binaural_libri2mix_{split}.csv").read_text()
        assert ("noise_wav" in manifest) == name.endswith("noise") and ("mix_both" in manifest) == name.endswith("noise")
    assert [epoch for epoch, _ in train_log_epochs(output)] == [1]
    first = check_test_results(output, 2)
    assert (output / "report.md").is_file()
    (output / "test_results.csv").unlink()
    check_ok(run(command + ["--test_only"], timeout=300))
    assert check_test_results(output, 2) == first


def test_dynamic_mixing_of_a_librimix_experiment_draws_librispeech_talkers(tiny_librimix, cipic_dir, tmp_path):
    """The YAML's dynamic-mixing factory with what the corpus adds (training_set, as train.py calls it)."""
    from binaural.training.data import dataset_options, training_set

    _, librispeech, _ = tiny_librimix
    with open(LIBRIMIX_HPARAMS / "convtasnet-parallel.yaml", encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, {
            "data_folder": str(tmp_path / "d"), "librispeech_root": str(librispeech), "output_folder": str(tmp_path / "o"),
            "hrtf_dir": str(cipic_dir), "hrtf_dm": str(cipic_dir), "dynamic_mixing": True, "epoch_size_dm": 2,
            "training_signal_len_dm": 4000, **TINY,
        })
    options = dataset_options(hparams, ("train-100", "dev", "test"))
    dataset = training_set(hparams, None, options)
    speakers = {p.parts[-3] for p in (librispeech / "train-clean-100").glob("*/*/*.flac")}
    assert set(dataset.planner.talker_names) == speakers
    assert dataset[1]["mix_sig"].shape == (4000, 2)


def test_two_process_training_makes_the_data_once(tiny_librimix, cipic_dir, tmp_path):
    """torchrun with 2 processes (gloo): the main process makes Binaural LibriMix, both train."""
    metadata, librispeech, _ = tiny_librimix
    output = tmp_path / "out"
    command = [
        "train.py", "hparams/librimix/convtasnet-parallel.yaml", "--data_folder", str(tmp_path / "data"),
        "--librispeech_root", str(librispeech), "--metadata_dir", str(metadata), "--hrtf_dir", str(cipic_dir),
        "--output_folder", str(output), "--N_epochs", "1", "--num_workers", "1", "--distributed_backend=gloo",
        *TINY_MODEL, *FAST,
    ]
    check_ok(run(LAUNCHERS["torchrun"](free_port()) + command, timeout=300, OMP_NUM_THREADS="1"))
    assert "epoch 1: training batches per rank [1, 1]" in (output / "log.txt").read_text()
    check_test_results(output, 2)


@pytest.fixture(scope="module")
def shared_clean_data(tmp_path_factory) -> Path:
    """One data folder for the clean two-talker experiments: the first run makes it, the others reuse it."""
    return tmp_path_factory.mktemp("clean_libri2mix") / "data"


@pytest.fixture(scope="module")
def tiny_libri3mix(librimix_metadata_dir, speech_dir, noise_dir, tmp_path_factory):
    return librimix_tree(librimix_metadata_dir, speech_dir, noise_dir, tmp_path_factory.mktemp("libri3mix"), 3, 2)


@pytest.mark.parametrize("name", ["convtasnet-independent", "convtasnet-cross", "convtasnet-parallel-causal"])
def test_each_clean_librimix_model_trains_one_epoch_and_tests(name, tiny_librimix, shared_clean_data, cipic_dir,
                                                              tmp_path):
    metadata, librispeech, _ = tiny_librimix
    output = tmp_path / "out"
    check_ok(run(one_epoch(name, shared_clean_data, librispeech, metadata, cipic_dir, output), timeout=300))
    assert [epoch for epoch, _ in train_log_epochs(output)] == [1]
    check_test_results(output, 2)


def test_three_talker_librimix_trains_one_epoch_and_tests(tiny_libri3mix, cipic_dir, tmp_path):
    metadata, librispeech, _ = tiny_libri3mix
    output = tmp_path / "out"
    check_ok(run(one_epoch("convtasnet-parallel-3spk", tmp_path / "data", librispeech, metadata, cipic_dir, output),
                 timeout=300))
    assert sorted(p.name for p in (tmp_path / "data" / "wav8k" / "min" / "test").iterdir()) == [
        "mix_clean", "s1", "s2", "s3"]
    check_test_results(output, 2)


def test_reverberant_librimix_trains_one_epoch_and_tests(tiny_librimix, cipic_dir, rir_dir, tmp_path):
    from binaural.data.rooms import BRIR_AZIMUTHS, PUBLIC_REVERB_TIMES

    metadata, librispeech, _ = tiny_librimix
    pairs = [(rt, str(az)) for times in PUBLIC_REVERB_TIMES.values() for rt in times for az in BRIR_AZIMUTHS]
    brirs = catt_tree(rir_dir, tmp_path / "brirs", pairs)
    output = tmp_path / "out"
    command = one_epoch("convtasnet-parallel-reverb", tmp_path / "data", librispeech, metadata, cipic_dir, output)
    check_ok(run([*command, "--brir_dir", str(brirs)], timeout=300))
    check_test_results(output, 2)


def one_epoch(name: str, data: Path, librispeech: Path, metadata: Path, hrtf: Path, output: Path) -> list[str]:
    """train.py on ``hparams/librimix/<name>.yaml`` for one epoch of a tiny model, then its test."""
    return [
        sys.executable, "train.py", f"hparams/librimix/{name}.yaml", "--data_folder", str(data),
        "--librispeech_root", str(librispeech), "--metadata_dir", str(metadata), "--hrtf_dir", str(hrtf),
        "--output_folder", str(output), "--N_epochs", "1", "--num_workers", "1", *TINY_MODEL, *FAST,
    ]
