#!/usr/bin/env python3
"""A results report for one experiment folder, headless: ``report.md`` and a listening page ``report.html``.

    python report.py RESULTS_FOLDER

Reads what the recipe leaves in a SpeechBrain output folder:
- ``test_results.csv`` (required): ``snt_id`` + metrics per test mixture, last row ``avg``;
- ``train_log.txt`` (optional): SpeechBrain's ``FileTrainLogger`` lines, one per epoch, e.g.
  ``epoch: N, lr: ... - train loss: X, ... - valid loss: Y, ...`` (this recipe) or
  ``... - train si-snr: X - valid si-snr: Y`` (SpeechBrain's separation recipes). Both log the
  loss, a NEGATIVE SNR, so the curves show −X and −Y (dB);
- ``audio_results/`` (optional, also looked for under ``save/``): ``item<id>_mix.wav``,
  ``item<id>_source<k>.wav`` (target) and ``item<id>_source<k>hat.wav`` (estimate), stereo.

Writes next to ``test_results.csv``:
- ``report.md`` and its figures: training curve, distributions of SNRi / ΔITD / ΔILD, SNRi and ΔITD
  against the talkers' angular separation (when the test names carry azimuths:
  ``subject_utt1_az1_el1_utt2_az2_el2[_utt3_az3_el3]``), and spectrograms of one example, both ears;
- ``report.html``, the listening page: the same table and figures, then one row per saved example,
  ordered by SNRi (best first; best and worst marked) with its SNRi, ΔITD and ΔILD, a player for the
  mixture, each target and each estimate (stereo files: with headphones, each talker is heard where
  it is), and a small spectrogram of each (``report_files/``: left ear above right ear). The page is
  plain HTML and CSS with relative links: it works opened from disk (``file://``), fetches nothing
  from the network and needs no JavaScript. :func:`write_separation_page` makes the same page for
  ``separate.py --report`` (mixtures and estimates, no references, so no metrics).

A part whose input is absent is skipped with a note in the report. Every file is written to a
temporary file and moved into place, so a reader never sees half a figure.

Figures are drawn with matplotlib's object API on Agg canvases: no display is needed, and the
caller's pyplot backend is left alone.
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
