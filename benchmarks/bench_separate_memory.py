#!/usr/bin/env python3
"""Peak memory of ``separate.py`` against the input's length: bounded by the block, not the file.

For each length (minutes of 8 kHz stereo noise, written block by block to a scratch folder), a
fresh Python process builds the separator of ``hparams/convtasnet-parallel.yaml`` with random
weights (small sizes by default, ``--published`` for the published ones) and separates the file
with ``BinauralSeparator.separate_file``, what ``separate.py`` runs per input; that process reports
its own peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), so each length is
measured alone.

    python benchmarks/bench_separate_memory.py [--minutes 2 20] [--block_seconds 60] [--published]

Last line: ``{"peak_rss_mb": {"2": m, "20": m}}`` (one key per ``--minutes`` value, as given).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RATE = 8000
SMALL = {"N_encoder_out": 64, "B": 64, "H": 128, "X": 4, "R": 2}

CHILD = """
import json, resource, sys, torch
torch.set_num_threads(1)
from binaural.separation.separator import BinauralSeparator
separator = BinauralSeparator.from_hparams("hparams/convtasnet-parallel.yaml", None, overrides=json.loads(sys.argv[3]),
                                           block_seconds=float(sys.argv[4]))
separator.separate_file(sys.argv[1], sys.argv[2])
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_noise(path: Path, minutes: float, seed: int = 0) -> None:
    """``minutes`` of 8 kHz stereo noise (float wav), written a minute at a time."""
    rng = np.random.default_rng(seed)
    remaining = round(minutes * 60 * RATE)
    with sf.SoundFile(str(path), "w", RATE, 2, "FLOAT", format="WAV") as handle:
        while remaining:
            n = min(remaining, 60 * RATE)
            handle.write((0.1 * rng.standard_normal((n, 2))).astype(np.float32))
            remaining -= n


def peak_rss_mb(minutes: float, folder: Path, sizes: dict, block_seconds: float) -> float:
    """Peak RSS (MB) of a fresh process separating ``minutes`` of audio."""
    mix = folder / f"mix_{minutes:g}min.wav"
    write_noise(mix, minutes)
    result = subprocess.run([sys.executable, "-c", CHILD, str(mix), str(folder / "out"), json.dumps(sizes),
                             str(block_seconds)], cwd=ROOT, capture_output=True, text=True, check=False)
    mix.unlink()
    if result.returncode:
        raise SystemExit(f"the separation of {minutes:g} min failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", nargs="+", default=["2", "20"], help="input lengths (minutes of 8 kHz stereo)")
    parser.add_argument("--block_seconds", type=float, default=60.0, help="separate.py's --block_seconds")
    parser.add_argument("--published", action="store_true", help="the published model's sizes (slow on a CPU)")
    args = parser.parse_args()
    sizes = {} if args.published else SMALL
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench_separate_memory_") as scratch:
        for minutes in args.minutes:
            figures[minutes] = round(peak_rss_mb(float(minutes), Path(scratch), sizes, args.block_seconds), 1)
            print(f"{float(minutes):g} min of {RATE} Hz stereo: peak RSS {figures[minutes]} MB", flush=True)
    print(json.dumps({"peak_rss_mb": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
