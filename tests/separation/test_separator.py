"""Specification of ``separate.py``: loading experiments, files in and out, blocks, streaming, CLI.

Experiments are made as train.py makes them: the repository's YAML (tiny sizes through
overrides), a few optimiser steps, SpeechBrain's ``Checkpointer`` from the YAML saving with
``save_and_keep_only(meta={"valid_snr": ...}, max_keys=["valid_snr"])``, and the resolved YAML in
the experiment folder (``resolve_references``, what ``create_experiment_directory`` writes).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_SEPARATOR, make_experiment
from conftest import make_tasnet as make_model

from binaural.models import tasnet as bt
from binaural.io.audio import AudioFileError
from binaural.separation.blocks import _block_weights, plan_blocks, separate_in_blocks
from binaural.separation.separator import KNOWN_CHECKPOINT_KEYS, BinauralSeparator, SeparationError, load_hparams
from separate import main

ROOT = Path(__file__).resolve().parents[2]
TINY = TINY_SEPARATOR
RATE = 8000


@pytest.fixture(scope="module")
def causal_experiment(tmp_path_factory) -> tuple[Path, dict, dict]:
    return make_experiment(tmp_path_factory.mktemp("causal"), "convtasnet-parallel-causal.yaml", "hyperparams.yaml")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> tuple[Path, dict, dict]:
    """The published (non-causal, gLN) parallel model; the copy named hparams.yaml this time."""
    return make_experiment(tmp_path_factory.mktemp("noncausal"), "convtasnet-parallel.yaml", "hparams.yaml")


def checkpoints(folder: Path) -> list[Path]:
    """The experiment's CKPT+ folders, oldest first (their names are timestamps)."""
    return sorted((folder / "save").glob("CKPT+*"))


def write_mix(path: Path, seconds: float = 0.5, rate: int = RATE, channels: int = 2, scale: float = 0.1) -> Path:
    rng = np.random.default_rng(abs(hash((path.name, rate))) % 2**32)
    sf.write(path, scale * rng.standard_normal((int(seconds * rate), channels)), rate, subtype="FLOAT")
    return path


def same_state(model: torch.nn.Module, state: dict) -> bool:
    return all(torch.equal(v.cpu(), state[k]) for k, v in model.state_dict().items())


# ---------------------------------------------------------------------------------- loading
def test_from_experiment_loads_the_best_checkpoint(causal_experiment) -> None:
    folder, best, latest = causal_experiment
    separator = BinauralSeparator.from_experiment(folder)
    assert same_state(separator.model, best) and not same_state(separator.model, latest)
    assert "max valid_snr" in separator.source
    assert (separator.sample_rate, separator.n_spks) == (RATE, 2)
    assert isinstance(separator.model, bt.ParallelTasNet)


def test_from_experiment_can_take_the_latest_or_another_key(causal_experiment) -> None:
    folder, _, latest = causal_experiment
    assert same_state(BinauralSeparator.from_experiment(folder, min_key="valid_snr").model, latest)


def test_from_hparams_loads_the_given_checkpoint(causal_experiment) -> None:
    folder, best, latest = causal_experiment
    yaml = ROOT / "hparams" / "convtasnet-parallel-causal.yaml"
    for ckpt, state in zip(checkpoints(folder), (best, latest)):
        separator = BinauralSeparator.from_hparams(yaml, ckpt, overrides=TINY)
        assert same_state(separator.model, state)


def test_train_py_checkpoint_key_is_known() -> None:
    """train.py saves the best checkpoint by CKPT_KEY (higher is better): separate.py must agree."""
    train = pytest.importorskip("train")
    assert dict(KNOWN_CHECKPOINT_KEYS)[train.CKPT_KEY] == "max"


def test_loading_a_recipe_yaml_writes_nothing(tmp_path, monkeypatch) -> None:
    """The YAML's Checkpointer would create results/<name>/<seed>/save where we stand: it is not built."""
    monkeypatch.chdir(tmp_path)
    hparams = load_hparams(ROOT / "hparams" / "convtasnet-parallel-causal.yaml", TINY)
    assert hparams["checkpointer"] is None and isinstance(hparams["Model"], bt.ParallelTasNet)
    assert list(tmp_path.iterdir()) == []


def test_loading_errors_name_the_fix(causal_experiment, tmp_path) -> None:
    folder, _, _ = causal_experiment
    with pytest.raises(SeparationError, match="no hyperparams.yaml or hparams.yaml"):
        BinauralSeparator.from_experiment(tmp_path)
    with pytest.raises(SeparationError, match="not a SpeechBrain checkpoint folder"):
        BinauralSeparator.from_hparams(ROOT / "hparams" / "convtasnet-parallel-causal.yaml", tmp_path, overrides=TINY)
    with pytest.raises(SeparationError, match="does not fit the model"):  # other sizes
        BinauralSeparator.from_hparams(ROOT / "hparams" / "convtasnet-parallel-causal.yaml", checkpoints(folder)[0],
                                       overrides={**TINY, "H": 12})
    if not torch.cuda.is_available():
        with pytest.raises(SeparationError, match="CUDA is not available"):
            BinauralSeparator.from_experiment(folder, device="cuda")


# ---------------------------------------------------------------------------------- files
def test_separate_file_names_channels_rate_length(causal_experiment, tmp_path) -> None:
    separator = BinauralSeparator.from_experiment(causal_experiment[0])
    mix = write_mix(tmp_path / "meeting.wav")
    written = separator.separate_file(mix, tmp_path / "out")
    assert [p.name for p in written] == ["meeting_s1.wav", "meeting_s2.wav"]
    for path in written:
        info = sf.info(path)
        assert (info.channels, info.samplerate, info.frames, info.subtype) == (2, RATE, 4000, "FLOAT")
    # The files hold exactly the model's output (float wav: no quantisation, no clipping).
    expected = separator.separate_batch(torch.as_tensor(sf.read(mix, dtype="float32")[0])[None])[0].numpy()
    for k, path in enumerate(written):
        assert np.allclose(sf.read(path, dtype="float32")[0], expected[..., k], atol=1e-6)
    assert not list((tmp_path / "out").glob("*.partial"))


@pytest.mark.parametrize("rate", [16000, 44100])
def test_other_rates_are_resampled_there_and_back(causal_experiment, tmp_path, rate: int) -> None:
    separator = BinauralSeparator.from_experiment(causal_experiment[0])
    mix = write_mix(tmp_path / f"at{rate}.wav", seconds=0.37, rate=rate)
    for path in separator.separate_file(mix, tmp_path / "out"):
        info = sf.info(path)
        assert (info.channels, info.samplerate, info.frames) == (2, rate, int(0.37 * rate))
    # The estimates are the model's, band-limited to the model's rate: taken back down to 8 kHz
    # they match separating the downsampled input directly, up to what the resampling filters'
    # transition band removes just below 4 kHz (about 1 % of the energy of a white-noise input).
    samples = sf.read(mix)[0]
    from binaural.data.mixing import resample

    direct = separator.separate_array(resample(samples, rate, RATE), RATE)
    round_trip = resample(separator.separate_array(samples, rate), rate, RATE)[: direct.shape[0]]
    inner = slice(200, -200)  # away from the resampling filters' edges
    error = np.sum((round_trip[inner] - direct[inner]) ** 2) / np.sum(direct[inner] ** 2)
    assert error < 3e-2


def test_mono_and_corrupt_inputs_are_refused(causal_experiment, tmp_path) -> None:
    separator = BinauralSeparator.from_experiment(causal_experiment[0])
    mono = write_mix(tmp_path / "mono.wav", channels=1)
    with pytest.raises(AudioFileError, match=r"mono\.wav.*1 channel.*no interaural cues"):
        separator.separate_file(mono, tmp_path / "out")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(range(256)))
    with pytest.raises(AudioFileError, match=r"corrupt\.wav"):
        separator.separate_file(corrupt, tmp_path / "out")
    with pytest.raises(SeparationError, match="mono signal carries no interaural cues"):
        separator.separate_array(np.zeros((800, 1)), RATE)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_pcm_output_is_scaled_not_clipped(causal_experiment, tmp_path, capsys) -> None:
    separator = BinauralSeparator.from_experiment(causal_experiment[0])
    loud = write_mix(tmp_path / "loud.wav", scale=200.0)
    expected = separator.separate_array(sf.read(loud)[0], RATE)
    written = separator.separate_file(loud, tmp_path / "out", subtype="PCM_16")
    assert "above full scale" in capsys.readouterr().out
    for k, path in enumerate(written):
        data = sf.read(path)[0]
        assert np.max(np.abs(data)) <= 1.0
        # One factor for the whole file (both ears): the shape and the ear balance are kept.
        factor = np.max(np.abs(data)) / np.max(np.abs(expected[..., k]))
        assert np.allclose(data, expected[..., k] * factor, atol=2 / 32768)


# ---------------------------------------------------------------------------------- blocks
def test_block_plan_weights_sum_to_one() -> None:
    for n, block, crossfade in ((20011, 2000, 160), (16000, 8000, 0), (8100, 4000, 800), (5000, 8000, 100)):
        plan = plan_blocks(n, block, crossfade, before=100, after=50, stride=8)
        total = torch.zeros(n)
        for piece in plan:
            assert piece.start % 8 == 0 and 0 <= piece.start <= piece.keep_start - min(100, piece.keep_start) + 7
            assert piece.stop >= min(n, piece.keep_stop + 50)
            total[piece.keep_start : piece.keep_stop] += _block_weights(piece)
        assert torch.allclose(total, torch.ones(n), atol=1e-6)


@pytest.mark.parametrize(("causal", "norm"), [(False, "cLN"), (True, "cLN")])
def test_blocks_equal_whole_file_processing(causal: bool, norm: str) -> None:
    """Frame-wise norms: the receptive-field context makes blocks exact (float rounding aside)."""
    model = make_model(causal=causal, norm=norm, seed=4)
    mix = torch.randn(20011, 2)
    with torch.inference_mode():
        whole = model(mix[None])[0]
    for block, crossfade in ((2000, 160), (3000, 0), (1600, 800)):
        blocks = separate_in_blocks(model, mix, block, crossfade)
        assert (blocks - whole).abs().max().item() <= 1e-5 * whole.abs().max().item()


def test_blocks_of_a_gln_model_are_close_to_whole_file_processing() -> None:
    """gLN normalises with its whole input's statistics: blocks are close, not identical.

    With 4 s blocks of a stationary 20 s input the blocks' output is within 30 dB of the whole
    file's (random weights; the default 60 s blocks and real models are closer); files up to one
    block are processed whole, exactly.
    """
    model = make_model(causal=False, norm="gLN", seed=5)
    mix = torch.randn(160000, 2)
    with torch.inference_mode():
        whole = model(mix[None])[0]
    blocks = separate_in_blocks(model, mix, 32000, 800)
    snr = 10 * torch.log10(whole.pow(2).sum() / (blocks - whole).pow(2).sum())
    assert snr > 30
    assert torch.equal(separate_in_blocks(model, mix[:30000], 32000, 800), model(mix[None, :30000])[0].detach())


def test_separator_uses_blocks_for_long_inputs(experiment) -> None:
    separator = BinauralSeparator.from_experiment(experiment[0], block_seconds=0.5)
    mix = 0.1 * torch.randn(12000, 2)  # 1.5 s: three 0.5 s blocks
    assert separator.separate_long(mix).shape == (12000, 2, 2)
    assert separator.separate_batch(mix[None]).shape == (1, 12000, 2, 2)


# ---------------------------------------------------------------------------------- streaming
def test_streaming_file_equals_offline(causal_experiment, tmp_path, capsys) -> None:
    separator = BinauralSeparator.from_experiment(causal_experiment[0])
    mix = write_mix(tmp_path / "live.wav", seconds=0.6131)  # not a whole number of chunks
    offline = separator.separate_file(mix, tmp_path / "offline")
    for chunk_ms in (1, 8, 12):
        streamed = separator.separate_file(mix, tmp_path / f"stream{chunk_ms}", streaming=True, chunk_ms=chunk_ms)
        for a, b in zip(offline, streamed):
            assert np.max(np.abs(sf.read(a)[0] - sf.read(b)[0])) <= 1e-4
    assert separator.latency_ms(8) == 9.0  # chunk 8 ms + window 2 ms - hop 1 ms
    with pytest.raises(SeparationError, match="multiple of the encoder hop"):
        separator.chunk_samples(0.5)


def test_streaming_api(causal_experiment) -> None:
    separator = BinauralSeparator.from_experiment(causal_experiment[0])
    mix = 0.1 * np.random.default_rng(0).standard_normal((1000, 2)).astype(np.float32)
    separator.reset()
    pieces = [separator.process_chunk(mix[i : i + 64]) for i in range(0, 1000, 64)] + [separator.flush()]
    assert [p.shape[0] for p in pieces[:3]] == [56, 64, 64]  # the first chunk waits one hop for its window
    whole = separator.separate_batch(torch.as_tensor(mix)[None])[0]
    assert (torch.cat(pieces) - whole).abs().max().item() <= 1e-4


# ---------------------------------------------------------------------------------- CLI
def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The script as a user runs it (one intra-op thread: the tensors are tiny)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "separate.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=env, check=False)


def test_cli_with_hparams_and_checkpoint(causal_experiment, tmp_path) -> None:
    folder, _, _ = causal_experiment
    mix = write_mix(tmp_path / "a.wav", rate=16000)
    result = run_cli("--hparams", str(ROOT / "hparams" / "convtasnet-parallel-causal.yaml"),
                     "--checkpoint", str(checkpoints(folder)[0]),
                     *(arg for k, v in TINY.items() for arg in ("--override", f"{k}={v}")),
                     "--input", str(mix), "--output_dir", str(tmp_path / "out"), "--streaming", "--chunk_ms", "8")
    assert result.returncode == 0, result.stderr
    assert "algorithmic latency 9 ms" in result.stdout
    for k in (1, 2):
        info = sf.info(tmp_path / "out" / f"a_s{k}.wav")
        assert (info.channels, info.samplerate, info.frames) == (2, 16000, 8000)


def test_cli_with_an_experiment_and_a_folder(experiment, tmp_path, capsys) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_mix(inputs / "one.wav")
    write_mix(inputs / "two.wav", rate=22050)
    write_mix(inputs / "mono.wav", channels=1)
    status = main(["--experiment", str(experiment[0]), "--input", str(inputs), "--output_dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 1  # one input failed ...
    assert "mono.wav" in captured.err and "no interaural cues" in captured.err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())  # ... the others were separated
    assert names == ["one_s1.wav", "one_s2.wav", "two_s1.wav", "two_s2.wav"]
    assert sf.info(tmp_path / "out" / "two_s2.wav").samplerate == 22050


def test_cli_errors(experiment, tmp_path, capsys) -> None:
    mix = write_mix(tmp_path / "a.wav")
    out = str(tmp_path / "out")
    assert main(["--experiment", str(experiment[0]), "--input", str(mix), "--output_dir", out, "--streaming"]) == 2
    assert "gLN" in capsys.readouterr().err  # the published model looks ahead: no streaming
    assert main(["--experiment", str(tmp_path), "--input", str(mix), "--output_dir", out]) == 2
    assert "hyperparams.yaml" in capsys.readouterr().err
    assert main(["--hparams", str(ROOT / "hparams" / "convtasnet-parallel.yaml"), "--input", str(mix), "--output_dir", out]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["--experiment", str(experiment[0]), "--input", str(tmp_path / "nope.wav"), "--output_dir", out]) == 2
    assert "nope.wav: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- damaged checkpoints
def copy_experiment(experiment: Path, tmp_path: Path) -> Path:
    """A copy of a module-scoped experiment, to damage."""
    import shutil

    return Path(shutil.copytree(experiment, tmp_path / "exp"))


def test_a_damaged_best_checkpoint_is_skipped_for_the_next(causal_experiment, tmp_path, capsys, caplog) -> None:
    folder = copy_experiment(causal_experiment[0], tmp_path)
    best, latest = checkpoints(folder)
    savefile = best / "masknetR.ckpt"
    savefile.write_bytes(savefile.read_bytes()[:-100])  # a copy cut short
    separator = BinauralSeparator.from_experiment(folder)
    assert same_state(separator.model, causal_experiment[2])  # the latest (and next best) one
    assert separator.source == f"{latest} (best by max valid_snr)"
    status = main(["--experiment", str(folder), "--input", str(write_mix(tmp_path / "a.wav")),
                   "--output_dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 0 and f"model: {latest}" in captured.out
    assert f"skipping the damaged checkpoint {best}: masknetR.ckpt is truncated" in caplog.text
    # Asked for by name, a damaged checkpoint is an error naming it.
    yaml = ROOT / "hparams" / "convtasnet-parallel-causal.yaml"
    with pytest.raises(SeparationError, match=rf"^{re.escape(str(best))}: .*masknetR.ckpt is truncated"):
        BinauralSeparator.from_hparams(yaml, best, overrides=TINY)


def one_error_line(stderr: str) -> str:
    """The CLI's error: exactly one line, no traceback: after argparse's usage lines (if any), every
    line of stderr is one of separate.py's own one-line messages."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if lines and lines[0].startswith("usage:"):
        lines = lines[next(i for i, line in enumerate(lines) if line.startswith("separate.py: ")):]
    assert lines and all(line.startswith("separate.py: ") for line in lines), stderr
    errors = [line for line in lines if line.startswith("separate.py: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _crafted_pickle(folder: Path) -> None:
    """masknetL.ckpt replaced by a whole, valid zip whose pickle would run code (weights_only refuses it)."""
    torch.save({"weight": _Payload(folder / "code_ran")}, checkpoints(folder)[0] / "masknetL.ckpt")
    torch.save({"weight": _Payload(folder / "code_ran")}, checkpoints(folder)[1] / "masknetL.ckpt")


class _Payload:
    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self):
        return (Path.touch, (self.proof,))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda f: (f / "hparams.yaml").write_text("Model: !new:binaural.models.ParallelTasNet\n  encoderL: [1,\n"),
         r"hparams\.yaml: (not a YAML file|cannot load the hparams)"),
        (lambda f: (f / "hparams.yaml").write_bytes(b"\xff\xfe\x00garbage"), r"hparams\.yaml: cannot read the hparams"),
        (_crafted_pickle, r"masknetL|holds more than weights"),
        (lambda f: [(c / "CKPT.yaml").write_text("unixtime: [") for c in checkpoints(f)], r"no intact checkpoint in .*save"),
    ],
)
def test_experiment_errors_are_one_line_naming_the_file(experiment, tmp_path, capsys, damage, expected) -> None:
    folder = copy_experiment(experiment[0], tmp_path)
    damage(folder)
    status = main(["--experiment", str(folder), "--input", str(write_mix(tmp_path / "a.wav")),
                   "--output_dir", str(tmp_path / "out")])
    error = one_error_line(capsys.readouterr().err)
    assert status == 2 and re.search(expected, error) and str(folder) in error
    assert not (folder / "code_ran").exists()
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- CLI input checks
def test_inputs_sharing_a_stem_are_refused_before_any_work(experiment, tmp_path, capsys) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_mix(inputs / "a.wav")
    sf.write(inputs / "a.flac", 0.1 * np.random.default_rng(1).standard_normal((4000, 2)), RATE)
    write_mix(inputs / "b.wav")
    status = main(["--experiment", str(experiment[0]), "--input", str(inputs), "--output_dir", str(tmp_path / "out")])
    error = one_error_line(capsys.readouterr().err)
    assert status == 2
    assert str(inputs / "a.flac") in error and str(inputs / "a.wav") in error and "a_s1.wav" in error
    assert not (tmp_path / "out").exists()  # nothing separated, not even b.wav


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--block_seconds", "0", "argument --block_seconds: '0' is not a positive number"),
        ("--block_seconds", "-3", "argument --block_seconds: '-3' is not a positive number"),
        ("--block_seconds", "nan", "argument --block_seconds: 'nan' is not a positive number"),
        ("--block_seconds", "0.1", "--block_seconds 0.1: a block must be"),
        ("--chunk_ms", "0", "argument --chunk_ms: '0' is not a positive number"),
        ("--chunk_ms", "inf", "argument --chunk_ms: 'inf' is not a positive number"),
    ],
)
def test_block_and_chunk_lengths_are_validated(experiment, tmp_path, capsys, option, value, expected) -> None:
    args = ["--experiment", str(experiment[0]), "--input", str(write_mix(tmp_path / "a.wav")),
            "--output_dir", str(tmp_path / "out"), option, value]
    try:
        status = main(args)
    except SystemExit as exit_info:  # argparse
        status = exit_info.code
    assert status == 2
    assert expected in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
    with pytest.raises(SeparationError, match="a block must be"):
        BinauralSeparator.from_experiment(experiment[0], block_seconds=0.0)


def test_a_too_short_input_and_an_unwritable_output_name_the_file(experiment, tmp_path, capsys) -> None:
    short = write_mix(tmp_path / "short.wav", seconds=0.001)  # 8 samples, shorter than one encoder window
    assert main(["--experiment", str(experiment[0]), "--input", str(short), "--output_dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"separate.py: error: {short}: the mixture is 8 samples long" in err and "Traceback" not in err
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    mix = write_mix(tmp_path / "a.wav")
    assert main(["--experiment", str(experiment[0]), "--input", str(mix), "--output_dir", str(blocker)]) == 2
    assert f"{blocker}: not a folder" in one_error_line(capsys.readouterr().err)
    assert main(["--experiment", str(experiment[0]), "--input", str(mix), "--output_dir", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert f"separate.py: error: {mix}: its estimates could not be written to {blocker / 'sub'}" in err
    assert "Traceback" not in err


def test_a_bad_override_is_one_line(experiment, tmp_path, capsys) -> None:
    status = main(["--experiment", str(experiment[0]), "--input", str(write_mix(tmp_path / "a.wav")),
                   "--output_dir", str(tmp_path / "out"), "--override", "H=[1,"])
    assert status == 2 and "--override 'H=[1,': the value is not YAML" in one_error_line(capsys.readouterr().err)
