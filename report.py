#!/usr/bin/env python3
"""A results report for one experiment folder, headless: ``report.md`` and a listening page ``report.html``.

    python report.py RESULTS_FOLDER

Reads ``test_results.csv`` (required), ``train_log.txt`` and ``audio_results/`` of a train.py output
folder and writes ``report.md``, its figures and ``report.html`` beside them; what each shows and
how the examples are chosen: :mod:`binaural.evaluation.report`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from binaural.errors import RecipeError
from binaural.evaluation.report import PAGE_NAME, RESULTS_CSV, write_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write report.md, its PNG figures and the listening page report.html for one experiment's results."
    )
    parser.add_argument("results_folder", type=Path, help=f"the SpeechBrain output folder holding {RESULTS_CSV}")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.results_folder)
    except RecipeError as error:  # ReportError, or a bad file (binaural.io) met on the way
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report)
    print(report.with_name(PAGE_NAME))
    return 0


if __name__ == "__main__":
    sys.exit(main())
