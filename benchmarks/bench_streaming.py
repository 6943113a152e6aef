#!/usr/bin/env python3
"""Real-time factor of chunk-by-chunk separation with the causal model, and of offline separation.

Models: the published sizes (N=64, L=16, B=64, H=128, P=3, X=8, R=4, two talkers, parallel/MIMO)
from ``hparams/convtasnet-parallel-causal.yaml`` (causal, cLN) and ``hparams/convtasnet-parallel.yaml``
(non-causal, gLN), with their random initial weights: the speed does not depend on the values.
Input: ``--seconds`` of white noise at 8 kHz, both ears.

For chunks of 2, 4, 8, 16 and 32 ms, :class:`streaming.StreamingTasNet` is fed the input chunk
by chunk on ``--threads`` CPU threads (one by default); the real-time factor is the processing
time over the audio duration (best of ``--repeats`` passes, wall clock), the latency the
algorithmic latency (chunk + encoder window - hop), and the streamed output is compared with the
offline causal model's. Last, the whole-file real-time factor of the non-causal model on the CPU
(same threads) and, when there is one, on CUDA.

    python benchmarks/bench_streaming.py [--seconds 10] [--repeats 3] [--threads 1]

Last line: ``{"rtf": {"2": r, ...}, "latency_ms": {"2": l, ...}, "max_abs_diff_streaming_vs_offline": d,
"offline_rtf_noncausal": r, "offline_rtf_noncausal_cuda": r_or_null}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from separate import load_hparams  # noqa: E402
from streaming import StreamingTasNet, algorithmic_latency  # noqa: E402

CHUNKS_MS = (2, 4, 8, 16, 32)


def published_model(yaml_name: str) -> tuple[torch.nn.Module, int]:
    """The ``Model`` of a recipe YAML at its published size (random weights) and its sample rate."""
    hparams = load_hparams(ROOT / "hparams" / yaml_name)
    return hparams["Model"].eval(), int(hparams["sample_rate"])


def time_streaming(streamer: StreamingTasNet, mix: torch.Tensor, chunk: int, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Best wall-clock seconds of a pass, worst seconds of one chunk in that pass, and the output."""
    best, worst_chunk, output = float("inf"), 0.0, torch.empty(0)
    for _ in range(repeats):
        streamer.reset()
        pieces, slowest = [], 0.0
        start = time.perf_counter()
        for i in range(0, mix.shape[0], chunk):
            tick = time.perf_counter()
            pieces.append(streamer.process_chunk(mix[i : i + chunk]))
            slowest = max(slowest, time.perf_counter() - tick)
        pieces.append(streamer.flush())
        elapsed = time.perf_counter() - start
        if elapsed < best:
            best, worst_chunk, output = elapsed, slowest, torch.cat(pieces)
    return best, worst_chunk, output


def time_offline(model: torch.nn.Module, mix: torch.Tensor, repeats: int, device: torch.device) -> float:
    """Best seconds of a whole-file forward pass (after one warm-up pass)."""
    model = model.to(device)
    batch = mix.unsqueeze(0).to(device)
    best = float("inf")
    with torch.inference_mode():
        model(batch)
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio duration (s)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement (the best counts)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
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
    n_params = sum(p.numel() for p in causal.parameters())
    print(f"causal parallel model: {n_params / 1e6:.2f} M parameters, {rate} Hz, window {window} / hop {stride} "
          f"samples; {duration:g} s of audio; {torch.get_num_threads()} CPU thread(s)")
    rtf, latency, max_diff = {}, {}, 0.0
    for chunk_ms in CHUNKS_MS:
        chunk = round(chunk_ms * rate / 1000)
        seconds, worst, output = time_streaming(streamer, mix, chunk, args.repeats)
        diff = (output - reference).abs().max().item()
        max_diff = max(max_diff, diff)
        rtf[str(chunk_ms)] = round(seconds / duration, 4)
        latency[str(chunk_ms)] = 1000 * algorithmic_latency(window, stride, chunk) / rate
        print(f"chunk {chunk_ms:>2} ms: RTF {seconds / duration:.3f} (mean {1000 * seconds / (mix.shape[0] / chunk):.2f} ms "
              f"per chunk, slowest {1000 * worst:.2f} ms), latency {latency[str(chunk_ms)]:g} ms, "
              f"max |streaming - offline| {diff:.2e}")

    offline_cpu = time_offline(non_causal, mix, args.repeats, torch.device("cpu")) / duration
    print(f"non-causal model, whole file on the CPU: RTF {offline_cpu:.4f}")
    offline_cuda = None
    if torch.cuda.is_available():
        offline_cuda = round(time_offline(non_causal, mix, args.repeats, torch.device("cuda")) / duration, 5)
        print(f"non-causal model, whole file on CUDA ({torch.cuda.get_device_name()}): RTF {offline_cuda}")
    print(json.dumps({
        "rtf": rtf,
        "latency_ms": latency,
        "max_abs_diff_streaming_vs_offline": float(f"{max_diff:.3g}"),
        "offline_rtf_noncausal": round(offline_cpu, 4),
        "offline_rtf_noncausal_cuda": offline_cuda,
    }))


if __name__ == "__main__":
    main()
