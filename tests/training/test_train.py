"""train.py: the recipe end to end on CPU (every variant), and its small pure pieces.

End-to-end runs call the real command line (``python train.py hparams/X.yaml ...``) in a
subprocess, on a few mixtures generated from real speech with the spherical head model, with a
tiny separator (N=16, B=8, H=16, X=2, R=1) so each run takes seconds.
"""
from __future__ import annotations

import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import (
    FAST,
    N_MIXTURES,
    OWN_DATA,
    PROJECT_ROOT,
    check_ok,
    check_test_results,
    checkpoints,
    generate_dataset,
    recipe_command,
    run,
    noise_burst_talker,
    sigkill_when_marked,
    train_log_epochs,
)

import train


from binaural.errors import RecipeError

from binaural.training.augment import draw_shifts, random_segment, shift_sources, speed_perturb_sources

from binaural.training.examples import choice_rule, choose_examples, peak_normalize, save_binaural_wav, to_pcm16

from binaural.training.data import read_binaural, static_dataset, training_set

from binaural.training.losses import select_training_loss, separation_loss
from binaural.data.record import DatasetMismatchError, DatasetRecord, GenerationOptions, missing_parts

def three_talker_wsj_root(speech_dir: Path, dest: Path) -> Path:
    """A WSJ0-shaped tree with three talkers in si_tr_s and three in the test sets (real speech;
    the corpus has two voices, so two 'talkers' reuse one voice under other names)."""
    layout = {
        "si_tr_s": {"01a": "spk1", "02b": "spk2", "03c": "spk1"},
        "si_dt_05": {"22g": "spk1", "23h": "spk2"},
        "si_et_05": {"44c": "spk2"},
    }
    for folder, talkers in layout.items():
        for talker, voice in talkers.items():
            target = dest / "wsj0" / folder / talker
            target.mkdir(parents=True, exist_ok=True)
            for k in range(1, 7):
                shutil.copy(speech_dir / f"{voice}_snt{k}.wav", target / f"{talker}c010{k}.wav")
    return dest



# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_2spk(tiny_wsj_root, tmp_path_factory) -> Path:
    return generate_dataset(tiny_wsj_root, tmp_path_factory.mktemp("data2"), 2)


@pytest.fixture(scope="module")
def wsj_3spk(speech_dir, tmp_path_factory) -> Path:
    return three_talker_wsj_root(speech_dir, tmp_path_factory.mktemp("wsj3"))


@pytest.fixture(scope="module")
def data_3spk(wsj_3spk, tmp_path_factory) -> Path:
    return generate_dataset(wsj_3spk, tmp_path_factory.mktemp("data3"), 3)


# --------------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------------


def test_parallel_generates_trains_resumes_and_tests(tiny_wsj_root, tmp_path):
    """The user's first run generates the data, trains, keeps a checkpoint and tests; a longer run
    resumes after the finished epochs; --test_only evaluates the best checkpoint."""
    data, out = tmp_path / "data", tmp_path / "out"
    overfit = ["--lr", "0.005", "--use_speedperturb", "False"]  # learn fast, deterministically

    first = run(recipe_command("convtasnet-parallel.yaml", data, tiny_wsj_root, out, *overfit, "--N_epochs", "1"))
    check_ok(first)
    assert len(list((data / "wav8k" / "min" / "tr" / "mix").glob("*.wav"))) == N_MIXTURES["tr"]
    assert {part["status"] for part in DatasetRecord.read(data).parts.values()} == {"complete"}
    assert [epoch for epoch, _ in train_log_epochs(out)] == [1]
    assert (out / "hyperparams.yaml").read_text().count("N_encoder_out: 16") == 1  # the experiment, recorded
    check_test_results(out, N_MIXTURES["tt"])
    saved = sorted(p.name for p in (out / "audio_results").glob("*.wav"))
    # n_audio_to_save=1, and the test set's best and worst (here both of its 2 mixtures): mixture, 2
    # targets, 2 estimates each
    assert len(saved) == N_MIXTURES["tt"] * (1 + 2 * 2)
    assert all(sf.info(str(out / "audio_results" / name)).channels == 2 for name in saved)

    # Interrupted after epoch 1 (or asked for more): only the missing epochs run.
    second = run(recipe_command("convtasnet-parallel.yaml", data, tiny_wsj_root, out, *overfit, "--N_epochs", "3"))
    check_ok(second)
    assert "found in" in second.stdout  # the data is not generated again
    epochs = train_log_epochs(out)
    assert [epoch for epoch, _ in epochs] == [1, 2, 3]
    assert epochs[-1][1] < epochs[0][1] - 0.1, f"training loss did not go down: {epochs}"

    # Kept: the latest checkpoint (to resume) and the best one by validation SNR.
    ckpts = checkpoints(out)
    assert ckpts and all((c / "masknetL.ckpt").exists() and (c / "optimizer.ckpt").exists() for c in ckpts)
    kept_epochs = {int((c / "counter.ckpt").read_text()) for c in ckpts}
    log = (out / "train_log.txt").read_text()
    valid_snr = dict(re.findall(r"^epoch: (\d+), .* valid snr: ([-+.\de]+)", log, re.MULTILINE))
    best_epoch = int(max(valid_snr, key=lambda epoch: float(valid_snr[epoch])))
    assert kept_epochs == {3, best_epoch}
    assert all(train.CKPT_KEY in (c / "CKPT.yaml").read_text() for c in ckpts)

    results = out / "test_results.csv"
    results.unlink()
    third = run(recipe_command("convtasnet-parallel.yaml", data, tiny_wsj_root, out, "--test_only"))
    check_ok(third)
    assert [epoch for epoch, _ in train_log_epochs(out)] == [1, 2, 3]  # nothing trained
    check_test_results(out, N_MIXTURES["tt"])


@pytest.mark.parametrize(
    "hparams, extra",
    [
        ("convtasnet-independent.yaml", []),
        # bf16 autocast with every augmentation: the loss and the augmentations must stay in fp32.
        ("convtasnet-cross.yaml", ["--precision", "bf16", "--use_rand_shift", "True", "--use_wavedrop", "True",
                                   "--limit_training_signal_len", "True", "--training_signal_len", "8000"]),
    ],
)
def test_two_talker_variant_trains_and_tests(hparams, extra, data_2spk, tiny_wsj_root, tmp_path):
    out = tmp_path / "out"
    check_ok(run(recipe_command(hparams, data_2spk, tiny_wsj_root, out, "--N_epochs", "1", *extra)))
    assert [epoch for epoch, _ in train_log_epochs(out)] == [1]
    ckpt = checkpoints(out)[-1]
    if "cross" in hparams:  # its learned interaural projection is checkpointed with the lobes
        assert (ckpt / "interaural_projection.ckpt").exists()
    (out / "test_results.csv").unlink()
    check_ok(run(recipe_command(hparams, data_2spk, tiny_wsj_root, out, "--test_only")))
    check_test_results(out, N_MIXTURES["tt"])


def test_three_talker_recipe_trains_and_tests(data_3spk, wsj_3spk, tmp_path):
    out = tmp_path / "out"
    check_ok(run(recipe_command("convtasnet-parallel-3spk.yaml", data_3spk, wsj_3spk, out, "--N_epochs", "1")))
    assert (out / "save" / "binaural_wsj0-3mix_tr.csv").exists()
    (out / "test_results.csv").unlink()
    check_ok(run(recipe_command("convtasnet-parallel-3spk.yaml", data_3spk, wsj_3spk, out, "--test_only")))
    check_test_results(out, N_MIXTURES["tt"])
    assert len(list((out / "audio_results").glob("*hat.wav"))) == 3 * N_MIXTURES["tt"]  # best and worst: both


def test_test_only_without_checkpoint_names_the_folder(data_2spk, tiny_wsj_root, tmp_path):
    out = tmp_path / "never_trained"
    result = run(recipe_command("convtasnet-parallel.yaml", data_2spk, tiny_wsj_root, out, "--test_only"))
    assert result.returncode != 0
    assert str(out / "save") in result.stderr and "without --test_only" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "test_results.csv").exists()


def test_two_talker_model_on_three_talker_data_is_refused(data_3spk, tmp_path):
    options = GenerationOptions(n_spks=2, freqs=["8k"], modes=["min"], own_metadata=True, hrtf_dir="spherical",
                                n_mixtures=N_MIXTURES)
    with pytest.raises(DatasetMismatchError, match=r"n_spks=3, but this run asks for n_spks=2"):
        missing_parts(data_3spk, options)
    assert missing_parts(data_3spk, replace(options, n_spks=3)) == []
    assert missing_parts(tmp_path, replace(options, n_spks=3, splits=["tt"])) == ["wav8k/min/tt"]


# --------------------------------------------------------------------------------------------------
# Command line translation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["h.yaml", "--data_folder", "D"], ["h.yaml", "--data_folder", "D"]),
        (["--local-rank=1", "h.yaml", "--distributed_launch", "--distributed_backend=nccl"],
         ["h.yaml", "--distributed_backend=nccl"]),
        (["--local_rank=0", "h.yaml"], ["h.yaml"]),
        (["h.yaml", "--local_rank", "3", "--seed", "7"], ["h.yaml", "--seed", "7"]),
        (["h.yaml", "--distributed_launch", "True", "--lr", "1"], ["h.yaml", "--lr", "1"]),
        (["h.yaml", "--distributed_launch=False"], ["h.yaml"]),
        (["h.yaml", "--test_only"], ["h.yaml", "--test_only"]),
        (["h.yaml", "--test_only", "True"], ["h.yaml", "--test_only"]),
        (["h.yaml", "--test_only=false", "--N_epochs", "2"], ["h.yaml", "--N_epochs", "2"]),
        (["h.yaml", "--test_only", "--data_folder", "D"], ["h.yaml", "--test_only", "--data_folder", "D"]),
    ],
)
def test_translate_argv(argv, expected):
    assert train.translate_argv(argv) == expected


def test_translated_argv_parses_in_speechbrain():
    import speechbrain as sb

    argv = train.translate_argv(
        ["--local-rank=0", "h.yaml", "--data_folder", "D", "--distributed_launch", "--distributed_backend=gloo",
         "--test_only"]
    )
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    assert hparams_file == "h.yaml" and run_opts["test_only"] and overrides == "data_folder: D"
    assert run_opts["distributed_backend"] == "gloo"


def test_bad_test_only_value_is_an_error():
    with pytest.raises(RecipeError, match="--test_only=maybe"):
        train.translate_argv(["h.yaml", "--test_only=maybe"])


# --------------------------------------------------------------------------------------------------
# Augmentations
# --------------------------------------------------------------------------------------------------


def _lag(left: torch.Tensor, right: torch.Tensor) -> int:
    """Samples by which ``right`` lags ``left`` (peak of the cross-correlation)."""
    n = left.numel()
    spectrum = torch.fft.rfft(right, 2 * n) * torch.fft.rfft(left, 2 * n).conj()
    xcorr = torch.fft.irfft(spectrum, 2 * n)
    lag = int(torch.argmax(xcorr))
    return lag if lag < n else lag - 2 * n


def _ild(binaural: torch.Tensor) -> float:
    return float(10 * torch.log10(binaural[:, 0].square().sum() / binaural[:, 1].square().sum()))


def test_speed_perturbation_keeps_interaural_cues():
    from speechbrain.augment.time_domain import SpeedPerturb

    torch.manual_seed(0)
    n = 8000
    sources = torch.stack([noise_burst_talker(n, 10, 0.5, 1), noise_burst_talker(n, -6, 1.5, 2)], dim=-1)
    perturb = SpeedPerturb(orig_freq=8000, speeds=[90, 110])
    for _ in range(4):  # several random draws
        speeds: list[float] = []  # the factor of each call, from the length it returns

        def recorded(wave: torch.Tensor, speeds: list[float] = speeds) -> torch.Tensor:
            out = perturb(wave)
            speeds.append(n / out.shape[1])
            return out

        out = speed_perturb_sources(sources, recorded)  # [1, time', 2, 2]
        assert out.shape[0] == 1 and out.shape[2:] == (2, 2) and len(speeds) == 2  # one call per talker
        for k, itd in enumerate([10, -6]):
            talker = out[0, :, :, k]  # [time', ear]
            assert _ild(talker) == pytest.approx(_ild(sources[0, :, :, k]), abs=0.05)
            # The ITD scales with the talker's speed like any duration: both ears moved together.
            assert abs(_lag(talker[:, 0], talker[:, 1]) - itd / speeds[k]) <= 0.6


def test_speed_perturbation_is_one_linear_operation_for_both_ears():
    from speechbrain.augment.time_domain import SpeedPerturb

    torch.manual_seed(1)
    left = torch.randn(1, 4000)
    sources = torch.stack((left, 0.25 * left), dim=-1).unsqueeze(-1)  # [1, time, 2, 1], right = left / 4
    out = speed_perturb_sources(sources, SpeedPerturb(orig_freq=8000, speeds=[95, 105]))
    assert out.shape[1] != 4000  # perturbed
    torch.testing.assert_close(out[0, :, 1, 0], 0.25 * out[0, :, 0, 0])


def test_speed_perturbation_cuts_talkers_to_the_shortest():
    calls = iter([100, 90])  # a "perturbation" returning a different length per talker

    def perturb(wave: torch.Tensor) -> torch.Tensor:
        return wave[:, : next(calls)]

    out = speed_perturb_sources(torch.randn(2, 120, 2, 2), perturb)
    assert out.shape == (2, 90, 2, 2)


def test_shift_moves_both_ears_of_a_talker_together():
    sources = torch.randn(1, 50, 2, 2)
    out = shift_sources(sources, torch.tensor([3, -2]))
    torch.testing.assert_close(out[..., 0], torch.roll(sources[..., 0], 3, dims=1))
    torch.testing.assert_close(out[..., 1], torch.roll(sources[..., 1], -2, dims=1))
    with pytest.raises(ValueError, match="one shift per talker"):
        shift_sources(sources, torch.tensor([1, 2, 3]))


def test_draw_shifts():
    torch.manual_seed(0)
    same = draw_shifts(3, -8, 8, independent=False)
    assert same.shape == (3,) and len(set(same.tolist())) == 1
    draws = torch.stack([draw_shifts(3, -8, 8, independent=True) for _ in range(50)])
    assert draws.min() >= -8 and draws.max() < 8
    assert any(len(set(row.tolist())) > 1 for row in draws)
    with pytest.raises(RecipeError, match="min_shift < max_shift"):
        draw_shifts(2, 5, 5, independent=True)


def test_random_segment_cuts_mixture_and_talkers_alike():
    mix, sources = torch.arange(20.0).reshape(1, 10, 2), torch.arange(40.0).reshape(1, 10, 2, 2)
    cut_mix, cut_sources = random_segment(mix, sources, 4, start=3)
    torch.testing.assert_close(cut_mix, mix[:, 3:7])
    torch.testing.assert_close(cut_sources, sources[:, 3:7])
    whole_mix, _ = random_segment(mix, sources, 100)
    assert whole_mix.shape[1] == 10


def test_training_augmentation_rebuilds_the_mixture_as_the_sum(tmp_path):
    """The Brain's augmentation chain: after speed perturbation and shifts, mix == sum of talkers."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = {
        "data_folder": str(tmp_path), "wsj_root": str(tmp_path), "output_folder": str(tmp_path / "out"),
        "N_encoder_out": 16, "B": 8, "H": 16, "X": 2, "R": 1,
        "use_rand_shift": True, "independent_shifts": True, "min_shift": -100, "max_shift": 100,
        "speed_changes": [90, 110],  # never 100 %: the output length always changes
    }
    with open(PROJECT_ROOT / "hparams" / "convtasnet-parallel.yaml") as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    brain = train.Separation(modules=hparams["modules"], hparams=hparams, run_opts={"device": "cpu"})
    targets = torch.stack([noise_burst_talker(4000, 4, 0.7, 3), noise_burst_talker(4000, -3, 1.2, 4)], dim=-1)
    mix, augmented = brain.augment(targets.sum(-1) + 1.0, targets, torch.ones(1))  # stale mixture on purpose
    torch.testing.assert_close(mix, augmented.sum(-1))
    assert augmented.shape[1] != 4000  # speed-perturbed
    assert brain.max_grad_norm == 5.0  # the published clip_grad_norm drives SpeechBrain's clipping


def test_select_training_loss():
    losses = torch.tensor([-35.0, -10.0, -20.0])
    loss, verdict = select_training_loss(losses, threshold=-30, upper_limit=999999)
    assert verdict == "ok" and float(loss) == pytest.approx(-15.0)
    assert select_training_loss(losses, None, 999999)[0] == pytest.approx(-65.0 / 3)
    assert select_training_loss(torch.tensor([-40.0]), -30, 999999) == (None, "below_threshold")
    assert select_training_loss(torch.tensor([float("nan"), 1.0]), -30, 999999) == (None, "nonfinite")
    assert select_training_loss(torch.tensor([5.0]), -30, 1.0) == (None, "nonfinite")


def test_separation_loss_is_negative_snr_in_fp32_under_autocast():
    from speechbrain.nnet.losses import get_snr_with_pitwrapper

    torch.manual_seed(0)
    targets = torch.randn(2, 1000, 2, 2)
    estimates = targets[..., [1, 0]] + 0.1 * torch.randn_like(targets)  # swapped talkers, 20 dB SNR
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = separation_loss(get_snr_with_pitwrapper, estimates.bfloat16(), targets)
    assert loss.dtype == torch.float32 and loss.shape == (2,)
    assert loss.tolist() == pytest.approx([-20.0, -20.0], abs=0.3)


# --------------------------------------------------------------------------------------------------
# Saved audio and data reading
# --------------------------------------------------------------------------------------------------


def test_peak_normalize_uses_one_factor_for_both_ears():
    rng = np.random.default_rng(0)
    talker = rng.standard_normal(1000)
    signal = np.stack((0.2 * talker, 0.05 * talker), axis=1)  # left 12 dB louder
    scaled, factor = peak_normalize(signal)
    assert np.max(np.abs(scaled)) == pytest.approx(1.0)
    np.testing.assert_allclose(scaled, signal * factor)
    ild = lambda s: 10 * np.log10(np.sum(s[:, 0] ** 2) / np.sum(s[:, 1] ** 2))
    assert ild(scaled) == pytest.approx(ild(signal))
    silent, factor = peak_normalize(np.zeros((10, 2)))
    assert factor == 1.0 and not silent.any()


def test_saved_audio_keeps_the_ild_and_never_clips(tmp_path):
    rng = np.random.default_rng(1)
    talker = rng.standard_normal(4000)
    loud = np.stack((3.0 * talker, 0.6 * talker), axis=1)  # peaks far beyond full scale
    path = tmp_path / "a.wav"
    save_binaural_wav(path, torch.from_numpy(loud).float(), 8000)
    read, rate = sf.read(str(path), dtype="int16")
    assert rate == 8000 and read.shape == (4000, 2)
    assert np.max(np.abs(read.astype(int))) == 32767  # full scale reached, not exceeded
    assert np.count_nonzero(np.abs(read.astype(int)) == 32767) == 1  # one peak: nothing saturated
    ild = lambda s: 10 * np.log10(np.sum(s[:, 0].astype(float) ** 2) / np.sum(s[:, 1].astype(float) ** 2))
    assert ild(read) == pytest.approx(ild(loud), abs=0.01)
    with pytest.raises(ValueError, match="peak_normalize"):
        to_pcm16(np.full((3, 2), 1.5))


def test_read_binaural_checks_rate_and_channels(tmp_path):
    stereo, mono = tmp_path / "stereo.wav", tmp_path / "mono.wav"
    sf.write(stereo, np.zeros((100, 2)), 8000)
    sf.write(mono, np.zeros(100), 8000)
    assert read_binaural(str(stereo), 8000).shape == (100, 2)
    with pytest.raises(RecipeError, match=r"stereo.wav: 8000 Hz but sample_rate is 16000"):
        read_binaural(str(stereo), 16000)
    with pytest.raises(RecipeError, match=r"mono.wav: 1 channel\(s\), expected 2"):
        read_binaural(str(mono), 8000)
    with pytest.raises(RecipeError, match="absent.wav: file not found"):
        read_binaural(str(tmp_path / "absent.wav"), 8000)


def test_manifest_of_another_talker_count_is_refused(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("ID,duration,mix_wav,s1_wav,s2_wav\n")
    with pytest.raises(RecipeError, match="no column s3_wav"):
        static_dataset(manifest, 3, 8000, tmp_path)
    with pytest.raises(RecipeError, match="absent.csv: manifest not found"):
        static_dataset(tmp_path / "absent.csv", 2, 8000, tmp_path)


def test_dynamic_mixing_without_a_dataset_is_a_clear_error(tmp_path):
    hparams = {"dynamic_mixing": True, "base_folder_dm": str(tmp_path), "dynamic_mixing_dataset": None}
    with pytest.raises(RecipeError, match="dynamic_mixing_dataset"):
        training_set(hparams, None, GenerationOptions())
    with pytest.raises(RecipeError, match="base_folder_dm"):
        training_set(hparams | {"base_folder_dm": str(tmp_path / "absent")}, None, GenerationOptions())
    static = object()
    assert training_set({"dynamic_mixing": False}, static, GenerationOptions()) is static


# --------------------------------------------------------------------------------------------------
# Checkpoints that survive a kill or damage, through resume, --test_only and separate.py
# --------------------------------------------------------------------------------------------------

# train.py as the user runs it, except that torch.save of the second masknetL.ckpt (epoch 2's
# checkpoint) writes half the file, signals, and hangs until the test SIGKILLs the process.
KILLED_TRAINING = """
import io, sys, time
from pathlib import Path
import torch
from speechbrain.utils import checkpoints as sb_checkpoints

marker, saves = Path(sys.argv[1]), []
plain_save = sb_checkpoints.DEFAULT_SAVE_HOOKS[torch.nn.Module]

def save_or_hang(module, path):
    saves.append(Path(path).name)
    if saves.count("masknetL.ckpt") < 2:
        return plain_save(module, path)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    marker.touch()
    time.sleep(600)

sb_checkpoints.DEFAULT_SAVE_HOOKS[torch.nn.Module] = save_or_hang
sys.argv = ["train.py", *sys.argv[2:]]
import train
sys.exit(train.main())
"""


def kill_training_during_save(command: list[str], marker: Path) -> None:
    """Run ``command`` (a train.py command line) under :data:`KILLED_TRAINING`; SIGKILL it mid-save."""
    sigkill_when_marked([sys.executable, "-c", KILLED_TRAINING, str(marker), *command[2:]], marker)  # [2:]: no "python train.py"


def separate_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python separate.py ARGS`` in this process: (status, stdout, stderr)."""
    import separate

    capsys.readouterr()
    status = separate.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write_mixture(path: Path, seconds: float = 0.5, rate: int = 8000) -> Path:
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal((int(seconds * rate), 2)), rate)
    return path


def test_a_training_killed_while_saving_tests_separates_and_resumes(data_2spk, tiny_wsj_root, tmp_path, capsys):
    out = tmp_path / "out"
    command = recipe_command("convtasnet-parallel.yaml", data_2spk, tiny_wsj_root, out, "--N_epochs", "2")
    kill_training_during_save(command, tmp_path / "halfway")
    [intact] = checkpoints(out)  # epoch 2's half-written save is no checkpoint
    assert (intact / "counter.ckpt").read_text() == "1"

    # --test_only evaluates epoch 1's checkpoint.
    tested = run(recipe_command("convtasnet-parallel.yaml", data_2spk, tiny_wsj_root, out, "--test_only"))
    check_ok(tested)
    check_test_results(out, N_MIXTURES["tt"])
    assert f"evaluating {intact}" in tested.stdout + tested.stderr

    # separate.py separates with it.
    status, stdout, _ = separate_cli(capsys, "--experiment", str(out), "--input", str(write_mixture(tmp_path / "m.wav")),
                                     "--output_dir", str(tmp_path / "separated"))
    assert status == 0 and f"model: {intact} (best by max valid_snr)" in stdout
    assert sorted(p.name for p in (tmp_path / "separated").iterdir()) == ["m_s1.wav", "m_s2.wav"]

    # The same command again resumes after epoch 1 and saves epoch 2 whole.
    resumed = run(command)
    check_ok(resumed)
    assert "Traceback" not in resumed.stderr
    assert 2 in {int((c / "counter.ckpt").read_text()) for c in checkpoints(out)}
    assert not [p for p in (out / "save").iterdir() if p.name.endswith(".saving")]  # the leftover is gone


def test_damaged_checkpoints_are_named_by_test_only_and_separate_and_resume_starts_over(
    data_2spk, tiny_wsj_root, tmp_path, capsys
):
    out = tmp_path / "out"
    check_ok(run(recipe_command("convtasnet-parallel.yaml", data_2spk, tiny_wsj_root, out, "--N_epochs", "1")))
    [checkpoint] = checkpoints(out)
    savefile = checkpoint / "masknetL.ckpt"
    savefile.write_bytes(savefile.read_bytes()[:1000])  # a copy cut short
    (out / "test_results.csv").unlink()

    tested = run(recipe_command("convtasnet-parallel.yaml", data_2spk, tiny_wsj_root, out, "--test_only"))
    assert tested.returncode == 1 and "Traceback" not in tested.stderr
    [error] = [line for line in tested.stderr.splitlines() if line.startswith("train.py: error:")]
    assert f"no intact checkpoint in {out / 'save'}" in error and "masknetL.ckpt is truncated" in error
    assert not (out / "test_results.csv").exists()

    status, _, stderr = separate_cli(capsys, "--experiment", str(out), "--input", str(write_mixture(tmp_path / "m.wav")),
                                     "--output_dir", str(tmp_path / "separated"))
    assert status == 2 and "Traceback" not in stderr
    [error] = [line for line in stderr.splitlines() if line.startswith("separate.py: error:")]
    assert f"no intact checkpoint in {out / 'save'} ({checkpoint.name}: masknetL.ckpt is truncated" in error
    assert not (tmp_path / "separated").exists()

    resumed = run(recipe_command("convtasnet-parallel.yaml", data_2spk, tiny_wsj_root, out, "--N_epochs", "1"))
    check_ok(resumed)
    output = resumed.stdout + resumed.stderr
    assert "starting from scratch" in output and str(checkpoint) in output
    assert [epoch for epoch, _ in train_log_epochs(out)] == [1, 1]  # epoch 1 trained again
    check_test_results(out, N_MIXTURES["tt"])



# --------------------------------------------------------------------------------------------------
# A published SpeechBrain output folder, used as it is downloaded
# --------------------------------------------------------------------------------------------------

# The hyperparams.yaml of a published output folder (results/convtasnet-parallel/1234), resolved
# as SpeechBrain 0.5's create_experiment_directory wrote it: the authors' absolute paths, objects
# shared through YAML aliases, an augmentation whose module SpeechBrain 1.x no longer has, and the
# published module names and sizes (N 64, L 16, MaskNet N 128 B 64 H 128 P 3 X 8 R 4, gLN).
PUBLISHED_HYPERPARAMS = """\
# Generated 2022-07-05 from:
# /home/author/speechbrain/recipes/BinauralWSJ0Mix/separation/hparams/convtasnet-parallel.yaml
# yamllint disable
seed: 1234
__set_seed: !apply:torch.manual_seed [1234]
data_folder: /network/datasets/binaural-wsj0mix/2speakers
wsj_root: /network/datasets/wsj0-processed
experiment_name: convtasnet-parallel
output_folder: results/convtasnet-parallel/1234
save_folder: results/convtasnet-parallel/1234/save
num_spks: 2
sample_rate: 8000
speedperturb: !new:speechbrain.lobes.augment.TimeDomainSpecAugment
  perturb_prob: 1.0
  sample_rate: 8000
  speeds: [95, 100, 105]
EncoderL: &id001 !new:speechbrain.lobes.models.dual_path.Encoder
  kernel_size: 16
  out_channels: 64
EncoderR: &id002 !new:speechbrain.lobes.models.dual_path.Encoder
  kernel_size: 16
  out_channels: 64
MaskNetL: &id005 !new:speechbrain.lobes.models.conv_tasnet.MaskNet
  N: 128
  B: 64
  H: 128
  P: 3
  X: 8
  R: 4
  C: 2
  norm_type: gLN
  causal: false
  mask_nonlinear: relu
MaskNetR: &id006 !new:speechbrain.lobes.models.conv_tasnet.MaskNet
  N: 128
  B: 64
  H: 128
  P: 3
  X: 8
  R: 4
  C: 2
  norm_type: gLN
  causal: false
  mask_nonlinear: relu
DecoderL: &id003 !new:speechbrain.lobes.models.dual_path.Decoder
  in_channels: 64
  out_channels: 1
  kernel_size: 16
  stride: 8
  bias: false
DecoderR: &id004 !new:speechbrain.lobes.models.dual_path.Decoder
  in_channels: 64
  out_channels: 1
  kernel_size: 16
  stride: 8
  bias: false
optimizer: !name:torch.optim.Adam
  lr: 0.00015
  weight_decay: 0
loss: !name:speechbrain.nnet.losses.get_snr_with_pitwrapper
lr_scheduler: &id007 !new:speechbrain.nnet.schedulers.ReduceLROnPlateau
  factor: 0.5
  patience: 2
  dont_halve_until_epoch: 85
epoch_counter: &id008 !new:speechbrain.utils.epoch_loop.EpochCounter
  limit: 200
modules:
  encoderL: *id001
  encoderR: *id002
  decoderL: *id003
  decoderR: *id004
  masknetL: *id005
  masknetR: *id006
checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
  checkpoints_dir: results/convtasnet-parallel/1234/save
  recoverables:
    encoderL: *id001
    encoderR: *id002
    decoderL: *id003
    decoderR: *id004
    masknetL: *id005
    masknetR: *id006
    counter: *id008
    lr_scheduler: *id007
train_logger: !new:speechbrain.utils.train_logger.FileTrainLogger
  save_file: results/convtasnet-parallel/1234/train_log.txt
"""


def make_published_experiment(folder: Path) -> tuple[Path, dict[str, dict]]:
    """``folder`` laid out as a published output folder, random weights: ``hyperparams.yaml`` and
    ``save/CKPT+<date>/`` with the six lobes, counter, lr_scheduler, optimizer and brain savefiles,
    written by SpeechBrain's own Checkpointer with the published meta (``snr``: negative SNR).

    Two checkpoints: the best (snr -16.9, epoch 180) first, a worse latest one (-15.9, epoch 200).
    Returns the best one's folder and the state of its lobes.
    """
    import yaml
    from speechbrain.lobes.models.conv_tasnet import MaskNet
    from speechbrain.lobes.models.dual_path import Decoder, Encoder
    from speechbrain.nnet.schedulers import ReduceLROnPlateau
    from speechbrain.utils.checkpoints import Checkpointer
    from speechbrain.utils.epoch_loop import EpochCounter

    folder.mkdir(parents=True)
    (folder / "hyperparams.yaml").write_text(PUBLISHED_HYPERPARAMS, encoding="utf-8")
    torch.manual_seed(0)

    def masknet() -> MaskNet:
        return MaskNet(N=128, B=64, H=128, P=3, X=8, R=4, C=2, norm_type="gLN", causal=False, mask_nonlinear="relu")

    def decoder() -> Decoder:
        return Decoder(in_channels=64, out_channels=1, kernel_size=16, stride=8, bias=False)

    lobes = {
        "encoderL": Encoder(kernel_size=16, out_channels=64), "encoderR": Encoder(kernel_size=16, out_channels=64),
        "masknetL": masknet(), "masknetR": masknet(), "decoderL": decoder(), "decoderR": decoder(),
    }
    counter = EpochCounter(limit=200)
    parameters = [p for lobe in lobes.values() for p in lobe.parameters()]

    def save_brain(_, path) -> None:  # what SpeechBrain's Brain writes in brain.ckpt
        Path(path).write_text(yaml.dump({"avg_train_loss": -16.2, "optimizer_step": 0, "step": 0}))

    checkpointer = Checkpointer(
        folder / "save",
        recoverables={**lobes, "counter": counter, "lr_scheduler": ReduceLROnPlateau(factor=0.5, patience=2),
                      "optimizer": torch.optim.Adam(parameters, lr=1.5e-4), "brain": object()},
        custom_save_hooks={"brain": save_brain},
    )
    counter.current = 180
    best = checkpointer.save_checkpoint(meta={"snr": -16.9}, name="2022-07-04+18-02-11+00")
    best_state = {name: {k: v.clone() for k, v in lobe.state_dict().items()} for name, lobe in lobes.items()}
    with torch.no_grad():
        for parameter in parameters:
            parameter.mul_(0.5)
    counter.current = 200
    checkpointer.save_checkpoint(meta={"snr": -15.9}, name="2022-07-05+09-40-57+00")
    assert sorted(p.name for p in best.path.iterdir()) == sorted(
        ["CKPT.yaml", "brain.ckpt", "counter.ckpt", "decoderL.ckpt", "decoderR.ckpt", "encoderL.ckpt",
         "encoderR.ckpt", "lr_scheduler.ckpt", "masknetL.ckpt", "masknetR.ckpt", "optimizer.ckpt"]
    )
    return best.path, best_state


def test_a_published_experiment_folder_is_evaluated_and_separated_as_it_is(
    data_2spk, tiny_wsj_root, tmp_path, capsys, monkeypatch
):
    """The README's commands on a downloaded folder: our hparams file of the same experiment for
    --test_only, the folder alone for separate.py; its best checkpoint by the published (negative) snr."""
    import separate
    from binaural.models.tasnet import ParallelTasNet

    folder = tmp_path / "convtasnet-parallel" / "1234"
    best, best_state = make_published_experiment(folder)

    tested = run([
        sys.executable, "train.py", "hparams/convtasnet-parallel.yaml", "--data_folder", str(data_2spk),
        "--wsj_root", str(tiny_wsj_root), "--output_folder", str(folder), "--test_only", *OWN_DATA, *FAST,
    ])
    check_ok(tested)
    assert f"evaluating {best} (best by min snr)" in tested.stdout + tested.stderr
    assert "Epoch loaded: 180" in (folder / "train_log.txt").read_text()
    check_test_results(folder, N_MIXTURES["tt"])
    assert (folder / "hyperparams.yaml").read_text(encoding="utf-8") == PUBLISHED_HYPERPARAMS  # kept as published

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the published checkpointer's relative save folder must not appear here
    mixture = write_mixture(tmp_path / "m.wav")
    status, stdout, stderr = separate_cli(capsys, "--experiment", str(folder), "--input", str(mixture),
                                          "--output_dir", str(tmp_path / "separated"))
    assert status == 0, stderr
    assert f"model: {best} (best by min snr); 2 talkers at 8000 Hz" in stdout
    assert sorted(p.name for p in (tmp_path / "separated").iterdir()) == ["m_s1.wav", "m_s2.wav"]
    assert list(cwd.iterdir()) == []
    model = separate.BinauralSeparator.from_experiment(folder).model
    assert type(model) is ParallelTasNet
    for name, lobe_state in best_state.items():
        assert all(torch.equal(v, lobe_state[k]) for k, v in getattr(model, name).state_dict().items()), name


def test_the_chosen_examples_span_the_test_set():
    """The first N, then the true worst and best and the SNRi quantiles between (nearest rank), each
    with its reasons, in the test order; unscored rows are never a quantile."""
    snr = [5.0, 9.0, 1.0, 7.0, float("nan"), 3.0, 11.0, 6.0, 2.0]
    rows = [{"snt_id": f"u{k}", "snr_i": value} for k, value in enumerate(snr)]
    chosen = choose_examples(rows, n_first=2)
    # 8 scored, ascending u2 u8 u5 u0 u7 u3 u1 u6: ranks 0, 2 (round(1.75)), 4 (3.5 rounds to even),
    # 5 (round(5.25)) and 7 -> u2, u5, u7, u3, u6
    assert chosen == {"u0": ["first 2"], "u1": ["first 2"], "u2": ["worst SNRi"], "u3": ["SNRi quantile 0.75"],
                      "u5": ["SNRi quantile 0.25"], "u6": ["best SNRi"], "u7": ["SNRi quantile 0.50"]}
    assert list(chosen) == ["u0", "u1", "u2", "u3", "u5", "u6", "u7"]  # the test order
    assert list(choose_examples(rows, n_first=0)) == ["u2", "u3", "u5", "u6", "u7"]
    assert choose_examples([{"snt_id": "a", "snr_i": float("nan")}], n_first=0) == {}
    assert "first 2 of the 9 test mixtures" in choice_rule(2, 9) and "0: its worst, 1: its best" in choice_rule(2, 9)
