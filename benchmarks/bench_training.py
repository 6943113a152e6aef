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
                                        [--reference]

``--reference`` also times the published recipe's step: its ``compute_forward`` (parallel branch,
as ``tests/reference/published_recipe.py`` keeps it verbatim) on SpeechBrain's own lobes (``dual_path.Encoder``,
``conv_tasnet.MaskNet``, ``dual_path.Decoder``, built from the YAML's sizes and loaded with our
model's state_dict, so the weights are the same), with the same loss, clipping and optimiser.
Our steps and the reference's alternate, so both see the same load.

Last line: ``{"device": ..., "precision": ..., "train_steps_per_s": x, "peak_mem_mb": m}``, the
steps per second from the median step time (other load on a shared machine makes outliers); peak
memory is the process's peak RSS on CPU (``resource.getrusage``) and
``torch.cuda.max_memory_allocated`` on CUDA. With ``--reference`` also
``"reference_steps_per_s": y`` and ``"ratio_vs_reference": x / y`` (above 1: ours is faster).
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the package; tests/reference: the published forward

from binaural.training.step import training_step  # noqa: E402
from reference.published_recipe import published_forward  # noqa: E402  (the recipe's compute_forward, verbatim)

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_recipe(tmp: Path) -> dict:
    """The parallel recipe's hparams at published sizes (paths pointed at a scratch folder)."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = {"data_folder": str(tmp), "wsj_root": str(tmp), "output_folder": str(tmp / "out")}
    with open(ROOT / "hparams" / "convtasnet-parallel.yaml", encoding="utf-8") as handle:
        return load_hyperpyyaml(handle, overrides)


def speechbrain_lobes(hparams: dict) -> dict[str, torch.nn.Module]:
    """The six lobes of the published parallel recipe, SpeechBrain's own classes at the YAML's sizes."""
    from speechbrain.lobes.models.conv_tasnet import MaskNet
    from speechbrain.lobes.models.dual_path import Decoder, Encoder

    def encoder() -> Encoder:
        return Encoder(kernel_size=hparams["kernel_size"], out_channels=hparams["N_encoder_out"])

    def masknet() -> MaskNet:
        return MaskNet(N=2 * hparams["N_encoder_out"], B=hparams["B"], H=hparams["H"], P=hparams["P"],
                       X=hparams["X"], R=hparams["R"], C=hparams["num_spks"], norm_type=hparams["norm_type"],
                       causal=hparams["causal"], mask_nonlinear=hparams["mask_nonlinear"])

    def decoder() -> Decoder:
        return Decoder(in_channels=hparams["N_encoder_out"], out_channels=1, kernel_size=hparams["kernel_size"],
                       stride=hparams["kernel_stride"], bias=False)

    return {"encoderL": encoder(), "encoderR": encoder(), "masknetL": masknet(), "masknetR": masknet(),
            "decoderL": decoder(), "decoderR": decoder()}


class PublishedParallel(torch.nn.Module):
    """The published recipe's forward pass on SpeechBrain lobes: ``[batch, time, 2] -> [batch, time, 2, C]``."""

    def __init__(self, lobes: dict[str, torch.nn.Module], n_spks: int) -> None:
        super().__init__()
        self.lobes = torch.nn.ModuleDict(lobes)
        self.n_spks = n_spks

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return published_forward(dict(self.lobes), mix, "parallel", self.n_spks)


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
    parser.add_argument("--reference", action="store_true",
                        help="also time the published recipe's step on SpeechBrain's lobes, interleaved")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = DTYPES[args.precision]
    if device.type == "cpu" and args.precision == "fp16":
        parser.error("fp16 autocast needs CUDA; use bf16 on CPU")

    with tempfile.TemporaryDirectory() as tmp:
        hparams = load_recipe(Path(tmp))
    models = {"ours": hparams["Model"].to(device).train()}
    if args.reference:
        lobes = speechbrain_lobes(hparams)
        for name, lobe in lobes.items():
            lobe.load_state_dict(getattr(models["ours"], name).state_dict())  # same names, same weights
        models["reference"] = PublishedParallel(lobes, hparams["num_spks"]).to(device).train()
    optimizers = {name: hparams["optimizer"](model.parameters()) for name, model in models.items()}
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16" and device.type == "cuda")
    n_samples = round(args.seconds * hparams["sample_rate"])
    generator = torch.Generator().manual_seed(0)
    targets = 0.1 * torch.randn(args.batch_size, n_samples, 2, hparams["num_spks"], generator=generator)
    targets = targets.to(device)  # [batch, time, ear, speaker]
    mix = targets.sum(-1)  # [batch, time, ear]
    if args.reference:
        with torch.no_grad():
            difference = (models["ours"](mix) - models["reference"](mix)).abs().max().item()
        print(f"same weights: max |ours - published forward| = {difference:.2e}")

    def step(name: str) -> float:
        return training_step(models[name], optimizers[name], hparams["loss"], mix, targets, dtype,
                          hparams["clip_grad_norm"], scaler)

    for _ in range(args.warmup):
        for name in models:
            step(name)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step("ours")  # one more, so the peak covers a full step after the reset
        torch.cuda.synchronize(device)
    durations = {name: [] for name in models}
    losses = {}
    for _ in range(args.steps):
        for name in models:  # interleaved: both see the same load
            start = time.perf_counter()
            losses[name] = step(name)  # float(loss) waits for the device: the step is complete
            durations[name].append(time.perf_counter() - start)
    rates = {name: 1.0 / statistics.median(values) for name, values in durations.items()}

    n_params = sum(p.numel() for p in models["ours"].parameters())
    print(f"{type(models['ours']).__name__}: {n_params / 1e6:.2f} M parameters; batch {args.batch_size} x "
          f"{args.seconds:g} s at {hparams['sample_rate']} Hz; torch threads {torch.get_num_threads()}")
    for name, values in durations.items():
        print(f"{name}: step times (s) {[round(d, 3) for d in values]}; median {rates[name]:.4f} steps/s; "
              f"last loss {losses[name]:.2f} dB")
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "precision": args.precision,
        # From the median step: a shared machine's other load shows up as outliers, not as the speed.
        "train_steps_per_s": round(rates["ours"], 4),
        "peak_mem_mb": round(peak_memory_mb(device), 1),
    }
    if args.reference:
        result["reference_steps_per_s"] = round(rates["reference"], 4)
        result["ratio_vs_reference"] = round(rates["ours"] / rates["reference"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
