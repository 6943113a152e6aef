#!/usr/bin/env python3
"""Build Binaural WSJ0-2mix / WSJ0-3mix from a WSJ0 root and an HRTF set.

Official mode (the default) reproduces the public dataset sample for sample from the official
metadata and the CIPIC WAV database, downloading both when no local copy is given. Own mode
(``--own_metadata``) draws new metadata for any corpus in the WSJ0 layout and any HRTF set (CIPIC
WAV, SOFA, or the built-in spherical head), writes it in the official formats, then builds from it
through the same code path.

    python create_binaural_wsj0mix.py --wsj_root W --output_dir O [--n_spks 2|3]
        [--freqs 8k 16k] [--modes min max] [--splits tr cv tt]
        [--metadata_dir M] [--hrtf_dir H] [--num_workers K]
        [--variant clean|noise|reverb] [--noise_root D] [--binaural_noise [demand|diffuse]]
        [--brir_dir B|simulate] [--reproduce_published_reverb]

For example, the 8 kHz "min" Binaural WSJ0-2mix of the published recipe (official metadata and
CIPIC HRTFs, downloaded when absent):

    python create_binaural_wsj0mix.py --wsj_root /data/wsj --output_dir /data/binaural_wsj0-2mix --freqs 8k --modes min

Output: ``O/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix,s1,s2[,s3]}/NAME.wav``, stereo int16, and the
dataset record ``O/binaural_wsj0mix.json`` (:mod:`binaural.data.record`), written before the first wav: a rerun
with the same options resumes (writes are atomic and finished files are skipped), a run with other
options into the same folder stops before writing anything. One run writes into a folder at a
time; a second one waits for it.

Variants (``--variant``, :mod:`binaural.data.variants`), as the public ``create_wav_2speakers_{noise,reverb}.py``:

- ``noise``: WHAM!-style DEMAND noise (:mod:`binaural.data.noise`): ``{mix_clean,mix_single,mix_both,s1,s2,noise}``,
  float32; the noise from ``--noise_root`` (``<ENV>/ch01.wav``) or downloaded from Zenodo; the
  published identical ears by default, ``--binaural_noise [demand|diffuse]`` for two different ears.
- ``reverb``: binaural room impulse responses (:mod:`binaural.data.rooms`) from the BRIR Sim Set (``--brir_dir``,
  downloaded when absent) or simulated (``--brir_dir simulate``): ``{mix,s1,s2}`` int16, named
  ``<rt>_<utt1>_<az1>_<utt2>_<az2>.wav``; the sources are the reverberant binaural images. Each ear
  is convolved with its own BRIR, aligned on the direct sound (nothing of the utterance is cut), and
  int16 overflow saturates; ``--reproduce_published_reverb`` reproduces the published convolution
  (right ear through the sum of both BRIRs, ``mode="same"`` centring, wrap-around) bit for bit, for
  comparisons with published numbers.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from binaural.data.generation import create_binaural_wsj0mix
from binaural.data.layout import FREQS, MODES, REPO_FOLDER, SPLITS
from binaural.data.record import GenerationOptions
from binaural.data.variants import DataVariant
from binaural.errors import run_generator


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help: the docstring (its example) as written, and every option's default."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    required = {"required": True, "default": argparse.SUPPRESS}  # no "(default: None)" in --help
    parser.add_argument("--wsj_root", **required, help="folder that contains wsj0/ (required)")
    parser.add_argument("--output_dir", **required, help="where wav8k/ and wav16k/ are written (required)")
    parser.add_argument("--n_spks", type=int, default=2, choices=(2, 3), help="talkers per mixture: WSJ0-2mix or -3mix")
    parser.add_argument("--freqs", nargs="+", default=list(FREQS), choices=FREQS, help="sample rates to write")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                        help="length modes: min cuts a mixture to its shortest talker, max pads to the longest")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS,
                        help="training, validation, test")
    parser.add_argument("--metadata_dir", help="official metadata folder (downloaded when absent)")
    parser.add_argument(
        "--hrtf_dir",
        help="CIPIC wav_database folder (None: downloaded); own mode also takes a SOFA file/folder or "
        "'spherical' (None there: the spherical head)",
    )
    parser.add_argument("--num_workers", type=int, default=None, help="processes (None: all cores)")
    parser.add_argument("--own_metadata", action="store_true", help="draw new metadata instead of the official one")
    parser.add_argument("--n_mixtures", type=int, nargs="+", default=[20000, 5000, 3000],
                        help="own mode: mixtures per split (tr cv tt)")
    parser.add_argument("--seed", type=int, default=0, help="own mode: seed of the draw; also seeds simulated rooms")
    parser.add_argument("--repo_dir", help=f"where the public archive goes (None: OUTPUT_DIR/../{REPO_FOLDER})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--variant", choices=DataVariant.names(), default="clean", help="the data set")
    for variant in DataVariant._registry.values():
        variant.add_arguments(parser)
    return parser.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> GenerationOptions:
    """The command line as :class:`binaural.data.record.GenerationOptions`."""
    return GenerationOptions(
        variant=DataVariant.named(args.variant).from_arguments(args),
        n_spks=args.n_spks,
        freqs=args.freqs,
        modes=args.modes,
        splits=args.splits,
        metadata_dir=args.metadata_dir,
        hrtf_dir=args.hrtf_dir,
        own_metadata=args.own_metadata,
        n_mixtures=args.n_mixtures,
        seed=args.seed,
        repo_dir=args.repo_dir,
        num_workers=args.num_workers,
        progress=not args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_generator(lambda: create_binaural_wsj0mix(args.wsj_root, args.output_dir, options_from_args(args)), args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
