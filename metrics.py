"""Score folders of binaural separation estimates: SNR(i), SI-SNR(i), SDR(i), ΔITD and ΔILD.

    python metrics.py --mix_dir D/mix --ref_dir D --est_dir E --out results.csv [--sample_rate 8000] [--max_itd_us 1000]

scores ``E/s1, E/s2[, E/s3]`` against ``D/s1, D/s2[, D/s3]`` file by file (same names as in
``D/mix``) and writes a CSV like SpeechBrain's ``test_results.csv`` (one row per mixture, a last
``avg`` row). What each metric is, its units and the permutation: :mod:`binaural.evaluation.metrics`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from binaural.errors import RecipeError
from binaural.evaluation.metrics import MAX_ITD_US, METRIC_NAMES, METRIC_UNITS, MetricsInputError, score_folders


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Score binaural separation estimates: SNR, SI-SNR, SDR (+ improvements over the mixture, "
            "dB), ΔITD (µs, integer-sample and 1/16-sample GCC-PHAT) and ΔILD (dB), under the talker "
            "permutation that maximises the mean SNR. Writes a CSV with one row per mixture and a "
            "last 'avg' row."
        ),
        epilog=(
            "Layout: REF_DIR/sN/<name> and EST_DIR/sN/<name> (N = 1..number of sN folders in REF_DIR) "
            "for every MIX_DIR/<name>; all files stereo [time, 2] at one sample rate and one length. "
            "Example: python metrics.py --mix_dir D/mix --ref_dir D --est_dir E --out results.csv "
            "--sample_rate 8000"
        ),
    )
    parser.add_argument("--mix_dir", required=True, type=Path, help="folder of stereo mixtures, e.g. D/mix")
    parser.add_argument("--ref_dir", required=True, type=Path, help="folder holding s1/, s2/[, s3/] targets")
    parser.add_argument("--est_dir", required=True, type=Path, help="folder holding s1/, s2/[, s3/] estimates")
    parser.add_argument("--out", required=True, type=Path, help="CSV to write (snt_id + metrics, last row avg)")
    parser.add_argument("--sample_rate", type=int, default=None,
                        help="expected sample rate in Hz (default: that of the first mixture)")
    parser.add_argument("--max_itd_us", type=_positive_us, default=MAX_ITD_US,
                        help=f"largest |ITD| searched by delta_ITD_fine, in µs (default {MAX_ITD_US:g}, the lags a "
                             "head produces; delta_ITD, the published measure, searches every lag)")
    return parser.parse_args(argv)


def _positive_us(text: str) -> float:
    """argparse type: a finite number of µs > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of µs")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on unusable input)."""
    args = _parse_args(argv)
    try:
        if args.out.is_dir():
            raise MetricsInputError(f"{args.out}: is a folder; --out names the CSV file to write, e.g. {args.out / 'results.csv'}")
        average = score_folders(args.mix_dir, args.ref_dir, args.est_dir, args.out, args.sample_rate, args.max_itd_us)
    except RecipeError as error:  # MetricsInputError, or binaural.io.audio's AudioFileError for a bad file
        print(f"metrics.py: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # writing the CSV: permissions, a full disk, a file where a folder should be
        print(f"metrics.py: error: {args.out}: cannot be written ({error.strerror or error})", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    print("avg  " + "  ".join(f"{name}={average[name]:.3f} {METRIC_UNITS[name]}" for name in METRIC_NAMES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
