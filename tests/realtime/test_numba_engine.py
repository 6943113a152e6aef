"""Specification of ``numba_streaming``: the compiled engine equals the offline causal model and the
PyTorch streaming engine (its oracle) at every chunk size, keeps its whole state between calls and
nothing after ``reset``, takes and gives numpy or torch, and runs behind ``separate.py --engine numba``."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TASNET_KERNEL, TASNET_STRIDE, feed_stream, make_experiment, make_tasnet, offline, stream_with_engines

from binaural.models import tasnet as bt
from binaural.realtime.numba_engine import HUGE_PAGE, MAX_FRAMES, NumbaStreamingTasNet
from separate import main
from binaural.realtime.streaming import NotStreamableError, StreamingTasNet

RATE = 8000
PRIME = 37  # samples: a chunk that is no multiple of the hop
LONG = (3 * MAX_FRAMES + 1) * TASNET_STRIDE  # one call of more frames than the kernel takes at once


@pytest.fixture(scope="module")
def causal_model() -> bt.BinauralTasNet:
    return make_tasnet()


@pytest.fixture(scope="module")
def engine(causal_model) -> NumbaStreamingTasNet:
    return NumbaStreamingTasNet(causal_model)


# ---------------------------------------------------------------------------------- equal to offline
@pytest.mark.parametrize("chunk", [TASNET_STRIDE, 16, 64, PRIME, LONG, 1])  # one hop, 2 ms, 8 ms, prime, long, 1 sample
def test_equals_offline_and_the_pytorch_engine(causal_model, engine, chunk):
    mix = torch.randn(4003, 2)  # a multiple of neither the hop nor any chunk
    expected = offline(causal_model, mix)
    got = feed_stream(engine, mix, chunk)
    reference = feed_stream(StreamingTasNet(causal_model), mix, chunk)
    assert got.shape == expected.shape == (4003, 2, 2)
    assert (got - expected).abs().max().item() <= 1e-4
    assert (got - reference).abs().max().item() <= 1e-5


def test_a_stream_longer_than_every_ring_buffer(causal_model, engine):
    """The depthwise pasts wrap around their rings many times; the output stays offline's."""
    mix = torch.randn(8 * 4000, 2)  # 4000 frames, rings of at most 64 frames in this model
    got = feed_stream(engine, mix, 64)
    assert (got - offline(causal_model, mix)).abs().max().item() <= 1e-4


def test_outputs_per_call_and_the_first_call(engine):
    """Each call returns what the PyTorch engine returns: window - hop fewer samples at first, then the chunk."""
    engine.reset()
    assert engine.process_chunk(np.zeros((TASNET_STRIDE, 2), np.float32)).shape == (0, 2, 2)  # no frame yet
    assert engine.process_chunk(np.zeros((64, 2), np.float32)).shape == (64, 2, 2)
    engine.reset()
    assert engine.process_chunk(np.zeros((64, 2), np.float32)).shape == (64 - (TASNET_KERNEL - TASNET_STRIDE), 2, 2)
    assert engine.flush().shape == (TASNET_KERNEL - TASNET_STRIDE, 2, 2)
    assert engine.latency(64) == StreamingTasNet(make_tasnet()).latency(64) == 72


def test_reset_forgets_the_stream_and_chunks_equal_one_call(engine):
    mix = torch.from_numpy(np.random.default_rng(1).standard_normal((64 * 30, 2)).astype(np.float32))
    first = feed_stream(engine, mix, 64)
    assert torch.equal(feed_stream(engine, mix, 64), first)  # reset clears every state
    whole = feed_stream(engine, mix, len(mix))
    assert (whole - first).abs().max().item() <= 1e-5


def test_numpy_in_numpy_out_torch_in_torch_out(engine):
    chunk = np.random.default_rng(2).standard_normal((64, 2)).astype(np.float32)
    engine.reset()
    as_numpy = engine.process_chunk(chunk)
    engine.reset()
    as_torch = engine.process_chunk(torch.from_numpy(chunk))
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float32
    assert np.array_equal(as_numpy, as_torch.numpy())
    assert isinstance(engine.flush(), torch.Tensor)
    engine.reset()
    assert np.array_equal(engine.process_chunk(chunk.astype(np.float64)), as_numpy)  # any float input
    assert isinstance(engine.flush(), np.ndarray)  # the type the last chunk got


def test_a_stream_shorter_than_one_window_gives_zeros(engine):
    got = feed_stream(engine, torch.randn(TASNET_KERNEL - 3, 2), 4)
    assert got.shape == (TASNET_KERNEL - 3, 2, 2) and not got.any()


def test_a_nan_in_stays_a_nan_out(engine):
    """Fast math is on, but not the licence to assume no NaN: a NaN is not silently turned into audio."""
    chunk = np.zeros((64, 2), np.float32)
    chunk[30, 0] = np.nan
    engine.reset()
    assert np.isnan(engine.process_chunk(chunk)).any()


# ---------------------------------------------------------------------------------- variants
def test_the_independent_variant_and_three_talkers():
    for model in (make_tasnet(bt.IndependentTasNet, seed=4), make_tasnet(n_spks=3, seed=6)):
        mix = torch.randn(2000, 2)
        got = feed_stream(NumbaStreamingTasNet(model), mix, 16)
        assert (got - offline(model, mix)).abs().max().item() <= 1e-4


def test_softmax_masks_per_channel_slopes_and_biases():
    """What the published models do not use still streams exactly: softmax masks, a PReLU slope above
    one, a decoder bias, and a depthwise convolution with a bias."""
    model = make_tasnet(seed=7)
    with torch.no_grad():
        for masknet in (model.masknetL, model.masknetR):
            masknet.mask_nonlinear = "softmax"
            block = masknet.temporal_conv_net.temporalblock_0_1.layers
            block.act.weight.fill_(1.6)
            depthwise = block.DSconv.conv_0.conv
            depthwise.bias = torch.nn.Parameter(torch.randn(depthwise.out_channels))
        for decoder in (model.decoderL, model.decoderR):
            decoder.bias = torch.nn.Parameter(torch.randn(1))
    mix = torch.randn(1500, 2)
    got = feed_stream(NumbaStreamingTasNet(model), mix, 24)
    assert (got - offline(model, mix)).abs().max().item() <= 1e-4


def test_a_gln_model_is_refused():
    with pytest.raises(NotStreamableError, match="gLN"):
        NumbaStreamingTasNet(make_tasnet(causal=False, norm="gLN"))


def _transparent_huge_pages() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as setting:
            return "[never]" not in setting.read()
    except OSError:
        return False


@pytest.mark.skipif(not _transparent_huge_pages(), reason="the OS has no transparent huge pages")
def test_weights_and_pasts_sit_in_huge_pages(engine):
    """Where the OS offers transparent huge pages the weights and depthwise pasts get them."""
    engine.reset()
    engine.process_chunk(np.zeros((64, 2), np.float32))
    assert engine.huge_page_bytes() >= HUGE_PAGE  # the test model's arena is less than one huge page


def test_a_chunk_of_the_wrong_shape_is_a_value_error(engine):
    with pytest.raises(ValueError, match=r"\[time, 2\]"):
        engine.process_chunk(np.zeros((64, 3), np.float32))


# ---------------------------------------------------------------------------------- separate.py
def test_cli_streams_with_numba(tmp_path):
    folder, _, _ = make_experiment(tmp_path / "exp", "convtasnet-parallel-causal.yaml", "hyperparams.yaml")
    estimates = stream_with_engines(["--experiment", str(folder)], tmp_path, ("torch", "numba"), "2", seed=3)
    for a, b in zip(estimates["torch"], estimates["numba"]):
        assert a.shape == b.shape == (4001, 2)
        assert np.abs(a - b).max() <= 1e-4


def test_cli_numba_on_a_gpu_device_is_one_line(tmp_path, capsys):
    folder, _, _ = make_experiment(tmp_path / "exp", "convtasnet-parallel-causal.yaml", "hyperparams.yaml")
    sf.write(tmp_path / "mix.wav", np.zeros((800, 2)), RATE, subtype="FLOAT")
    status = main(["--experiment", str(folder), "--input", str(tmp_path / "mix.wav"), "--output_dir",
                   str(tmp_path / "out"), "--streaming", "--engine", "numba", "--device", "meta"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "--engine numba runs on the CPU" in err
