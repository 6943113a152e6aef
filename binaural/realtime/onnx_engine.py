"""Streaming separation as an ONNX model: export a causal binaural TasNet's step, run it with onnxruntime.

:func:`export_onnx` writes ``NAME.onnx``, the *step* of :class:`binaural.realtime.streaming.StreamingTasNet` as a
pure function, and ``NAME.json`` beside it, what a runtime needs to drive it (sample rate, hop,
chunk, latency, the state tensors and their initial values). One call separates one chunk::

    separated, next_pending, next_tail, next_history_00, ... = step(mix, pending, tail, history_00, ...)

==================  ============================  ==============================================
 name               shape                         meaning
==================  ============================  ==============================================
 ``mix``            ``[samples, 2]``              the next samples, left and right ear, float32;
                                                  ``samples`` a positive multiple of ``hop``
 ``pending``        ``[0, 2]`` then               input samples the next frame shares with this
                    ``[window - hop, 2]``         chunk's last one (empty at the start)
 ``tail``           ``[2, window/hop - 1, C,      decoder overlap-add of the frames so far on the
                    hop]``                        hops still to come (per output ear, speaker)
 ``history_BB``     ``[2, 3 * dilation, H]``      block BB's depthwise-convolution input for its
                                                  last ``3 * dilation`` frames, both ears
 ``separated``      ``[samples', 2, C]``          the samples now final: ``samples`` of them, the
                                                  first call ``window - hop`` fewer
==================  ============================  ==============================================

Every ``next_X`` output is the ``X`` input of the next call; a new stream starts from the initial
values (``pending`` empty, the others zeros), exactly the zero padding of the offline model, so
the concatenated outputs equal the offline causal model (float rounding aside). The last
``window - hop`` samples of a stream are in ``tail`` (:func:`binaural.realtime.streaming.end_of_stream`).

:class:`OnnxStreamingTasNet` runs such a file with ``onnxruntime`` behind the interface of
:class:`binaural.realtime.streaming.StreamingTasNet` (``reset``, ``process_chunk`` with any number of samples,
``flush``). The export uses PyTorch's TorchScript-based exporter (``dynamo=False``): the
``torch.export`` one needs ``onnxscript``, which this recipe does not depend on.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from binaural.io.atomic import atomic_bytes, atomic_text
from binaural.models.tasnet import BinauralTasNet
from binaural.errors import RecipeError
from binaural.realtime.streaming import (
    NotStreamableError,
    StreamingTasNet,
    algorithmic_latency,
    depthwise_window,
    end_of_stream,
    onnx_prelu,
)

__all__ = ["FORMAT", "ONNX_OPSET", "OnnxModelError", "OnnxStreamingTasNet", "StreamingStep", "export_onnx", "onnx_model"]

#: ``format`` of the JSON beside an exported model.
FORMAT = "binaural-tasnet-streaming-step/1"
#: LayerNormalization is an ONNX operator from opset 17 on.
ONNX_OPSET = 17


class OnnxModelError(RecipeError):
    """An exported step model or its JSON is missing or not of this format."""


class StreamingStep(nn.Module):
    """:class:`binaural.realtime.streaming.StreamingTasNet`'s step as ``(mix, pending, tail, *histories) -> (separated, *next)``.

    The same computation (:meth:`StreamingTasNet.separate_frames`) with the state passed in and
    out instead of kept: a block's depthwise window is its history followed by the new frames,
    and its next history the window's last ``left`` frames. Needs ``window`` a multiple of
    ``hop`` (SpeechBrain's encoder: ``hop = window // 2`` with an even window).
    """

    def __init__(self, streamer: StreamingTasNet) -> None:
        super().__init__()
        if streamer.window != streamer.hops_per_window * streamer.stride:
            raise NotStreamableError(
                f"the ONNX step needs an encoder window that is a multiple of its hop; got window "
                f"{streamer.window}, hop {streamer.stride} (use an even kernel_size)"
            )
        self.streamer = streamer
        self.hop: int = streamer.stride
        self.hops: int = streamer.hops_per_window
        self.blocks = streamer.masknets.blocks
        self.lefts: list[int] = [block.left for block in self.blocks]

    def forward(self, mix: torch.Tensor, pending: torch.Tensor, tail: torch.Tensor, *histories: torch.Tensor):
        x = torch.cat((pending, mix))  # [m * hop, 2]
        rows = x.reshape(-1, 2 * self.hop)  # [m, 2 * hop]: one hop of interleaved samples per row
        # Frame k = rows k ... k + hops - 1; fixed offsets from both ends, no shape arithmetic.
        frames = torch.cat([rows[j : j + 1 - self.hops or None] for j in range(self.hops)], dim=1)  # [n, 2L]
        next_histories: list[torch.Tensor] = []

        def convolve(index: int, new: torch.Tensor) -> torch.Tensor:
            window = torch.cat((histories[index], new), dim=1)  # [E, left + n, H]
            next_histories.append(window[:, -self.lefts[index] :])
            return depthwise_window(self.blocks[index], window)

        separated, next_tail = self.streamer.separate_frames(frames, tail, convolve, onnx_prelu)
        next_pending = x[(1 - self.hops) * self.hop :]  # [window - hop, 2]
        return (separated, next_pending, next_tail, *next_histories)


def _state_layout(streamer: StreamingTasNet) -> list[dict]:
    """The state tensors in input order: name, output name, shape, initial shape and meaning."""
    overlap = streamer.window - streamer.stride
    tail = list(streamer.initial_tail().shape)
    layout = [
        {"name": "pending", "output": "next_pending", "shape": [overlap, 2], "initial_shape": [0, 2],
         "initial": "empty", "meaning": "input samples shared with the next frame, [samples, ear]"},
        {"name": "tail", "output": "next_tail", "shape": tail, "initial_shape": tail, "initial": "zeros",
         "meaning": "decoder overlap-add on the hops to come, [output ear, hop, speaker, sample]"},
    ]
    for index, block in enumerate(streamer.masknets.blocks):
        shape = [2, block.left, block.hidden]
        layout.append({
            "name": f"history_{index:02d}", "output": f"next_history_{index:02d}", "shape": shape,
            "initial_shape": shape, "initial": "zeros", "dilation": block.dilation,
            "meaning": f"TCN block {index}: depthwise-conv input of the last {block.left} frames, [ear, frame, channel]",
        })
    return layout


def onnx_model(model: BinauralTasNet, sample_rate: int, chunk: int) -> tuple[bytes, dict]:
    """Export ``model``'s streaming step: the ONNX bytes and the JSON configuration (a dict).

    Arguments
    ---------
    model : ParallelTasNet or IndependentTasNet
        Causal (``causal: True``, ``norm_type: cLN``); anything else raises
        :class:`binaural.realtime.streaming.NotStreamableError` saying why.
    sample_rate : int
        The model's rate (Hz), recorded in the JSON.
    chunk : int
        Samples per call the JSON recommends (any positive multiple of the hop works).
    """
    streamer = StreamingTasNet(model, device="cpu")  # checks causality, cLN, layout
    step = StreamingStep(streamer).eval()
    if chunk <= 0 or chunk % streamer.stride:
        raise ValueError(f"chunk must be a positive multiple of the hop ({streamer.stride} samples), got {chunk}")
    layout = _state_layout(streamer)
    example = [torch.zeros(chunk, 2)] + [torch.zeros(entry["shape"]) for entry in layout]
    names = [entry["name"] for entry in layout]
    outputs = [entry["output"] for entry in layout]
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of one that needs onnxscript; tracing
        # warns about the Python-int slicing, which is what keeps the graph free of shape ops.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step, tuple(example), buffer, dynamo=False, opset_version=ONNX_OPSET,
            input_names=["mix", *names], output_names=["separated", *outputs],
            dynamic_axes={"mix": {0: "samples"}, "pending": {0: "pending_samples"}, "separated": {0: "samples_out"}},
        )
    config = {
        "format": FORMAT,
        "sample_rate": int(sample_rate),
        "window": streamer.window,
        "hop": streamer.stride,
        "chunk": chunk,
        "chunk_ms": 1000 * chunk / sample_rate,
        "latency": streamer.latency(chunk),
        "latency_ms": 1000 * streamer.latency(chunk) / sample_rate,
        "n_spks": streamer.n_spks,
        "input": {"name": "mix", "shape": ["samples", 2], "dtype": "float32",
                  "meaning": "the next samples [sample, ear] (0 = left), samples a positive multiple of hop"},
        "output": {"name": "separated", "shape": ["samples'", 2, streamer.n_spks], "dtype": "float32",
                   "meaning": "the samples now final [sample, ear, speaker]; the first call window - hop fewer"},
        "state": layout,
        "decoder_bias": None if streamer.decoder_bias is None else streamer.decoder_bias.flatten().tolist(),
    }
    return buffer.getvalue(), config


def export_onnx(model: BinauralTasNet, path: str | Path, sample_rate: int, chunk: int) -> Path:
    """Write ``path`` (the ONNX step, see the module docstring) and its JSON beside it; returns the JSON path.

    Both files are written atomically, in ``path``'s folder only.
    """
    path = Path(path)
    data, config = onnx_model(model, sample_rate, chunk)
    config_path = path.with_suffix(".json")
    atomic_bytes(path, data)
    with atomic_text(config_path) as stream:
        json.dump(config, stream, indent=1)
        stream.write("\n")
    return config_path


class OnnxStreamingTasNet:
    """An exported streaming step run with onnxruntime, with :class:`binaural.realtime.streaming.StreamingTasNet`'s interface.

    ``process_chunk`` takes any number of samples ``[time, 2]`` (at ``config["sample_rate"]``),
    feeds the whole hops to the model and keeps the rest for the next call; ``flush`` ends the
    stream. Outputs are torch tensors ``[time', 2, n_spks]``, equal to the PyTorch engine's.

    Arguments
    ---------
    model : bytes or path
        The ONNX step (a file written by :func:`export_onnx`, or :func:`onnx_model`'s bytes).
    config : dict
        Its JSON configuration.
    threads : int
        onnxruntime intra-op threads (one: the ops of a chunk are too small to split).
    """

    def __init__(self, model: bytes | str | Path, config: dict, threads: int = 1) -> None:
        import onnxruntime

        if config.get("format") != FORMAT:
            raise OnnxModelError(
                f"not a {FORMAT} configuration (format {config.get('format')!r}); export with separate.py --export_onnx"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        source = model if isinstance(model, bytes) else str(model)
        self.session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.config = config
        self.window: int = config["window"]
        self.stride: int = config["hop"]
        self.n_spks: int = config["n_spks"]
        self.sample_rate: int = config["sample_rate"]
        self.state_names: list[str] = [entry["name"] for entry in config["state"]]
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        bias = config.get("decoder_bias")
        self.decoder_bias = None if bias is None else torch.tensor(bias, dtype=torch.float32)[:, None]
        self.reset()

    @classmethod
    def from_file(cls, path: str | Path, threads: int = 1) -> OnnxStreamingTasNet:
        """Load ``path`` and the JSON beside it (``NAME.json`` for ``NAME.onnx``)."""
        path = Path(path)
        config_path = path.with_suffix(".json")
        for needed in (path, config_path):
            if not needed.is_file():
                raise OnnxModelError(f"{needed}: not found (write both with separate.py --export_onnx)")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise OnnxModelError(f"{config_path}: not JSON ({error}); export again with separate.py --export_onnx") from error
        return cls(path, config, threads)

    @classmethod
    def from_model(cls, model: BinauralTasNet, sample_rate: int, chunk: int, threads: int = 1) -> OnnxStreamingTasNet:
        """Export ``model`` in memory (nothing is written) and load it."""
        data, config = onnx_model(model, sample_rate, chunk)
        return cls(data, config, threads)

    def reset(self) -> None:
        """Start a new stream: every state back to its initial value."""
        self.state = {entry["name"]: np.zeros(entry["initial_shape"], np.float32) for entry in self.config["state"]}
        self.buffer = np.zeros((0, 2), np.float32)  # received samples short of a whole hop
        self.received = 0
        self.fed = 0
        self.emitted = 0

    def latency(self, chunk: int) -> int:
        """Algorithmic latency (samples) for chunks of ``chunk`` samples (as the PyTorch engine)."""
        return algorithmic_latency(self.window, self.stride, chunk)

    def process_chunk(self, chunk: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Feed the next ``[time, 2]`` samples; returns the newly final ``[time', 2, n_spks]``."""
        chunk = np.asarray(chunk.detach().cpu() if isinstance(chunk, torch.Tensor) else chunk, dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[1] != 2:
            raise ValueError(f"a chunk is [time, 2] (left, right); got shape {tuple(chunk.shape)}")
        self.received += chunk.shape[0]
        self.buffer = np.concatenate((self.buffer, chunk)) if self.buffer.shape[0] else chunk
        usable = self.buffer.shape[0] // self.stride * self.stride
        if usable == 0 or self.fed + usable < self.window:  # no complete frame yet: nothing to run
            return torch.zeros(0, 2, self.n_spks)
        feed, self.buffer = np.ascontiguousarray(self.buffer[:usable]), self.buffer[usable:]
        results = self.session.run(self.output_names, {"mix": feed, **self.state})
        self.state = dict(zip(self.state_names, results[1:]))
        self.fed += usable
        self.emitted += results[0].shape[0]
        return torch.from_numpy(results[0])

    def flush(self) -> torch.Tensor:
        """End of stream: the remaining ``[time', 2, n_spks]`` (decoder tail, then zeros as offline).

        The next ``process_chunk`` starts a new stream.
        """
        tail = torch.from_numpy(self.state["tail"])
        out = end_of_stream(self.received - self.emitted, tail, self.fed >= self.window,
                            self.window - self.stride, self.decoder_bias)
        self.reset()
        return out

