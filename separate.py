#!/usr/bin/env python3
"""Separate binaural mixtures with a trained binaural Conv-TasNet: files, folders, batches, streams.

    python separate.py --experiment results/convtasnet-parallel/1234 --input mix.wav --output_dir out/
    python separate.py --experiment results/convtasnet-parallel/1234 --input folder_of_wavs/ --output_dir out/
    python separate.py --experiment results/convtasnet-parallel-causal/1234 --input mix.wav \\
        --output_dir out/ --streaming --chunk_ms 8 [--engine onnx]
    python separate.py --experiment results/convtasnet-parallel-causal/1234 --export_onnx model.onnx [--chunk_ms 8]
    python separate.py --hparams hparams/convtasnet-parallel.yaml \\
        --checkpoint results/convtasnet-parallel/1234/save/CKPT+2024-01-01+00-00-00+00 --input mix.wav --output_dir out/

Each input ``NAME.wav`` (two channels, any rate) gives ``NAME_s1.wav``, ``NAME_s2.wav``[, ``NAME_s3.wav``]
in ``--output_dir``: each talker's binaural estimate at the input's rate and length. Estimates never
go into the input folder nor over an input; every mistake is one line, before any work. How the
separation works (blocks, context, resampling, streaming engines, ONNX export, memory) is the
docstring of :mod:`binaural.separation.separator`, whose :class:`BinauralSeparator` is the Python API.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from binaural.errors import RecipeError
from binaural.io.atomic import WriteError
from binaural.separation.files import OutputFolderError, check_output_folder, check_outputs, recording_inputs
from binaural.separation.separator import (
    DEFAULT_BLOCK_SECONDS,
    DEFAULT_CROSSFADE_MS,
    ENGINES,
    BinauralSeparator,
    SeparationError,
    streaming_figures,
)
from binaural.training.checkpoints import one_line



def _parse_overrides(items: Sequence[str]) -> dict:
    from hyperpyyaml import load_hyperpyyaml

    overrides: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SeparationError(f"--override {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = load_hyperpyyaml(f"value: {value}")["value"]
        except Exception as error:  # ruamel / hyperpyyaml errors: the value is not YAML
            raise SeparationError(f"--override {item!r}: the value is not YAML ({one_line(error)})") from error
    return overrides


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help: the examples as written, and every option's default."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(  # the docstring's title and examples
        prog="separate.py", description="\n\n".join((__doc__ or "").split("\n\n")[:2]), formatter_class=_HelpFormatter)
    model = parser.add_argument_group("model (required: either --experiment, or --hparams and --checkpoint)")
    model.add_argument("--experiment", type=Path, help="experiment folder of train.py (results/<name>/<seed>); "
                                                       "required unless --hparams and --checkpoint are given")
    model.add_argument("--hparams", type=Path, help="recipe YAML declaring Model (with --checkpoint)")
    model.add_argument("--checkpoint", type=Path, help="checkpoint folder (<experiment>/save/CKPT+...)")
    model.add_argument("--min_key", help="pick the checkpoint with the lowest value of this meta key")
    model.add_argument("--max_key", help="pick the checkpoint with the highest value of this meta key")
    model.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                       help="hparams override (repeatable), e.g. --override N_encoder_out=256 with --hparams (the "
                            "checkpoint must fit it); an --experiment's sample rate and model sizes cannot be "
                            "overridden")
    model.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument("--input", type=Path, help="a two-channel audio file, or a folder of them (required "
                                                   "unless --export_onnx)")
    parser.add_argument("--output_dir", type=Path, help="where NAME_s1.wav... are written (required unless --export_onnx)")
    parser.add_argument("--streaming", action="store_true", help="run the model chunk by chunk; needs a causal model "
                        "(cLN, causal convolutions: hparams/demo-causal.yaml, convtasnet-parallel-causal.yaml)")
    parser.add_argument("--chunk_ms", type=_positive_float, default=8.0,
                        help="streaming chunk in ms (a multiple of the hop)")
    parser.add_argument("--engine", choices=ENGINES, default="torch",
                        help="streaming engine: PyTorch (the reference), the step compiled by numba (CPU, the "
                             "fastest), or the ONNX step model run by onnxruntime (CPU)")
    parser.add_argument("--export_onnx", type=Path, metavar="MODEL.onnx",
                        help="write the causal model's streaming step (and MODEL.json beside it) and exit; "
                             "no --input or --output_dir then")
    parser.add_argument("--block_seconds", type=_positive_float, default=DEFAULT_BLOCK_SECONDS,
                        help=f"offline block length for long files (s; at least twice the {DEFAULT_CROSSFADE_MS:g} ms "
                             "cross-fade)")
    parser.add_argument("--subtype", default="FLOAT", choices=("FLOAT", "PCM_16", "PCM_24"),
                        help="output wav sample format (FLOAT: no clipping)")
    parser.add_argument("--report", action="store_true",
                        help="also write OUTPUT_DIR/report.html: a player and a spectrogram per mixture and estimate")
    return parser


def _separator(args: argparse.Namespace) -> BinauralSeparator:
    overrides = _parse_overrides(args.override)
    if args.experiment is not None:
        if args.hparams is not None or args.checkpoint is not None:
            raise SeparationError("give either --experiment, or --hparams and --checkpoint, not both")
        return BinauralSeparator.from_experiment(
            args.experiment, args.device, args.min_key, args.max_key, overrides, block_seconds=args.block_seconds
        )
    if args.hparams is None or args.checkpoint is None:
        raise SeparationError("give --experiment FOLDER, or both --hparams YAML and --checkpoint CKPT_FOLDER")
    return BinauralSeparator.from_hparams(
        args.hparams, args.checkpoint, args.device, overrides, block_seconds=args.block_seconds
    )


def _show_warnings() -> None:
    """Library warnings (a damaged checkpoint skipped for another...) as ``separate.py: warning: ...``
    lines on stderr, and nothing below WARNING; nothing changes when logging is configured already."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("separate.py: warning: %(message)s"))
        root.addHandler(handler)


def _export_onnx(separator: BinauralSeparator, path: Path, chunk_ms: float) -> int:
    """``--export_onnx``: write the streaming step model and its JSON; 0 on success."""
    config_path = separator.export_onnx(path, chunk_ms)
    print(f"wrote {path} (streaming step for chunks of {chunk_ms:g} ms, algorithmic latency "
          f"{separator.latency_ms(chunk_ms):g} ms) and {config_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 an input failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export_onnx is None and (args.input is None or args.output_dir is None):
        parser.error("the following arguments are required: --input, --output_dir (unless --export_onnx)")
    _show_warnings()
    try:
        if args.export_onnx is not None:
            return _export_onnx(_separator(args), args.export_onnx, args.chunk_ms)
        inputs = recording_inputs(args.input)
        check_output_folder(args.input, args.output_dir)
        separator = _separator(args)
        check_outputs(separator.output_paths, inputs, args.output_dir)  # before anything is written
        print(f"model: {separator.source}; {separator.n_spks} talkers at {separator.sample_rate} Hz on {separator.device}")
        if args.streaming:
            separator.use_engine(args.engine, args.chunk_ms)
            chunk = separator.chunk_samples(args.chunk_ms)
            window_ms, hop_ms = (1000 * n / separator.sample_rate for n in (separator.model.kernel_size, separator.model.stride))
            print(f"streaming: chunks of {args.chunk_ms:g} ms ({chunk} samples); algorithmic latency "
                  f"{separator.latency_ms(args.chunk_ms):g} ms = chunk {args.chunk_ms:g} ms + encoder window "
                  f"{window_ms:g} ms - hop {hop_ms:g} ms")
    except RecipeError as error:  # the set-up: experiment, checkpoint, options (2); an input file (1)
        print(f"separate.py: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, (SeparationError, OutputFolderError)) else 1
    failures = 0
    separated: list[tuple[Path, list[Path]]] = []  # (input, estimates) for --report
    for path in inputs:
        try:
            started = time.perf_counter()
            written = separator.separate_file(path, args.output_dir, args.streaming, args.chunk_ms, args.subtype)
            elapsed = time.perf_counter() - started
        except WriteError as error:  # the output folder: permissions, a full disk...
            failures += 1
            print(f"separate.py: error: {path}: its estimates could not be written to {args.output_dir} "
                  f"({error})", file=sys.stderr)
            continue
        except RecipeError as error:  # this input (unreadable, truncated, mono, NaN...): the next one goes on
            failures += 1
            print(f"separate.py: error: {error}", file=sys.stderr)
            continue
        print(f"{path} -> {', '.join(str(p) for p in written)}")
        if args.streaming:
            print(streaming_figures(path, elapsed, separator.latency_ms(args.chunk_ms)))
        separated.append((path, written))
    if args.report and separated:
        from binaural.evaluation.report import write_separation_page  # matplotlib: imported only when a page is asked for

        page = write_separation_page(args.output_dir, separated, separator.source, separator.sample_rate)
        print(f"listening page: {page}")
    if failures:
        print(f"separate.py: {failures} of {len(inputs)} input(s) failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
