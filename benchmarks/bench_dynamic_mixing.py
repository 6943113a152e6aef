#!/usr/bin/env python3
"""Dynamic mixing speed against training speed, on one CPU core.

Mixtures per second that one DataLoader worker (one process, one thread) renders — 2 talkers,
4 s at 8 kHz — and training steps per second of the published parallel (MIMO) binaural Conv-TasNet
on the same core (batch 1: forward, negative-SNR PIT loss, backward, Adam step). Dynamic mixing
keeps up with training when ``ratio = mixtures_per_s_per_worker / train_steps_per_s`` is at least
the batch size divided by the number of workers; the target here is ``ratio >= 10``.

Data: ``--base_folder`` (a WSJ0 root), else a temporary WSJ0-shaped tree made from the real
utterances of ``../shared/data/speech``; ``--hrtf`` (default the spherical head).

    python benchmarks/bench_dynamic_mixing.py [--base_folder ROOT] [--hrtf spherical|CIPIC_DIR|SOFA]
                                              [--n_mixtures 300] [--n_steps 3]

Last line: ``{"mixtures_per_s_per_worker": x, "train_steps_per_s": y, "ratio": x / y}``.
"""
from __future__ import annotations

import os

# One core for everything, as a DataLoader worker or a training process pinned to one core has.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from binaural.models.tasnet import ParallelTasNet  # noqa: E402
from conftest import SHARED_DATA, make_tiny_wsj_root  # noqa: E402
from binaural.data.dynamic_mixing import DynamicMixingDataset  # noqa: E402

SAMPLE_RATE = 8000
SECONDS = 4


def mixtures_per_second(dataset: DynamicMixingDataset, n_mixtures: int, warmup: int) -> float:
    """Items rendered per second, one after the other in this process (HRIR caches warmed first)."""
    for index in range(warmup):
        dataset[index]
    start = time.perf_counter()
    for index in range(warmup, warmup + n_mixtures):
        dataset[index]
    return n_mixtures / (time.perf_counter() - start)


def published_parallel_model() -> ParallelTasNet:
    """The published ``convtasnet-parallel.yaml`` sizes (N=64, L=16, B=64, H=128, P=3, X=8, R=4)."""
    from speechbrain.lobes.models.conv_tasnet import MaskNet
    from speechbrain.lobes.models.dual_path import Decoder, Encoder

    def masknet() -> MaskNet:
        return MaskNet(N=128, B=64, H=128, P=3, X=8, R=4, C=2, norm_type="gLN", causal=False, mask_nonlinear="relu")

    def decoder() -> Decoder:
        return Decoder(in_channels=64, out_channels=1, kernel_size=16, stride=8, bias=False)

    return ParallelTasNet(
        Encoder(kernel_size=16, out_channels=64), Encoder(kernel_size=16, out_channels=64),
        masknet(), masknet(), decoder(), decoder(),
    )


def train_steps_per_second(item: dict, n_steps: int) -> float:
    """Batch-1 training steps per second on one dynamic-mixing item."""
    from speechbrain.nnet.losses import get_snr_with_pitwrapper

    model = published_parallel_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mixture = item["mix_sig"].unsqueeze(0)  # [1, time, 2]
    targets = torch.stack([item["s1_sig"], item["s2_sig"]], dim=-1).unsqueeze(0)  # [1, time, 2, 2]

    def step() -> None:
        optimizer.zero_grad()
        loss = get_snr_with_pitwrapper(targets, model(mixture)).mean()  # negative SNR, best permutation
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, first-call overheads
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    return n_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base_folder", type=Path, help="WSJ0 root (default: a tree built from ../shared/data/speech)")
    parser.add_argument("--hrtf", default="spherical", help="'spherical', a CIPIC wav_database folder or SOFA")
    parser.add_argument("--cache_dir", type=Path, help="resampled copy (default <base_folder>_processed)")
    parser.add_argument("--n_mixtures", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--n_steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        base, cache = args.base_folder, args.cache_dir
        if base is None:
            base = make_tiny_wsj_root(SHARED_DATA / "speech", Path(tmp) / "wsj")
            cache = cache or Path(tmp) / "cache"
        start = time.perf_counter()
        dataset = DynamicMixingDataset(
            base, args.hrtf, n_spks=2, sample_rate=SAMPLE_RATE, training_signal_len=SECONDS * SAMPLE_RATE,
            epoch_size=args.warmup + args.n_mixtures, cache_dir=cache,
        )
        startup = time.perf_counter() - start
        mixing = mixtures_per_second(dataset, args.n_mixtures, args.warmup)
        training = train_steps_per_second(dataset[0], args.n_steps)

    print(f"data: {base if args.base_folder else 'temporary tree from ../shared/data/speech'}; hrtf: {args.hrtf}; "
          f"{SECONDS} s, {SAMPLE_RATE} Hz, 2 talkers; start-up {startup:.2f} s; 1 thread")
    print(f"dynamic mixing: {mixing:.1f} mixtures/s per worker ({1000 / mixing:.2f} ms each, {args.n_mixtures} items)")
    print(f"training (published parallel Conv-TasNet, batch 1): {training:.3f} steps/s ({1 / training:.2f} s each)")
    print(json.dumps({"mixtures_per_s_per_worker": round(mixing, 2), "train_steps_per_s": round(training, 4),
                      "ratio": round(mixing / training, 1)}))


if __name__ == "__main__":
    main()
