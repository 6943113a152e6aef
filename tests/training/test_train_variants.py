"""train.py on the noisy and reverberant variants, and dynamic mixing for every data variant.

End to end on CPU as in test_train.py (the real command line in a subprocess, own-mode data from
the real utterances, tiny separator): the noisy variant with a DEMAND-shaped tree of the real noise
recordings, the reverberant one with short simulated rooms, and ``--dynamic_mixing True`` for clean,
noisy and reverberant data (also with two DDP processes). Plus the unit checks the noisy variant
needs: the augmentations add the noise back, the static pipeline carries it, and a data folder of
one variant is never completed with another's files.
"""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT
from conftest import (
    N_MIXTURES,
    LAUNCHERS,
    noise_burst_talker,
    free_port,
    check_ok,
    check_test_results,
    checkpoints,
    generate_dataset,
    recipe_command,
    run,
    train_log_epochs,
)

import train

from binaural.errors import RecipeError

from binaural.training.data import static_dataset

from binaural.training.augment import with_noise
from binaural.data.generation import create_binaural_wsj0mix
from binaural.data.variants import CleanVariant, DataVariant, NoiseVariant, ReverbVariant
from binaural.data.record import DatasetMismatchError, GenerationOptions, missing_parts
from binaural.data.layout import SPLITS
from binaural.data.metadata import load_split
from binaural.data.noise import DEMAND_SPLITS
from binaural.data.rooms import draw_reverb_meta, reverb_meta_path, write_reverb_meta

TRAINING_NOISES = [f"{environment}/ch01.wav" for environment in DEMAND_SPLITS["tr"]]
SHORT_ROOM = "0_2s"  # simulated in a fraction of a second
# Dynamic mixing, tiny: 4 mixtures of 1 s per epoch, spherical heads (own split), cache in the data folder.
DM = ["--dynamic_mixing", "True", "--hrtf_dm", "spherical", "--epoch_size_dm", "4", "--training_signal_len_dm", "8000"]


# --------------------------------------------------------------------------------------------------
# Fixtures: a DEMAND tree, own-mode metadata with short rooms, and the static data of each variant
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_room_metadata(tiny_wsj_root, tmp_path_factory) -> Path:
    """Own-mode metadata (the tiny clean draw of test_train) whose reverberant rows all use a 0.2 s
    room: the generator then simulates a handful of short BRIRs instead of the public rooms."""
    scratch = generate_dataset(tiny_wsj_root, tmp_path_factory.mktemp("clean_for_metadata"), 2)
    metadata = scratch / "metadata"
    for split in SPLITS:
        names = [spec.output_filename for spec in load_split(metadata, 2, split)]
        write_reverb_meta(reverb_meta_path(metadata, split), draw_reverb_meta(names, split, 0, [SHORT_ROOM]))
    return metadata


def _own(variant: DataVariant, wsj_root: Path, data: Path, metadata_dir: Path | None = None) -> Path:
    create_binaural_wsj0mix(wsj_root, data, GenerationOptions(
        variant=variant, freqs=["8k"], modes=["min"], n_spks=2, own_metadata=True, hrtf_dir="spherical",
        n_mixtures=dict(N_MIXTURES), num_workers=1, progress=False, metadata_dir=metadata_dir,
        repo_dir=data / "Binaural-WSJ0Mix-main",  # downloads and caches in data, as train.py has it
    ))
    return data


@pytest.fixture(scope="module")
def clean_data(tiny_wsj_root, tmp_path_factory) -> Path:
    return generate_dataset(tiny_wsj_root, tmp_path_factory.mktemp("clean"), 2)


@pytest.fixture(scope="module")
def noisy_data(tiny_wsj_root, demand, tmp_path_factory) -> Path:
    return _own(NoiseVariant(noise_root=demand), tiny_wsj_root, tmp_path_factory.mktemp("noisy"))


@pytest.fixture(scope="module")
def reverb_data(tiny_wsj_root, short_room_metadata, tmp_path_factory) -> Path:
    return _own(ReverbVariant(brir_dir="simulate"), tiny_wsj_root, tmp_path_factory.mktemp("reverb"),
                metadata_dir=short_room_metadata)


def manifest(output_folder: Path, split: str) -> list[dict]:
    with open(output_folder / "save" / f"binaural_wsj0-2mix_{split}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def train_then_test(hparams: str, data: Path, wsj_root: Path, out: Path, *extra: str) -> None:
    """One epoch (generating the data when absent), then --test_only on the best checkpoint."""
    check_ok(run(recipe_command(hparams, data, wsj_root, out, "--N_epochs", "1", *extra)))
    assert [epoch for epoch, _ in train_log_epochs(out)] == [1] and checkpoints(out)
    (out / "test_results.csv").unlink()
    check_ok(run(recipe_command(hparams, data, wsj_root, out, "--test_only", *extra)))
    check_test_results(out, N_MIXTURES["tt"])


# --------------------------------------------------------------------------------------------------
# End to end: the noisy and reverberant variants
# --------------------------------------------------------------------------------------------------


def test_noisy_variant_generates_trains_and_tests(tiny_wsj_root, demand, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    # Speed perturbation (the default) and shifts: the mixture is rebuilt, the noise added back.
    train_then_test("convtasnet-parallel-noise.yaml", data, tiny_wsj_root, out, "--noise_root", str(demand),
                    "--use_rand_shift", "True")
    split = data / "wav8k" / "min" / "tr"
    assert sorted(p.name for p in split.iterdir()) == ["mix_both", "mix_clean", "mix_single", "noise", "s1", "s2"]
    rows = manifest(out, "tr")
    assert len(rows) == N_MIXTURES["tr"]
    assert all(Path(r["mix_wav"]).parent.name == "mix_both" and Path(r["noise_wav"]).parent.name == "noise" for r in rows)
    # The static pipeline carries the noise, and the mixture the model hears is talkers + noise.
    dataset = static_dataset(out / "save" / "binaural_wsj0-2mix_tr.csv", 2, 8000, data)
    item = dataset[0]
    assert set(item) == {"id", "mix_sig", "s1_sig", "s2_sig", "noise_sig"}
    torch.testing.assert_close(item["mix_sig"], item["s1_sig"] + item["s2_sig"] + item["noise_sig"], atol=1e-6, rtol=0)
    assert float(item["noise_sig"].abs().max()) > 0


def test_reverberant_variant_generates_trains_and_tests(tiny_wsj_root, short_room_metadata, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    train_then_test("convtasnet-parallel-reverb.yaml", data, tiny_wsj_root, out,
                    "--brir_dir", "simulate", "--metadata_dir", str(short_room_metadata))
    names = sorted(p.name for p in (data / "wav8k" / "min" / "tt" / "mix").iterdir())
    assert len(names) == N_MIXTURES["tt"] and all(name.startswith(f"{SHORT_ROOM}_") for name in names)
    assert sorted(p.name for p in (data / "wav8k" / "min" / "tt").iterdir()) == ["mix", "s1", "s2"]
    assert any((data / "simulated_brirs").glob(f"sim*_rt{SHORT_ROOM}_*.wav"))  # simulated, cached
    assert "noise_wav" not in manifest(out, "tt")[0]


def test_a_data_folder_of_another_variant_is_refused(clean_data, noisy_data, reverb_data, demand):
    variants = {"clean": CleanVariant(), "noise": NoiseVariant(noise_root=demand), "reverb": ReverbVariant(brir_dir="simulate")}
    for folder, stored in ((clean_data, "clean"), (noisy_data, "noise"), (reverb_data, "reverb")):
        options = GenerationOptions(variant=variants[stored], freqs=["8k"], modes=["min"], own_metadata=True,
                                    hrtf_dir="spherical", n_mixtures=dict(N_MIXTURES))
        assert missing_parts(folder, options) == []
        for name, variant in variants.items():
            if name != stored:
                with pytest.raises(DatasetMismatchError, match=f"variant='{stored}', but this run asks for variant='{name}'"):
                    missing_parts(folder, replace(options, variant=variant))


# --------------------------------------------------------------------------------------------------
# Dynamic mixing, end to end, for every data variant
# --------------------------------------------------------------------------------------------------


def check_trained_on_dynamic_mixtures(out: Path, n_items: int = 4) -> str:
    log = (out / "log.txt").read_text()
    assert "dynamic mixing: training on DynamicMixingDataset(" in log
    # 4 dynamic mixtures per epoch, not the 2 static training mixtures.
    assert f"epoch 1: training batches per rank [{n_items}]" in log
    check_test_results(out, N_MIXTURES["tt"])  # validation and test: the static generated sets
    return log


def test_dynamic_mixing_clean(clean_data, tiny_wsj_root, tmp_path):
    out = tmp_path / "out"
    check_ok(run(recipe_command("convtasnet-parallel.yaml", clean_data, tiny_wsj_root, out, "--N_epochs", "1", *DM)))
    log = check_trained_on_dynamic_mixtures(out)
    assert "4 of 4 items" in log and "2 talkers / 12 utterances" in log
    assert any((clean_data / "dynamic_mixing_cache" / "speech").rglob("*.wav"))  # resampled once, in data_folder


def test_dynamic_mixing_noisy(noisy_data, tiny_wsj_root, demand, tmp_path):
    out = tmp_path / "out"
    check_ok(run(recipe_command("convtasnet-parallel-noise.yaml", noisy_data, tiny_wsj_root, out, "--N_epochs", "1",
                                *DM, "--noise_folder_dm", str(demand))))
    check_trained_on_dynamic_mixtures(out)
    cached = sorted(p.relative_to(noisy_data / "dynamic_mixing_cache" / "noise" / "wav8k").as_posix()
                    for p in (noisy_data / "dynamic_mixing_cache" / "noise").rglob("*.wav"))
    assert cached == sorted(TRAINING_NOISES)  # the training environments only


def test_dynamic_mixing_noisy_without_its_noise_is_a_clear_error(noisy_data, tiny_wsj_root, tmp_path):
    result = run(recipe_command("convtasnet-parallel-noise.yaml", noisy_data, tiny_wsj_root, tmp_path / "out",
                                "--N_epochs", "1", *DM, "--noise_folder_dm", str(tmp_path / "absent")))
    assert result.returncode != 0 and "--noise_folder_dm" in result.stderr and "Traceback" not in result.stderr


def test_dynamic_mixing_reverberant(reverb_data, tiny_wsj_root, tmp_path):
    out = tmp_path / "out"
    check_ok(run(recipe_command("convtasnet-parallel-reverb.yaml", reverb_data, tiny_wsj_root, out, "--N_epochs", "1",
                                *DM, "--brir_dir", "simulate", "--reverb_times_dm", f"[{SHORT_ROOM}]",
                                "--azimuths_dm", "[-45, 0, 45]")))
    log = check_trained_on_dynamic_mixtures(out)
    assert f"BrirPlacer(simulate, rooms ['{SHORT_ROOM}'], 3 azimuths, per_ear)" in log
    cached = {p.name.split("_az")[1].split("_")[0] for p in (reverb_data / "simulated_brirs").glob(f"sim*_rt{SHORT_ROOM}_*")}
    assert cached >= {"-45", "0", "45"}  # the generator's cache, completed


def test_dynamic_mixing_with_two_processes_shards_once(clean_data, tiny_wsj_root, tmp_path):
    """DDP: the dataset splits the 4 mixtures of the epoch itself (2 per rank); a DistributedSampler
    on top would leave 1 per rank."""
    out = tmp_path / "out"
    command = recipe_command("convtasnet-parallel.yaml", clean_data, tiny_wsj_root, out, "--N_epochs", "1", *DM)
    launch = LAUNCHERS["torchrun"](free_port()) + command[1:] + ["--distributed_backend=gloo"]
    check_ok(run(launch, timeout=240, OMP_NUM_THREADS="1"))
    log = (out / "log.txt").read_text()
    assert "epoch 1: training batches per rank [2, 2]" in log and "rank 0/2: 2 of 4 items" in log
    check_test_results(out, N_MIXTURES["tt"])


# --------------------------------------------------------------------------------------------------
# The noise is added back after the augmentations
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def noisy_brain(tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    overrides = {
        "data_folder": str(tmp_path), "wsj_root": str(tmp_path), "output_folder": str(tmp_path / "out"),
        "N_encoder_out": 16, "B": 8, "H": 16, "X": 2, "R": 1, "min_shift": -100, "max_shift": 100,
        "speed_changes": [90, 110],  # never 100 %: the output length always changes
    }
    with open(PROJECT_ROOT / "hparams" / "convtasnet-parallel-noise.yaml") as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    return train.Separation(modules=hparams["modules"], hparams=hparams, run_opts={"device": "cpu"})


def _talkers_and_noise(n: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    targets = torch.stack([noise_burst_talker(n, 4, 0.7, 3), noise_burst_talker(n, -3, 1.2, 4)], dim=-1)
    noise = 0.3 * noise_burst_talker(n, 0, 1.0, 5)  # [1, time, ear]
    return targets, noise


def test_speed_perturbation_adds_the_perturbed_noise_back(noisy_brain):
    targets, noise = _talkers_and_noise()
    outputs: list[torch.Tensor] = []
    perturb = noisy_brain.hparams.speed_perturb

    def recorded(wave: torch.Tensor) -> torch.Tensor:
        outputs.append(perturb(wave))
        return outputs[-1]

    noisy_brain.hparams.speed_perturb = recorded
    noisy_brain.hparams.use_rand_shift = False
    mix, augmented = noisy_brain.augment(targets.sum(-1) + noise, targets, torch.ones(1), noise)
    assert len(outputs) == 3  # two talkers and the noise, each with its own factor
    length = augmented.shape[1]
    assert length != 4000 and length == min(o.shape[1] for o in outputs)
    torch.testing.assert_close(augmented, torch.stack([o[:, :length] for o in outputs[:2]], dim=-1))
    # mixture == sum of the perturbed talkers + the perturbed noise, cut alike
    torch.testing.assert_close(mix, augmented.sum(-1) + outputs[2][:, :length])


def test_shifts_move_the_noise_with_the_scene(noisy_brain):
    targets, noise = _talkers_and_noise()
    noisy_brain.hparams.use_speedperturb = False
    noisy_brain.hparams.use_rand_shift = True  # independent_shifts False: the whole scene moves
    torch.manual_seed(3)
    mix, augmented = noisy_brain.augment(targets.sum(-1) + noise, targets, torch.ones(1), noise)
    shift = next(k for k in range(-100, 100) if torch.equal(torch.roll(targets, k, dims=1), augmented))
    torch.testing.assert_close(mix, augmented.sum(-1) + torch.roll(noise, shift, dims=1))


def test_the_full_chain_keeps_the_noise(noisy_brain):
    """Speed perturbation and independent shifts, as the published augmentation: the residual of the
    mixture after the talkers is the noise (its energy, not zero) and nothing else."""
    targets, noise = _talkers_and_noise()
    noisy_brain.hparams.use_rand_shift = True
    noisy_brain.hparams.independent_shifts = True
    mix, augmented = noisy_brain.augment(targets.sum(-1) + noise, targets, torch.ones(1), noise)
    residual = mix - augmented.sum(-1)
    ratio = float(residual.square().sum() / noise.square().sum())
    assert 0.5 < ratio < 1.3, ratio  # resampled by 0.9 or 1.1, shifted and cut to the shortest: the noise
    # Without noise the same chain gives a mixture that is exactly the talkers (nothing added).
    mix, augmented = noisy_brain.augment(targets.sum(-1), targets, torch.ones(1))
    torch.testing.assert_close(mix, augmented.sum(-1))
    # Without perturbation the stored mixture (which holds the noise) is used as it is.
    noisy_brain.hparams.use_speedperturb = noisy_brain.hparams.use_rand_shift = False
    stored = targets.sum(-1) + noise
    mix, augmented = noisy_brain.augment(stored, targets, torch.ones(1), noise)
    assert torch.equal(mix, stored) and torch.equal(augmented, targets)
    with pytest.raises(RecipeError, match="noise_sig has shape"):
        with_noise(targets, noise[:, :100])


# --------------------------------------------------------------------------------------------------
# Dynamic mixing datasets of the variants, in process
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("diotic", [True, False])
def test_dynamic_noise_comes_from_the_training_environments(tiny_wsj_root, demand, tmp_path, diotic):
    from binaural.data.dynamic_mixing import DynamicMixingDataset

    dataset = DynamicMixingDataset(
        tiny_wsj_root, "spherical", sample_rate=8000, training_signal_len=4000, epoch_size=6, cache_dir=tmp_path,
        noise_folder=demand, noise_files=TRAINING_NOISES, diotic_noise=diotic,
    )
    assert sorted(dataset.noise_catalogue.names) == sorted(TRAINING_NOISES)
    for index in range(len(dataset)):
        item = dataset[index]
        assert torch.equal(item["mix_sig"], item["s1_sig"] + item["s2_sig"] + item["noise_sig"])
        left, right = item["noise_sig"][:, 0], item["noise_sig"][:, 1]
        assert torch.equal(left, right) == diotic and float(left.abs().max()) > 0


def test_a_missing_training_noise_is_named(tiny_wsj_root, demand, tmp_path):
    from binaural.data.dynamic_mixing import DynamicMixingDataset, DynamicMixingError

    with pytest.raises(DynamicMixingError, match=r"NOWHERE/ch01\.wav"):
        DynamicMixingDataset(tiny_wsj_root, "spherical", sample_rate=8000, cache_dir=tmp_path,
                             noise_folder=demand, noise_files=["NOWHERE/ch01.wav"])


def test_brir_placer_draws_training_rooms_and_renders_reverberant_talkers(tiny_wsj_root, tmp_path):
    from binaural.data.dynamic_mixing import BrirPlacer, DynamicMixingDataset, DynamicMixingError
    from binaural.data.mixing import spatialize_reverb

    placer = BrirPlacer("simulate", [SHORT_ROOM], [-30, 30, 60], sample_rate=8000, download_parent=tmp_path)
    assert placer._brirs is None  # nothing opened before check()
    dataset = DynamicMixingDataset(tiny_wsj_root, None, sample_rate=8000, training_signal_len=4000, epoch_size=4,
                                   cache_dir=tmp_path / "cache", placer=placer)
    assert len(list((tmp_path / "simulated_brirs").glob("*.wav"))) == 3  # simulated at start-up
    for index in range(len(dataset)):
        plan = dataset.plan(index)
        item = dataset.render(plan)
        assert plan.placement.listener == SHORT_ROOM and len(set(plan.placement.positions)) == 2
        assert item["id"].startswith(f"dm0-{index:07d}_{SHORT_ROOM}_")
        assert torch.equal(item["mix_sig"], item["s1_sig"] + item["s2_sig"])
    # The talker is the per-ear reverberant image of the generator (mixing.spatialize_reverb).
    dry = np.random.default_rng(0).standard_normal(3000)
    brir = placer.filters(plan.placement)[0]
    assert brir.shape[1] == 2
    np.testing.assert_allclose(placer.spatialize(dry, brir), spatialize_reverb(dry, brir, "per_ear"))
    with pytest.raises(DynamicMixingError, match="2 talkers need 2 distinct"):
        BrirPlacer("simulate", [SHORT_ROOM], [30])
