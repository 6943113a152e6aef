#!/usr/bin/env python3
"""Training speed of the published parallel (MIMO) model: steps per second and peak memory.

One step is what ``train.Separation.fit_batch`` does for a batch: forward under the precision's
autocast, the recipe's loss (negative SNR with PIT, fp32), backward, gradient clipping at the
YAML's ``clip_grad_norm``, Adam step. The model, loss and optimiser come from
``hparams/convtasnet-parallel.yaml`` unchanged (published sizes); the batch is ``batch_size`` x
``seconds`` of binaural 8 kHz noise (the speed does not depend on the content). Augmentations and
data loading are not timed.

    python benchmarks/bench_training.py [--device cpu|cuda] [--precision fp32|bf16|fp16]
                                        [--seconds 4] [--batch_size 1] [--warmup 2] [--steps 5]

Last line: ``{"device": ..., "precision": ..., "train_steps_per_s": x, "peak_mem_mb": m}``, the
steps per second from the median step time (other load on a shared machine makes outliers); peak
memory is the process's peak RSS on CPU (``resource.getrusage``) and
``torch.cuda.max_memory_allocated`` on CUDA.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import train

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_recipe(tmp: Path) -> dict:
    """The parallel recipe's hparams at published sizes (paths pointed at a scratch folder)."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = {"data_folder": str(tmp), "wsj_root": str(tmp), "output_folder": str(tmp / "out")}
    with open(ROOT / "hparams" / "convtasnet-parallel.yaml", encoding="utf-8") as handle:
        return load_hyperpyyaml(handle, overrides)


def train_step(model, optimizer, loss_fn, mix, targets, dtype, clip_norm: float, scaler) -> float:
    """One training step; returns the loss (negative SNR, dB)."""
    with torch.autocast(device_type=mix.device.type, dtype=dtype, enabled=dtype is not None):
        estimates = model(mix)  # [batch, time, ear, speaker]
    loss = train.separation_loss(loss_fn, estimates, targets).mean()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--seconds", type=float, default=4.0, help="segment length in seconds")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = DTYPES[args.precision]
    if device.type == "cpu" and args.precision == "fp16":
        parser.error("fp16 autocast needs CUDA; use bf16 on CPU")

    with tempfile.TemporaryDirectory() as tmp:
        hparams = load_recipe(Path(tmp))
    model = hparams["Model"].to(device).train()
    optimizer = hparams["optimizer"](model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16" and device.type == "cuda")
    n_samples = round(args.seconds * hparams["sample_rate"])
    generator = torch.Generator().manual_seed(0)
    targets = 0.1 * torch.randn(args.batch_size, n_samples, 2, hparams["num_spks"], generator=generator)
    targets = targets.to(device)  # [batch, time, ear, speaker]
    mix = targets.sum(-1)  # [batch, time, ear]

    def step() -> float:
        return train_step(model, optimizer, hparams["loss"], mix, targets, dtype, hparams["clip_grad_norm"], scaler)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()  # one more, so the peak covers a full step after the reset
        torch.cuda.synchronize(device)
    durations = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()  # float(loss) waits for the device: the step is complete
        durations.append(time.perf_counter() - start)
    median = statistics.median(durations)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"{type(model).__name__}: {n_params / 1e6:.2f} M parameters; batch {args.batch_size} x "
          f"{args.seconds:g} s at {hparams['sample_rate']} Hz; torch threads {torch.get_num_threads()}; "
          f"step times (s) {[round(d, 3) for d in durations]}; mean {args.steps / sum(durations):.4f} steps/s; "
          f"last loss {loss:.2f} dB")
    print(json.dumps({
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "precision": args.precision,
        # From the median step: a shared machine's other load shows up as outliers, not as the speed.
        "train_steps_per_s": round(1.0 / median, 4),
        "peak_mem_mb": round(peak_memory_mb(device), 1),
    }))


if __name__ == "__main__":
    main()
