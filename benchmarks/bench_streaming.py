#!/usr/bin/env python3
"""Real-time factor of chunk-by-chunk separation with the causal model (PyTorch and ONNX engines), and offline.

Models: the published sizes (N=64, L=16, B=64, H=128, P=3, X=8, R=4, two talkers, parallel/MIMO)
from ``hparams/convtasnet-parallel-causal.yaml`` (causal, cLN) and ``hparams/convtasnet-parallel.yaml``
(non-causal, gLN), with their random initial weights: the speed does not depend on the values.
Input: ``--seconds`` of white noise at 8 kHz, both ears.

For chunks of 2, 4, 8, 16 and 32 ms, :class:`streaming.StreamingTasNet` (PyTorch),
:class:`numba_streaming.NumbaStreamingTasNet` (the step compiled by numba) and
:class:`onnx_streaming.OnnxStreamingTasNet` (the exported step in onnxruntime) are fed the input
chunk by chunk on ``--threads`` CPU threads (one by default; the numba engine always runs on one),
their passes interleaved; each gets its chunks as it takes them natively (torch tensors for
PyTorch, numpy arrays for the other two, as an audio callback hands them over). The real-time
factor is the processing time over the audio duration (median of ``--repeats`` passes, wall
clock), the latency the algorithmic latency (chunk + encoder window - hop), and every streamed
output is compared with the offline causal model's. The numba engine's CPU time over its wall
time is printed too: 1.0 means it used one core; and how much of its weights and depthwise pasts
sit in huge pages (``numba_huge_page_mb``: about 10 at the published size, 0 where the OS gives
none, which slows 2 ms chunks by about 6 %). Then the whole-file real-time factors of the
causal and the non-causal model on the CPU (same threads, interleaved, medians) and, when there is
one, of the non-causal model on CUDA. The model's arithmetic, in GMAC per second of audio, is
counted from its layers (encoders, 1x1 and depthwise convolutions, decoders), so that every RTF
reads as an achieved GMAC/s.

    python benchmarks/bench_streaming.py [--seconds 10] [--repeats 3] [--threads 1]

Last line: ``{"rtf": {"2": r, ...}, "rtf_numba": {"2": r, ...}, "rtf_onnx": {"2": r, ...},
"latency_ms": {"2": l, ...}, "max_abs_diff_streaming_vs_offline": d, "max_abs_diff_numba_vs_offline": d,
"max_abs_diff_onnx_vs_offline": d, "numba_cpu_per_wall": x, "numba_huge_page_mb": m_or_null, "offline_rtf_causal": r,
"offline_rtf_noncausal": r, "offline_rtf_noncausal_cuda": r_or_null, "rtf_cuda": {"2": r, ...}_or_null,
"gmac_per_s_audio": g}``; ``rtf_cuda`` is the PyTorch streaming engine on CUDA, each chunk's output
copied back to the host.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from binaural.models.tasnet import BinauralTasNet  # noqa: E402
from binaural.realtime.numba_engine import NumbaStreamingTasNet  # noqa: E402
from binaural.realtime.onnx_engine import OnnxStreamingTasNet  # noqa: E402
from binaural.separation.separator import load_hparams  # noqa: E402
from binaural.realtime.streaming import StreamingTasNet, algorithmic_latency  # noqa: E402

CHUNKS_MS = (2, 4, 8, 16, 32)


def published_model(yaml_name: str) -> tuple[BinauralTasNet, int]:
    """The ``Model`` of a recipe YAML at its published size (random weights) and its sample rate."""
    hparams = load_hparams(ROOT / "hparams" / yaml_name)
    return hparams["Model"].eval(), int(hparams["sample_rate"])


def gmac_per_second_of_audio(model: BinauralTasNet, n_streams: int, rate: int) -> float:
    """Multiply-accumulates of one second of audio, in GMAC, counted from the layers' weights.

    Per encoder frame (``rate / stride`` frames a second) a convolution does one MAC per weight
    for each output frame: every ``Conv1d`` of the mask networks once (1x1 and depthwise alike:
    a depthwise weight is ``[H, 1, P]``), each encoder once per stream it feeds (``n_streams``: 2
    for the parallel model, which encodes both ears with both encoders) and each decoder once per
    talker. Norms, PReLUs and the masking are left out (a few operations per value, no MACs).
    """
    per_frame = sum(
        m.weight.numel() for masknet in (model.masknetL, model.masknetR)
        for m in masknet.modules() if isinstance(m, nn.Conv1d)
    )
    per_frame += n_streams * sum(enc.conv1d.weight.numel() for enc in (model.encoderL, model.encoderR))
    per_frame += model.n_spks * sum(dec.weight.numel() for dec in (model.decoderL, model.decoderR))
    assert model.stride is not None
    return per_frame * rate / model.stride / 1e9


def chunk_of(chunk_ms: float, rate: int) -> int:
    """``chunk_ms`` in samples at ``rate`` Hz."""
    return round(chunk_ms * rate / 1000)


def stream_pass(engine, mix: torch.Tensor | np.ndarray, chunk: int) -> tuple[float, float, float, torch.Tensor]:
    """Wall-clock seconds of one pass, its CPU seconds, the slowest chunk's seconds, and the output."""
    engine.reset()
    pieces, slowest = [], 0.0
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, mix.shape[0], chunk):
        tick = time.perf_counter()
        pieces.append(engine.process_chunk(mix[i : i + chunk]))
        slowest = max(slowest, time.perf_counter() - tick)
    pieces.append(engine.flush())
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, slowest, torch.cat([torch.as_tensor(piece) for piece in pieces])


class _ToHost:
    """A streaming engine on a device whose chunks come back to the host, as a live output needs them (one sync per chunk)."""

    def __init__(self, engine: StreamingTasNet) -> None:
        self.engine = engine

    def reset(self) -> None:
        self.engine.reset()

    def process_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        return self.engine.process_chunk(chunk).cpu()

    def flush(self) -> torch.Tensor:
        return self.engine.flush().cpu()


def device_streaming(causal: nn.Module, mix: torch.Tensor, rate: int, repeats: int, device: str) -> dict[str, float]:
    """RTF of the PyTorch streaming engine on ``device`` for each chunk (input from and output to the host)."""
    engine = _ToHost(StreamingTasNet(causal, device=device))
    stream_pass(engine, mix, chunk_of(CHUNKS_MS[-1], rate))  # warm-up: kernels loaded, allocator primed
    duration = mix.shape[0] / rate
    rtf = {}
    for chunk_ms in CHUNKS_MS:
        seconds = statistics.median(stream_pass(engine, mix, chunk_of(chunk_ms, rate))[0] for _ in range(repeats))
        rtf[str(chunk_ms)] = round(seconds / duration, 4)
    print(f"PyTorch streaming on {device}: RTF " + " / ".join(f"{value:g}" for value in rtf.values())
          + f" at {' / '.join(map(str, CHUNKS_MS))} ms chunks")
    return rtf


def offline_pass(model: nn.Module, batch: torch.Tensor) -> float:
    """Seconds of one whole-file forward pass (synchronised on CUDA)."""
    cuda = batch.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        model(batch)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio duration (s)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement (the median counts)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch and onnxruntime)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    causal, rate = published_model("convtasnet-parallel-causal.yaml")
    non_causal, _ = published_model("convtasnet-parallel.yaml")
    torch.manual_seed(0)
    mix = 0.1 * torch.randn(round(args.seconds * rate), 2)  # [time, 2]
    duration = mix.shape[0] / rate
    with torch.inference_mode():
        reference = causal(mix.unsqueeze(0))[0]  # offline causal output [time, 2, C]

    streamer = StreamingTasNet(causal)
    window, stride = streamer.window, streamer.stride
    gmac = gmac_per_second_of_audio(causal, streamer.n_streams, rate)
    n_params = sum(p.numel() for p in causal.parameters())
    print(f"causal parallel model: {n_params / 1e6:.2f} M parameters, {gmac:.3f} GMAC per second of audio, {rate} Hz, "
          f"window {window} / hop {stride} samples; {duration:g} s of audio; {args.threads} CPU thread(s)")
    names = ("torch", "numba", "onnx")
    rtf = {name: {} for name in names}
    latency = {}
    max_diff = {name: 0.0 for name in names}
    numba_engine = NumbaStreamingTasNet(streamer)
    numba_engine.process_chunk(mix[:chunk_of(CHUNKS_MS[0], rate)].numpy())  # compiles, or loads numba's cache
    cpu_per_wall = []
    native = {"torch": mix, "numba": mix.numpy(), "onnx": mix.numpy()}
    for chunk_ms in CHUNKS_MS:
        chunk = chunk_of(chunk_ms, rate)
        engines = {"torch": streamer, "numba": numba_engine,
                   "onnx": OnnxStreamingTasNet.from_model(causal, rate, chunk, threads=args.threads)}
        seconds = {name: [] for name in engines}
        slowest = {name: 0.0 for name in engines}
        for _ in range(args.repeats):
            for name, engine in engines.items():  # interleaved: all see the same load
                elapsed, cpu, worst, output = stream_pass(engine, native[name], chunk)
                seconds[name].append(elapsed)
                slowest[name] = max(slowest[name], worst)
                max_diff[name] = max(max_diff[name], (output - reference).abs().max().item())
                if name == "numba":
                    cpu_per_wall.append(cpu / elapsed)
        median = {name: statistics.median(values) for name, values in seconds.items()}
        for name in names:
            rtf[name][str(chunk_ms)] = round(median[name] / duration, 4)
        latency[str(chunk_ms)] = 1000 * algorithmic_latency(window, stride, chunk) / rate
        n_chunks = mix.shape[0] / chunk
        print(f"chunk {chunk_ms:>2} ms, latency {latency[str(chunk_ms)]:g} ms: " + "; ".join(
            f"{name} RTF {median[name] / duration:.3f} ({gmac * duration / median[name]:.1f} GMAC/s, "
            f"{1000 * median[name] / n_chunks:.2f} ms per chunk, slowest {1000 * slowest[name]:.2f} ms)"
            for name in engines))
    print(f"max |streaming - offline causal|: PyTorch {max_diff['torch']:.2e}, numba {max_diff['numba']:.2e}, "
          f"ONNX {max_diff['onnx']:.2e}; numba engine CPU time / wall time {statistics.median(cpu_per_wall):.2f}")
    huge = numba_engine.huge_page_bytes()
    print(f"numba engine's weights and pasts in huge pages: {'unknown' if huge is None else f'{huge / 2**20:g} MB'}")

    batch = mix.unsqueeze(0)
    models = {"causal": causal, "non-causal": non_causal}
    for model in models.values():
        offline_pass(model, batch)  # warm-up
    offline = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            offline[name].append(offline_pass(model, batch))
    offline_rtf = {name: statistics.median(values) / duration for name, values in offline.items()}
    for name, value in offline_rtf.items():
        print(f"{name} model, whole file on the CPU: RTF {value:.4f} ({gmac / value:.1f} GMAC/s)")
    offline_cuda = None
    if torch.cuda.is_available():
        cuda_model, cuda_batch = non_causal.to("cuda"), batch.to("cuda")
        offline_pass(cuda_model, cuda_batch)
        seconds_cuda = statistics.median(offline_pass(cuda_model, cuda_batch) for _ in range(args.repeats))
        offline_cuda = round(seconds_cuda / duration, 5)
        print(f"non-causal model, whole file on CUDA ({torch.cuda.get_device_name()}): RTF {offline_cuda}")
    rtf_cuda = device_streaming(causal, mix, rate, args.repeats, "cuda") if torch.cuda.is_available() else None
    print(json.dumps({
        "rtf": rtf["torch"],
        "rtf_numba": rtf["numba"],
        "rtf_onnx": rtf["onnx"],
        "latency_ms": latency,
        "max_abs_diff_streaming_vs_offline": float(f"{max_diff['torch']:.3g}"),
        "max_abs_diff_numba_vs_offline": float(f"{max_diff['numba']:.3g}"),
        "max_abs_diff_onnx_vs_offline": float(f"{max_diff['onnx']:.3g}"),
        "numba_cpu_per_wall": round(statistics.median(cpu_per_wall), 3),
        "numba_huge_page_mb": None if huge is None else huge / 2**20,
        "offline_rtf_causal": round(offline_rtf["causal"], 4),
        "offline_rtf_noncausal": round(offline_rtf["non-causal"], 4),
        "offline_rtf_noncausal_cuda": offline_cuda,
        "rtf_cuda": rtf_cuda,
        "gmac_per_s_audio": round(gmac, 4),
    }))


if __name__ == "__main__":
    main()
