#!/usr/bin/env python3
"""The demo from scratch: wall time and test SNRi of ``python train.py hparams/demo.yaml``
(or ``--hparams hparams/demo-causal.yaml``, the causal demo).

Runs the demo's command unchanged but for its three folders, which go to an empty scratch folder
(``--workdir``, kept; by default a temporary one under the project's ``.benchmarks/``, on the disk
the demo writes to, removed afterwards unless ``--keep``), so every
stage is timed (synthetic corpus, generation, training, test, report) and ``results/demo`` is left
alone.
Extra arguments after ``--`` go to train.py (e.g. ``-- --seed 7``).

    python benchmarks/bench_demo.py [--hparams hparams/demo-causal.yaml] [--workdir D] [--keep] [-- train.py overrides]

The demo's goal: under 10 minutes on 2 CPU cores and at least 3 dB SNRi on its test set.
Last line: ``{"wall_s": w, "snr_i_db": s}`` (the ``avg`` row of test_results.csv).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--hparams", default="hparams/demo.yaml", help="the demo's YAML (default hparams/demo.yaml)")
    parser.add_argument("overrides", nargs="*", help="more train.py arguments, after --")
    args = parser.parse_args()
    if args.workdir is None:
        (ROOT / ".benchmarks").mkdir(exist_ok=True)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_demo_", dir=ROOT / ".benchmarks")).resolve()
    if work.exists() and any(work.iterdir()):
        parser.error(f"{work} is not empty: the demo must start from scratch")
    out = work / "results"
    command = [
        sys.executable, "train.py", args.hparams,
        "--data_folder", str(work / "data" / "binaural_wsj0-2mix"),
        "--wsj_root", str(work / "data" / "synthetic_wsj0"),
        "--output_folder", str(out), *args.overrides,
    ]
    try:
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=os.environ | {"PYTHONUNBUFFERED": "1"}, check=False)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print(f"train.py failed (exit {result.returncode})", file=sys.stderr)
            return 1
        with open(out / "test_results.csv", newline="") as handle:
            average = [row for row in csv.DictReader(handle) if row["snt_id"] == "avg"][0]
        print(f"{out}: {average}")
        print(json.dumps({"wall_s": round(wall, 1), "snr_i_db": round(float(average["snr_i"]), 2)}))
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
