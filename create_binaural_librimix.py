#!/usr/bin/env python3
"""Build Binaural Libri2Mix / Libri3Mix from LibriSpeech and the public LibriMix metadata.

    python create_binaural_librimix.py --librispeech_root L --output_dir O --n_spks 2 --freqs 8k
        --modes min --splits test [--metadata_dir M] [--hrtf_dir H] [--wham_root W]
        [--variant clean|noise|reverb] [--wham_channel both|first] [--brir_dir B|simulate] [--seed S]
        [--num_workers K] [--quiet]

Each talker is the mono source LibriMix's create_librimix_from_metadata.py makes (gain,
resample_poly, min/max), placed with a two-ear HRIR (CIPIC by default; a SOFA file/folder or
'spherical'). The placement (listener, azimuth, elevation per talker; listeners disjoint between
train, dev and test) is drawn once from --seed and written to O/metadata/binaural_libri{n}mix_*.csv.
Output: O/wav8k/min/test/{s1,s2,mix_clean}/<mixture_ID>.wav (noise: + noise, mix_single, mix_both),
stereo float32, and the dataset record O/binaural_wsj0mix.json: a rerun resumes, a run with another
seed, HRTF set or variant into the same folder is refused. Absent inputs are downloaded: the
LibriSpeech subsets (OpenSLR, size and MD5 checked) into L, the LibriMix metadata and WHAM! noise
beside O. See binaural/data/librimix.py.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from binaural.data.layout import FREQS, MODES
from binaural.data.librimix import (
    LIBRIMIX_SPLITS, LIBRIMIX_VARIANTS, WHAM_CHANNELS, LibriMixOptions, create_binaural_librimix,
)
from binaural.errors import run_generator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--librispeech_root", required=True, help="folder holding test-clean/, dev-clean/, ... "
                        "(absent subsets are downloaded into it)")
    parser.add_argument("--output_dir", required=True, help="where wav8k/ and wav16k/ are written")
    parser.add_argument("--n_spks", type=int, default=2, choices=(2, 3))
    parser.add_argument("--freqs", nargs="+", default=["8k"], choices=FREQS)
    parser.add_argument("--modes", nargs="+", default=["min"], choices=MODES)
    parser.add_argument("--splits", nargs="+", default=["train-100", "dev", "test"], choices=LIBRIMIX_SPLITS)
    parser.add_argument("--metadata_dir", help="copy of the LibriMix repository's metadata/ (downloaded when absent)")
    parser.add_argument("--hrtf_dir", help="CIPIC wav_database, SOFA file/folder or 'spherical' (default: CIPIC, "
                        "downloaded with the Binaural-WSJ0Mix archive)")
    parser.add_argument("--wham_root", help="noise variant: the wham_noise folder (downloaded when absent)")
    parser.add_argument("--variant", choices=tuple(LIBRIMIX_VARIANTS), default="clean")
    parser.add_argument("--wham_channel", choices=WHAM_CHANNELS, default="both",
                        help="noise variant: WHAM!'s two ears (default) or LibriMix's first channel in both")
    parser.add_argument("--brir_dir", help="reverb variant: the BRIR Sim Set (CATT_RIRs), or 'simulate' for simulated "
                        "rooms; downloaded beside OUTPUT_DIR when absent")
    parser.add_argument("--seed", type=int, default=0, help="seed of the binaural placement draw (and simulated rooms)")
    parser.add_argument("--num_workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> LibriMixOptions:
    """The command line as :class:`binaural.data.librimix.LibriMixOptions`."""
    arguments = {"noise": (args.wham_channel,), "reverb": (args.brir_dir, args.seed)}.get(args.variant, ())
    variant = LIBRIMIX_VARIANTS[args.variant](*arguments)
    return LibriMixOptions(
        variant=variant, n_spks=args.n_spks, freqs=args.freqs, modes=args.modes, splits=args.splits,
        metadata_dir=args.metadata_dir, hrtf_dir=args.hrtf_dir, wham_root=args.wham_root, seed=args.seed,
        num_workers=args.num_workers, progress=not args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_generator(lambda: create_binaural_librimix(args.librispeech_root, args.output_dir, options_from_args(args)), args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
