#!/usr/bin/env python3
"""The GPU checks in one prepared run: CUDA training step (fp32, bf16), NCCL DDP, offline and streaming RTF.

For a session that is lent a GPU machine for a few minutes: one command, run in the repository
root, that reports everything the CPU machine cannot measure, each part under its own time limit
so that one slow part does not cost the others:

1. ``bench_training.py --device cuda --precision fp32 --reference`` (our step and the published
   recipe's, interleaved) and ``--precision bf16`` (autocast);
2. a DDP training step of the published parallel model over every visible GPU with the NCCL backend
   (one process per GPU, ``torch.multiprocessing``), loss and gradients checked finite;
3. ``bench_streaming.py``: on CUDA it adds the non-causal whole-file RTF (``offline_rtf_noncausal_cuda``)
   and the PyTorch streaming engine's RTF per chunk (``rtf_cuda``).

    python benchmarks/gpu_check.py [--quick] [--device cuda|cpu]

``--quick`` shrinks every part (about a minute on a CPU). ``--device cpu`` runs the same parts on the
CPU with the gloo backend: what the test suite does to keep this script working on machines with
no GPU. Last line: ``{"device": ..., "training_fp32": {...}, "training_bf16": {...}, "ddp": {...},
"streaming": {...}}``, each part the JSON its benchmark printed, or ``{"error": "..."}``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Seconds each part may take before it is stopped (the device machine's time is counted).
PART_TIMEOUT_S = 240


def run_benchmark(script: str, arguments: list[str], timeout: float = PART_TIMEOUT_S) -> dict:
    """Run ``benchmarks/SCRIPT ARGUMENTS``; its JSON last line, or ``{"error": ...}`` saying why not."""
    command = [sys.executable, str(HERE / script), *arguments]
    print("$", " ".join(command[1:]), flush=True)
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {timeout:g} s"}
    print(done.stdout, end="", flush=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def _ddp_rank(rank: int, world: int, init_file: str, device_type: str, steps: int, seconds: float, out: str) -> None:
    """One process of the DDP check: the published parallel model, ``steps`` training steps."""
    import torch
    import torch.distributed as dist

    sys.path.insert(0, str(ROOT))
    from hyperpyyaml import load_hyperpyyaml

    from binaural.training.step import training_step

    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    if device_type == "cuda":
        torch.cuda.set_device(device)
    with tempfile.TemporaryDirectory() as tmp, open(ROOT / "hparams" / "convtasnet-parallel.yaml") as handle:
        # The parallel recipe at published sizes, its folders pointed at the scratch folder.
        hparams = load_hyperpyyaml(handle, {"data_folder": tmp, "wsj_root": tmp, "output_folder": f"{tmp}/out"})
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(hparams["Model"].to(device).train())
    optimizer = hparams["optimizer"](model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    generator = torch.Generator().manual_seed(rank)
    targets = (0.1 * torch.randn(1, round(seconds * hparams["sample_rate"]), 2, hparams["num_spks"],
                                 generator=generator)).to(device)  # [batch, time, ear, speaker]
    losses, durations = [], []
    for _ in range(steps + 1):  # the first step builds DDP's buckets: not timed
        start = time.perf_counter()
        losses.append(training_step(model, optimizer, hparams["loss"], targets.sum(-1), targets, None,
                                    hparams["clip_grad_norm"], scaler))
        durations.append(time.perf_counter() - start)
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    if rank == 0:
        timed = sorted(durations[1:])
        Path(out).write_text(json.dumps({
            "backend": backend, "world_size": world, "steps_per_s": round(1 / timed[len(timed) // 2], 4),
            "last_loss_db": round(losses[-1], 2), "finite": finite and all(map(math.isfinite, losses)),
        }))
    dist.destroy_process_group()


def ddp_check(device_type: str, steps: int, seconds: float) -> dict:
    """The DDP part: one process per GPU (two on the CPU); rank 0's figures, or ``{"error": ...}``."""
    import torch
    import torch.multiprocessing as mp

    world = max(torch.cuda.device_count(), 1) if device_type == "cuda" else 2
    print(f"$ DDP: {world} process(es), {'nccl' if device_type == 'cuda' else 'gloo'}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ddp.json")
        try:
            mp.spawn(_ddp_rank, args=(world, os.path.join(tmp, "init"), device_type, steps, seconds, out), nprocs=world)
        except Exception as error:  # noqa: BLE001 (a failed check is reported, the other parts still run)
            return {"error": f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error) else ''}"}
        result = json.loads(Path(out).read_text())
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere (a smoke run)")
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py: error: no CUDA device here (use --device cpu for a smoke run)", file=sys.stderr)
        raise SystemExit(2)
    steps, seconds, audio = (["--warmup", "1", "--steps", "2"], "0.5", "0.5") if args.quick else \
        (["--warmup", "3", "--steps", "10"], "4", "10")
    training = ["--device", args.device, "--seconds", seconds, *steps]
    result = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "training_fp32": run_benchmark("bench_training.py", [*training, "--precision", "fp32", "--reference"]),
        "training_bf16": run_benchmark("bench_training.py", [*training, "--precision", "bf16"]),
        "ddp": ddp_check(args.device, 2 if args.quick else 10, float(seconds)),
        "streaming": run_benchmark("bench_streaming.py", ["--seconds", audio, "--repeats", "1" if args.quick else "3"]),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
