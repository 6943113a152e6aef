"""An experiment saved before the library moved into ``binaural/`` still separates and evaluates.

``tests/fixtures/previous_layout`` holds a real experiment folder made by the previous layout (commit
4729a9d, flat modules at the top): its ``hyperparams.yaml`` names ``binaural_tasnet.ParallelTasNet``,
``dataset.GenerationOptions``, ``checkpoints.IntactCheckpointer``... Beside it, what that code
computed from it: ``test_results.csv`` of its test stage and ``separate.py``'s estimates of the
first test mixture (``--subtype PCM_16``). How it was made is in its README.md; the data it was
trained and tested on is regenerated here bit for bit (synthetic speech, own metadata).
"""
from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FAST, OWN_DATA, PROJECT_ROOT, TINY_MODEL, check_ok, generate_dataset, run

from binaural.data.synthetic_speech import make_synthetic_wsj0
from binaural.training.hparams import LEGACY_MODULES, current_name, current_yaml

SAVED = PROJECT_ROOT / "tests" / "fixtures" / "previous_layout"
FIRST_TEST_MIXTURE = "sphere14_e02c0103_-15_0_e01c0101_-55_0"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """The synthetic WSJ0 root of the saved run and the folder its data is generated into."""
    root = tmp_path_factory.mktemp("previous_layout")
    wsj = make_synthetic_wsj0(root / "wsj", n_talkers={"si_tr_s": 4, "si_dt_05": 2, "si_et_05": 2},
                              utterances_per_talker=3, duration_s=(1.0, 1.5), sample_rate=16000, seed=7)
    return wsj, generate_dataset(wsj, root / "data", n_spks=2)


def saved_experiment(dest: Path) -> Path:
    folder = dest / "experiment"
    shutil.copytree(SAVED / "experiment", folder)
    return folder


def read_results(path: Path) -> dict[str, dict[str, float]]:
    with open(path, newline="") as handle:
        return {row.pop("snt_id"): {k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)}


def test_the_saved_folder_names_the_previous_modules():
    text = (SAVED / "experiment" / "hyperparams.yaml").read_text()
    assert "Model: &id012 !new:binaural_tasnet.ParallelTasNet" in text
    assert "!new:dataset.GenerationOptions" in text and "!new:checkpoints.IntactCheckpointer" in text


def test_previous_module_names_map_to_the_package():
    assert current_name("binaural_tasnet.ParallelTasNet") == "binaural.models.tasnet.ParallelTasNet"
    assert current_name("dataset.GenerationOptions") == "binaural.data.record.GenerationOptions"
    assert current_name("dataset.ensure_dataset") == "binaural.data.generation.ensure_dataset"
    assert current_name("speechbrain.lobes.models.dual_path.Encoder") == "speechbrain.lobes.models.dual_path.Encoder"
    assert current_name("os.path.dirname") == "os.path.dirname"
    text = "a: !new:data_variants.CleanVariant\nb: !name:dynamic_mixing.DynamicMixingDataset\nc: dataset.x\n"
    assert current_yaml(text) == (
        "a: !new:binaural.data.variants.CleanVariant\nb: !name:binaural.data.dynamic_mixing.DynamicMixingDataset\n"
        "c: dataset.x\n"  # not a tag: untouched
    )


def test_every_previous_module_has_a_home():
    import importlib

    for old, new in LEGACY_MODULES.items():
        assert importlib.util.find_spec(new) is not None, f"{old} -> {new}: no such module"


def test_every_object_the_saved_yaml_names_exists_under_its_new_name():
    import importlib
    import re

    names = re.findall(r"!(?:new|name|apply):([\w.]+)", (SAVED / "experiment" / "hyperparams.yaml").read_text())
    for name in {current_name(n) for n in names}:
        module, _, attribute = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attribute), name


def test_a_previous_experiment_separates_as_it_did(corpus, tmp_path):
    """separate.py --experiment on the saved folder (old names in its hyperparams.yaml) writes the
    estimates the previous layout wrote, to the 16-bit sample."""
    wsj, data = corpus
    folder = saved_experiment(tmp_path)
    mixture = data / "wav8k" / "min" / "tt" / "mix" / f"{FIRST_TEST_MIXTURE}.wav"
    result = run([sys.executable, "separate.py", "--experiment", str(folder), "--input", str(mixture),
                  "--output_dir", str(tmp_path / "out"), "--subtype", "PCM_16"])
    check_ok(result)
    for talker in ("s1", "s2"):
        now, _ = sf.read(tmp_path / "out" / f"{FIRST_TEST_MIXTURE}_{talker}.wav", dtype="int16")
        then, _ = sf.read(SAVED / "separated" / f"{FIRST_TEST_MIXTURE}_{talker}.wav", dtype="int16")
        assert now.shape == then.shape
        assert np.abs(now.astype(int) - then.astype(int)).max() <= 2  # float rounding across machines


def test_a_previous_experiment_evaluates_to_its_test_results(corpus, tmp_path):
    """train.py --test_only into the saved folder: its checkpoint is found and gives the same numbers."""
    wsj, data = corpus
    folder = saved_experiment(tmp_path)
    result = run([*train_command(wsj, data, folder), "--test_only"])
    check_ok(result)
    assert "no trained checkpoint" not in result.stderr
    now, then = read_results(folder / "test_results.csv"), read_results(SAVED / "test_results.csv")
    assert now.keys() == then.keys()
    for name, metrics in then.items():
        assert now[name] == pytest.approx(metrics, rel=1e-4, abs=1e-4), name


def train_command(wsj: Path, data: Path, output_folder: Path) -> list[str]:
    """The command the saved experiment was trained with (its README), into ``output_folder``."""
    return [
        sys.executable, "train.py", "hparams/convtasnet-parallel.yaml", "--data_folder", str(data),
        "--wsj_root", str(wsj), "--output_folder", str(output_folder),
        *OWN_DATA, *TINY_MODEL, *FAST, "--N_epochs", "2",
    ]
