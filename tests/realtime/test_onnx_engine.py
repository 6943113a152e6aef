"""Specification of ``onnx_streaming``: the exported streaming step equals the offline causal model
and the PyTorch streaming engine, carries its whole state in its inputs and outputs, and says in
its JSON how to drive it; separate.py exports it and streams with it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import (
    PROJECT_ROOT,
    TASNET_KERNEL,
    TASNET_STRIDE,
    feed_stream,
    make_experiment,
    make_tasnet,
    offline,
    stream_with_engines,
)

from binaural.models import tasnet as bt
from binaural.realtime.onnx_engine import FORMAT, OnnxModelError, OnnxStreamingTasNet, export_onnx, onnx_model
from separate import main
from binaural.realtime.streaming import NotStreamableError, StreamingTasNet

RATE = 8000
PRIME = 37  # samples: a chunk that is no multiple of the hop


@pytest.fixture(scope="module")
def causal_model() -> bt.BinauralTasNet:
    return make_tasnet()


@pytest.fixture(scope="module")
def exported(causal_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "step.onnx"
    export_onnx(causal_model, path, RATE, chunk=64)
    return path


def readme_code() -> str:
    """The README's plain-onnxruntime example (the python block of its ONNX Runtime section)."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Streaming with ONNX Runtime") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def plain_onnxruntime(model: bt.BinauralTasNet, folder: Path, chunk: int, mix: np.ndarray, monkeypatch) -> np.ndarray:
    """``separated`` of :func:`run_readme_code`."""
    return run_readme_code(model, folder, chunk, mix, monkeypatch)["separated"]


# ---------------------------------------------------------------------------------- equal to offline
@pytest.mark.parametrize("chunk", [TASNET_STRIDE, 16, 64, PRIME])  # one hop, 2 ms, 8 ms, a prime
def test_onnx_engine_equals_offline_and_the_pytorch_engine(causal_model, exported, chunk):
    mix = torch.randn(4003, 2)  # a multiple of neither the hop nor any chunk
    expected = offline(causal_model, mix)
    onnx_out = feed_stream(OnnxStreamingTasNet.from_file(exported), mix, chunk)
    torch_out = feed_stream(StreamingTasNet(causal_model), mix, chunk)
    assert onnx_out.shape == torch_out.shape == expected.shape == (4003, 2, 2)
    assert (onnx_out - expected).abs().max().item() <= 1e-4
    assert (onnx_out - torch_out).abs().max().item() <= 1e-4


def run_readme_code(model: bt.BinauralTasNet, folder: Path, chunk: int, mix: np.ndarray, monkeypatch) -> dict:
    """Export ``model`` as ``folder/model.onnx`` for ``chunk`` and run the README's code on ``mix``
    there; the variables it leaves (``separated``, ``aligned_mix``...)."""
    export_onnx(model, folder / "model.onnx", RATE, chunk=chunk)
    monkeypatch.chdir(folder)
    namespace = {"mix": mix}
    exec(readme_code(), namespace)  # noqa: S102 (the documented example, verbatim)
    return namespace


def test_the_readme_code_equals_offline(causal_model, tmp_path, monkeypatch):
    """No recipe code: the first call returns window - hop samples fewer, then whole chunks; the
    README's alignment (``aligned_mix``: no shift) is the offline model's, and a shift by window - hop
    (what the README once said) is not."""
    mix = np.random.default_rng(0).standard_normal((64 * 40, 2)).astype(np.float32)
    expected = offline(causal_model, torch.from_numpy(mix)).numpy()
    shift = TASNET_KERNEL - TASNET_STRIDE
    for chunk in (TASNET_STRIDE, 64):  # one hop: the first call has no complete frame yet
        names = run_readme_code(causal_model, tmp_path / str(chunk), chunk, mix, monkeypatch)
        est, aligned = names["separated"], names["aligned_mix"]
        assert est.shape == (len(mix) - shift, 2, 2) and aligned.shape == (len(est), 2)
        assert np.array_equal(aligned, mix[: len(est)])  # the README's alignment: the mixture unshifted...
        assert np.abs(est - expected[: len(est)]).max() <= 1e-4  # ...is the offline estimate's
        assert np.abs(est[shift:] - expected[: len(est) - shift]).max() > 1e-2  # a shift misaligns
    assert "delayed" not in readme_code()


def test_state_round_trip(causal_model, exported, tmp_path, monkeypatch):
    """Reset gives the same stream again, and chunks give what one long chunk gives."""
    mix = np.random.default_rng(1).standard_normal((64 * 30, 2)).astype(np.float32)
    chunked = plain_onnxruntime(causal_model, tmp_path / "a", 64, mix, monkeypatch)
    again = plain_onnxruntime(causal_model, tmp_path / "b", 64, mix, monkeypatch)
    whole = plain_onnxruntime(causal_model, tmp_path / "c", len(mix), mix, monkeypatch)
    assert np.array_equal(chunked, again)
    assert chunked.shape == whole.shape
    assert np.abs(chunked - whole).max() <= 1e-4
    engine = OnnxStreamingTasNet.from_file(exported)
    first = feed_stream(engine, torch.from_numpy(mix), 64)
    assert torch.equal(feed_stream(engine, torch.from_numpy(mix), 64), first)  # reset clears every state


def test_the_json_describes_the_model(exported):
    config = json.loads(exported.with_suffix(".json").read_text())
    assert config["format"] == FORMAT
    assert (config["sample_rate"], config["window"], config["hop"], config["chunk"]) == (RATE, 16, 8, 64)
    assert (config["latency"], config["latency_ms"], config["chunk_ms"]) == (72, 9.0, 8.0)
    session = onnxruntime.InferenceSession(str(exported))
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(inputs) == ["mix"] + [s["name"] for s in config["state"]]
    assert list(outputs) == ["separated"] + [s["output"] for s in config["state"]]
    assert [s["name"] for s in config["state"]][:2] == ["pending", "tail"]
    histories = [s for s in config["state"] if s["name"].startswith("history_")]
    assert [s["dilation"] for s in histories] == [1, 2, 4] * 2  # X=3 blocks, R=2 repeats
    for s in histories:  # SpeechBrain's causal conv looks 3 dilations back, both ears, H channels
        assert s["shape"] == s["initial_shape"] == inputs[s["name"]] == [2, 3 * s["dilation"], 16]
    assert config["state"][0]["initial_shape"] == [0, 2] and config["state"][0]["shape"] == [8, 2]


# ---------------------------------------------------------------------------------- variants and errors
def test_export_of_the_independent_variant(tmp_path):
    model = make_tasnet(bt.IndependentTasNet, seed=4)
    export_onnx(model, tmp_path / "independent.onnx", RATE, chunk=16)
    mix = torch.randn(2000, 2)
    got = feed_stream(OnnxStreamingTasNet.from_file(tmp_path / "independent.onnx"), mix, 16)
    assert (got - offline(model, mix)).abs().max().item() <= 1e-4


def test_prelu_slopes_on_either_side_of_one(tmp_path):
    """The export writes PReLU as max(x, a x) for slopes <= 1, min(x, a x) for slopes >= 1, and as
    a PRelu node when a layer has both: all three equal the model."""
    model = make_tasnet(seed=5)
    blocks = [getattr(m.temporal_conv_net, "temporalblock_0_0").layers for m in (model.masknetL, model.masknetR)]
    mixed = [getattr(m.temporal_conv_net, "temporalblock_0_1").layers for m in (model.masknetL, model.masknetR)]
    with torch.no_grad():
        for layers in blocks:
            layers.act.weight.fill_(1.7)  # both ears above 1
        mixed[0].act.weight.fill_(1.4)  # one ear above 1 ...
        mixed[1].act.weight.fill_(-0.3)  # ... the other below
    export_onnx(model, tmp_path / "m.onnx", RATE, chunk=64)
    mix = torch.randn(1500, 2)
    got = feed_stream(OnnxStreamingTasNet.from_file(tmp_path / "m.onnx"), mix, 64)
    assert (got - offline(model, mix)).abs().max().item() <= 1e-4


def test_a_gln_model_is_not_exported(tmp_path):
    with pytest.raises(NotStreamableError, match="gLN"):
        export_onnx(make_tasnet(causal=False, norm="gLN"), tmp_path / "m.onnx", RATE, chunk=64)
    with pytest.raises(NotStreamableError, match="non-causal"):
        onnx_model(make_tasnet(causal=False, norm="cLN"), RATE, chunk=64)
    assert not any(tmp_path.iterdir())  # nothing written


def test_bad_chunk_and_a_missing_or_foreign_json(causal_model, tmp_path):
    with pytest.raises(ValueError, match="multiple of the hop"):
        onnx_model(causal_model, RATE, chunk=12)
    export_onnx(causal_model, tmp_path / "m.onnx", RATE, chunk=8)
    (tmp_path / "m.json").write_text('{"format": "something else"')
    with pytest.raises(OnnxModelError, match="m.json: not JSON"):
        OnnxStreamingTasNet.from_file(tmp_path / "m.onnx")
    (tmp_path / "m.json").write_text('{"format": "something else"}')
    with pytest.raises(OnnxModelError, match="something else"):
        OnnxStreamingTasNet.from_file(tmp_path / "m.onnx")
    (tmp_path / "m.json").unlink()
    with pytest.raises(OnnxModelError, match="m.json: not found"):
        OnnxStreamingTasNet.from_file(tmp_path / "m.onnx")


# ---------------------------------------------------------------------------------- separate.py
@pytest.fixture(scope="module")
def causal_checkpoint(tmp_path_factory) -> list[str]:
    """``--experiment FOLDER`` of a small trained causal model, as train.py leaves it."""
    folder, _, _ = make_experiment(tmp_path_factory.mktemp("causal"), "convtasnet-parallel-causal.yaml", "hyperparams.yaml")
    return ["--experiment", str(folder)]


def test_cli_exports_and_streams_with_onnx(causal_checkpoint, tmp_path, capsys):
    args = causal_checkpoint
    assert main([*args, "--export_onnx", str(tmp_path / "model.onnx"), "--chunk_ms", "2"]) == 0
    assert "latency 3 ms" in capsys.readouterr().out
    config = json.loads((tmp_path / "model.json").read_text())
    assert (config["chunk"], config["sample_rate"]) == (16, RATE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.onnx"]  # nothing else

    estimates = stream_with_engines(args, tmp_path, ("torch", "onnx"), "8", seed=2)
    for a, b in zip(estimates["torch"], estimates["onnx"]):
        assert a.shape == b.shape == (4001, 2)
        assert np.abs(a - b).max() <= 1e-4


def test_cli_refuses_to_export_a_gln_model(tmp_path, capsys):
    folder, _, _ = make_experiment(tmp_path / "gln", "convtasnet-parallel.yaml", "hyperparams.yaml")
    args = ["--experiment", str(folder)]
    assert main([*args, "--export_onnx", str(tmp_path / "m.onnx")]) == 2
    error = capsys.readouterr().err.strip()
    assert "gLN" in error and "convtasnet-parallel-causal.yaml" in error and "\n" not in error
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.json").exists()


def test_cli_export_to_an_unwritable_place_is_one_line(causal_checkpoint, tmp_path, capsys):
    (tmp_path / "file").write_text("in the way")
    assert main([*causal_checkpoint, "--export_onnx", str(tmp_path / "file" / "m.onnx")]) == 2
    error = capsys.readouterr().err.strip()
    assert "m.onnx: cannot be written" in error and "Traceback" not in error and "\n" not in error
    assert main([*causal_checkpoint, "--export_onnx", str(tmp_path / "m.json")]) == 2
    assert "name it MODEL.onnx" in capsys.readouterr().err


def test_cli_still_needs_input_and_output_without_export(causal_checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(causal_checkpoint)
    assert exit_.value.code == 2
    assert "--input, --output_dir" in capsys.readouterr().err
