"""The data variants of Binaural WSJ0-mix, one class each: clean, noisy, reverberant.

A variant owns everything that differs between the data sets the public generation scripts make
(``create_wav_2speakers.py``, ``..._noise.py``, ``..._reverb.py``): the folders of a split and the
one the model hears, the file format, the metadata files it reads, how one mixture is rendered,
the manifest columns, the options that change its bits, and what dynamic mixing adds for it. The
generator (:mod:`binaural.data.generation`), the manifests (:mod:`binaural.data.manifests`), the dataset record
(:mod:`binaural.data.record`), ``train.py`` and dynamic mixing ask the variant; none of them tests its name. A
new variant is one new subclass of :class:`DataVariant`.

A recipe YAML declares its variant as it declares its model::

    data_variant: !new:binaural.data.variants.NoiseVariant
        noise_root: !ref <noise_root>
        binaural_noise: !ref <binaural_noise>

Signals are ``[time, ear]`` float64 (ear 0 = left) at the rate of the part being built, in raw int16
units for the int16 variants (the public scripts' scale) and in [-1, 1] for the float ones.
"""
from __future__ import annotations

import abc
import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from binaural.errors import RecipeError
from binaural.data.layout import SAMPLE_RATES, SIMULATED_BRIR_FOLDER, DEMAND_FOLDER, source_folders

__all__ = ["BuildInputs", "CleanVariant", "DataVariant", "NoiseVariant", "Renderer", "ReverbVariant"]


@dataclass(frozen=True)
class BuildInputs:
    """What a variant needs to check its inputs and prepare its renderer (nothing is written yet).

    ``specs`` are every mixture of the build (all splits); ``official`` says whether the metadata
    is the public one (then int16 overflow wraps where the public scripts wrap, to keep their bits).
    """

    wsj_root: Path
    output_root: Path
    metadata_dir: Path
    specs: tuple
    n_spks: int
    freqs: tuple[str, ...]
    modes: tuple[str, ...]
    splits: tuple[str, ...]
    official: bool
    seed: int
    hrtf_set: Any  # hrtf.HRTFSet, or None for a variant that uses none
    download_parent: Path
    workers: int
    progress: bool


class Renderer(abc.ABC):
    """Renders the mixtures of one build; made by :meth:`DataVariant.prepare`, used in every worker.

    It holds what the variant prepared (HRTF or BRIR set, noise draws), so forked workers inherit
    it with its caches warm.
    """

    def __init__(self, variant: "DataVariant", inputs: BuildInputs) -> None:
        self.variant = variant
        self.wsj_root = inputs.wsj_root
        self.output_root = inputs.output_root
        # The public scripts require 16 kHz utterances; own mode resamples any rate.
        from binaural.data.layout import WSJ0_RATE

        self.source_rate: int | None = WSJ0_RATE if inputs.official else None
        self.overflow = variant.overflow(inputs.official)

    @abc.abstractmethod
    def render(self, spec, sources_at_rate: Sequence[np.ndarray], freq: str, mode: str) -> dict[str, np.ndarray]:
        """``{folder: [time, 2] float64}`` of one mixture at one rate and length mode.

        Arguments
        ---------
        spec
            The mixture's metadata row (:class:`binaural.data.metadata.MixtureSpec` or :class:`binaural.data.rooms.ReverbSpec`).
        sources_at_rate
            One ``[time_k]`` raw-int16-valued utterance per talker, at ``freq``.
        """

    def before_build(self) -> None:
        """Writes the build owes that must wait until the dataset record claims the tree (caches)."""


class DataVariant(abc.ABC):
    """One data set of the family: its layout, format, metadata, rendering and options.

    Subclasses set :attr:`name` (which registers them for the generator's ``--variant``) and
    implement :meth:`prepare`; the rest has the clean set's defaults.
    """

    #: The generator's ``--variant`` value and the record's ``variant``.
    name: ClassVar[str]
    #: The largest talker count the variant is defined for (the public noisy and reverberant sets
    #: are two-talker sets).
    max_talkers: ClassVar[int] = 3
    #: The folder of a split holding the mixture the model hears.
    input_folder: ClassVar[str] = "mix"
    #: Whether the talkers are placed with HRTFs (the generator then loads and checks an HRTF set).
    uses_hrtf: ClassVar[bool] = True
    _registry: ClassVar[dict[str, type["DataVariant"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            DataVariant._registry[cls.name] = cls

    @classmethod
    def named(cls, name: str) -> type["DataVariant"]:
        """The variant class registered as ``name`` (the generator's ``--variant``)."""
        if name not in cls._registry:
            raise RecipeError(f"data variant {name!r} is not one of {', '.join(cls._registry)}")
        return cls._registry[name]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(cls._registry)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the variant's own flags to the generator's command line (none by default)."""

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> "DataVariant":
        """The variant as the generator's command line asks for it."""
        return cls()

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.options().items())
        return f"{type(self).__name__}({options})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.options() == other.options() and self.sources() == other.sources()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.options().items()))))

    # ------------------------------------------------------------------ layout and format
    def check_talkers(self, n_spks: int) -> None:
        """Raise when the variant does not exist for ``n_spks`` talkers."""
        if n_spks not in (2, 3):
            raise RecipeError(f"n_spks must be 2 or 3, got {n_spks}")
        if n_spks > self.max_talkers:
            raise RecipeError(f"the {self.name} variant is a two-talker set (as published), got n_spks={n_spks}")

    def folders(self, n_spks: int) -> tuple[str, ...]:
        """The folders of one split, in writing order: the talkers first, the mixture the model
        hears last (a mixture on disk means the rest of its files are there too)."""
        return (*source_folders(n_spks), self.input_folder)

    def manifest_columns(self, n_spks: int) -> dict[str, str]:
        """``{manifest column: folder}``: ``mix_wav`` (what the model hears) and ``s<k>_wav``."""
        return {"mix_wav": self.input_folder} | {f"{s}_wav": s for s in source_folders(n_spks)}

    def overflow(self, official: bool) -> str:
        """``"wrap"`` where the public scripts' ``astype(int16)`` wraps around (kept for their bits in
        official mode), else ``"clip"``."""
        return "wrap" if official else "clip"

    def encode(self, signal: np.ndarray, overflow: str) -> tuple[np.ndarray, str, int]:
        """A rendered ``[time, 2]`` signal as written: samples, soundfile subtype, samples out of range.

        int16 as the public scripts (truncation, ``overflow`` beyond the range).
        """
        from binaural.io.audio import to_int16

        samples, out_of_range = to_int16(signal, overflow)
        return samples, "PCM_16", out_of_range

    # ------------------------------------------------------------------ identity
    def options(self) -> dict[str, Any]:
        """The variant's options that change the files' bits (the dataset record compares them)."""
        return {}

    def sources(self) -> dict[str, str]:
        """Where the variant's inputs come from (recorded for reference, not compared)."""
        return {}

    # ------------------------------------------------------------------ metadata
    def metadata_files(self, metadata_dir: Path, n_spks: int, split: str) -> tuple[Path, ...]:
        """The metadata files one split is made from (their digest goes into the dataset record)."""
        from binaural.data.metadata import metadata_paths

        return tuple(metadata_paths(metadata_dir, n_spks, split).values())

    def load_specs(self, metadata_dir: Path, n_spks: int, split: str, freqs: Sequence[str], modes: Sequence[str]) -> list:
        """The mixtures of one split, read from the metadata (checked)."""
        from binaural.data.metadata import load_split

        return load_split(metadata_dir, n_spks, split, freqs, modes)

    def draw_own_metadata(self, metadata_dir: Path, n_spks: int, splits: Sequence[str], seed: int) -> None:
        """Own mode: draw the variant's own metadata files the splits lack (beyond the clean ones)."""

    # ------------------------------------------------------------------ building
    @abc.abstractmethod
    def prepare(self, inputs: BuildInputs) -> Renderer:
        """Check every input the variant reads (before anything is written) and return its renderer."""

    # ------------------------------------------------------------------ training
    def dynamic_mixing_options(self) -> dict[str, Any]:
        """Keyword arguments the recipe adds to its dynamic-mixing factory for this variant."""
        return {}

    def check_dynamic_mixing(self, dataset: Any) -> None:
        """Raise when a dynamic-mixing dataset does not make this variant's mixtures."""


def metadata_digest(paths: Sequence[Path]) -> str:
    """SHA-256 over the names and bytes of ``paths`` (in order): a split's metadata, in one value."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0")
        digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


# =============================================================================================
# Clean: talkers through HRIRs (create_wav_2speakers.py)
# =============================================================================================


def check_hrtfs(specs: Sequence, hrtf_set: Any, rates: Sequence[int]) -> None:
    """Load every (subject, azimuth) the metadata uses at every rate, checking the elevation indices.

    This also fills ``hrtf_set``'s cache, which forked workers inherit.

    Raises
    ------
    metadata.MetadataError
        Naming the mixture and the HRTF problem, before any output is written.
    """
    from binaural.data.hrtf import HRTFError
    from binaural.data.metadata import MetadataError

    for spec in specs:
        for direction in spec.directions:
            try:
                for rate in rates:
                    hrtf_set.hrir(spec.subject, direction.azimuth, direction.elevation_index, rate)
            except HRTFError as error:
                raise MetadataError(f"{spec.split}/{spec.output_filename}: {error}. Nothing was written.") from error


def spatialize_talkers(spec, dry: Sequence[np.ndarray], hrtf_set: Any, rate: int) -> list[np.ndarray]:
    """Each dry ``[time]`` talker of ``spec`` through its HRIR: ``[time', 2]`` each (energy matched)."""
    from binaural.data.mixing import spatialize

    return [
        spatialize(source, hrtf_set.hrir(spec.subject, d.azimuth, d.elevation_index, rate))
        for source, d in zip(dry, spec.directions)
    ]


class _CleanRenderer(Renderer):
    def __init__(self, variant: DataVariant, inputs: BuildInputs) -> None:
        super().__init__(variant, inputs)
        self.hrtf_set = inputs.hrtf_set

    def render(self, spec, sources_at_rate, freq, mode):
        from binaural.data.mixing import fix_length, mix_sources

        rate = SAMPLE_RATES[freq]
        dry = fix_length([s * g for s, g in zip(sources_at_rate, spec.gains[(freq, mode)])], mode)
        binaural = spatialize_talkers(spec, dry, self.hrtf_set, rate)
        signals = {f"s{k + 1}": b for k, b in enumerate(binaural)}
        signals["mix"] = mix_sources(binaural)
        return signals


class CleanVariant(DataVariant):
    """Binaural WSJ0-2mix/3mix: the talkers through one listener's HRIRs, ``{mix, s1, s2[, s3]}``, int16."""

    name = "clean"

    def prepare(self, inputs: BuildInputs) -> Renderer:
        # Every rate: each file is read once and only the rows used are resampled, so this costs
        # well under a second for thousands of mixtures, and forked workers start with it all.
        check_hrtfs(inputs.specs, inputs.hrtf_set, [SAMPLE_RATES[f] for f in inputs.freqs])
        return _CleanRenderer(self, inputs)


# =============================================================================================
# Noise: WHAM!-style DEMAND noise added to the clean binaural talkers (create_wav_2speakers_noise.py)
# =============================================================================================


class _NoiseRenderer(Renderer):
    def __init__(self, variant: "NoiseVariant", inputs: BuildInputs, noise_root: Path, infos: dict,
                 pending_cache: tuple | None) -> None:
        super().__init__(variant, inputs)
        self.hrtf_set = inputs.hrtf_set
        self.noise_root = noise_root
        self.infos = infos  # (split, output_filename) -> noise.NoiseInfo
        self.binaural_noise = variant.binaural_noise
        self._pending_cache = pending_cache

    def render(self, spec, sources_at_rate, freq, mode):
        from binaural.data.mixing import fix_length, place_in_noise, wham_mixtures, wham_speech_sources
        from binaural.data.noise import binaural_noise

        rate = SAMPLE_RATES[freq]
        info = self.infos[(spec.split, spec.output_filename)]
        noise = binaural_noise(
            self.noise_root, info.segment, rate, info.noise_gains[(freq, mode)], self.binaural_noise, info.frames
        )  # [noise_time, 2], scaled (scaling_wham_noise)
        dry = fix_length(wham_speech_sources(sources_at_rate, spec.gains[(freq, mode)], info.speech_gains[(freq, mode)]), mode)
        binaural = spatialize_talkers(spec, dry, self.hrtf_set, rate)
        placed, noise = place_in_noise(binaural, noise, mode, info.speech_start_16k, rate)
        signals = {f"s{k + 1}": b for k, b in enumerate(placed)}
        signals["noise"] = noise
        signals.update(wham_mixtures(placed, noise))
        return signals

    def before_build(self) -> None:
        from binaural.data.noise import save_public_segments

        if self._pending_cache is not None:
            save_public_segments(*self._pending_cache)


class NoiseVariant(DataVariant):
    """The noisy set: DEMAND noise at WHAM! levels added to the clean binaural talkers.

    ``{s1, s2, noise, mix_clean, mix_single, mix_both}``, float32 as the public noisy scripts; the
    model hears ``mix_both`` and learns the dry binaural talkers.

    Arguments
    ---------
    noise_root : str or Path, optional
        A DEMAND copy (``<ENV>/ch01.wav``, 16 kHz); None downloads the environments the metadata's
        ``file_splits.csv`` names from Zenodo into ``<download parent>/DEMAND``.
    binaural_noise : str or bool
        ``"none"`` (default, the published data: the mono noise in both ears), ``"demand"`` (or
        True: the right ear from DEMAND channel 2) or ``"diffuse"`` (a diffuse field's coherence).
    """

    name = "noise"
    max_talkers = 2
    input_folder = "mix_both"
    #: Writing order: sources and noise first, ``mix_both`` (the training input) very last.
    FOLDERS: ClassVar[tuple[str, ...]] = ("s1", "s2", "noise", "mix_clean", "mix_single", "mix_both")

    def __init__(self, noise_root: str | Path | None = None, binaural_noise: bool | str | None = "none") -> None:
        from binaural.data.noise import BINAURAL_MODES

        self.noise_root = None if noise_root in (None, "", "null", "None") else Path(noise_root)
        if binaural_noise in (None, False, "", "none", "None", "false", "False"):
            mode = "none"
        elif binaural_noise is True:
            mode = "demand"
        else:
            mode = str(binaural_noise)
        if mode not in BINAURAL_MODES:
            raise RecipeError(f"binaural_noise must be one of {BINAURAL_MODES} (or True for 'demand'), got {binaural_noise!r}")
        self.binaural_noise = mode

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from binaural.data.noise import BINAURAL_MODES

        parser.add_argument(
            "--noise_root",
            help=f"noise variant: local DEMAND copy (<ENV>/ch01.wav, 16 kHz); downloaded from Zenodo into "
            f"OUTPUT_DIR/../{DEMAND_FOLDER} when absent",
        )
        parser.add_argument(
            "--binaural_noise", nargs="?", const="demand", default="none", choices=BINAURAL_MODES,
            help="noise variant: give the noise two different ears: 'demand' (the default when the flag has no "
            "value: DEMAND channel 2 for the right ear) or 'diffuse' (diffuse-field coherence model); without "
            "the flag both ears get the same noise, as published",
        )

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> "NoiseVariant":
        return cls(args.noise_root, args.binaural_noise)

    def folders(self, n_spks: int) -> tuple[str, ...]:
        return self.FOLDERS

    def manifest_columns(self, n_spks: int) -> dict[str, str]:
        return super().manifest_columns(n_spks) | {"noise_wav": "noise"}

    def encode(self, signal: np.ndarray, overflow: str) -> tuple[np.ndarray, str, int]:
        return np.asarray(signal, dtype=np.float32), "FLOAT", 0  # float32, as the public noisy scripts

    def options(self) -> dict[str, Any]:
        return {"binaural_noise": self.binaural_noise}

    def sources(self) -> dict[str, str]:
        return {"noise_root": str(self.noise_root) if self.noise_root else f"downloaded ({DEMAND_FOLDER})"}

    def metadata_files(self, metadata_dir: Path, n_spks: int, split: str) -> tuple[Path, ...]:
        from binaural.data.noise import FILE_SPLITS_NAME

        own_draws = Path(metadata_dir) / f"noise_meta_{split}.csv"
        extra = (own_draws,) if own_draws.exists() else ()
        return super().metadata_files(metadata_dir, n_spks, split) + (Path(metadata_dir) / FILE_SPLITS_NAME,) + extra

    def prepare(self, inputs: BuildInputs) -> Renderer:
        check_hrtfs(inputs.specs, inputs.hrtf_set, [SAMPLE_RATES[f] for f in inputs.freqs])
        root, infos, pending_cache = _prepare_noise(self, inputs)
        return _NoiseRenderer(self, inputs, root, infos, pending_cache)

    def dynamic_mixing_options(self) -> dict[str, Any]:
        # The same noise in both ears when the generated data has it so (binaural_noise: none).
        return {"diotic_noise": self.binaural_noise == "none"}

    def check_dynamic_mixing(self, dataset: Any) -> None:
        if getattr(dataset, "noise_catalogue", True) is None:
            raise RecipeError("the data variant is noisy but dynamic_mixing_dataset adds no noise: bind its noise_folder")


def _prepare_noise(variant: NoiseVariant, inputs: BuildInputs) -> tuple[Path, dict, tuple | None]:
    """Everything the noisy build needs, checked before any output is written.

    Returns
    -------
    The DEMAND root, ``{(split, output_filename): noise.NoiseInfo}``, and (official mode, fresh
    replay of the public draws) what to cache once the build starts.
    """
    from binaural.data.layout import NOISE_DRAWS_FOLDER
    from binaural.data.noise import (
        FILE_SPLITS_NAME,
        NoiseError,
        NoiseInfo,
        check_recordings,
        covering_segment,
        default_file_splits,
        ensure_demand,
        load_wham_scaling,
        noise_channels,
        public_segments,
        read_file_splits,
        read_noise_meta,
        utterance_length,
        write_file_splits,
    )
    from binaural.data.metadata import metadata_paths

    metadata_dir = Path(inputs.metadata_dir)
    splits_path = metadata_dir / FILE_SPLITS_NAME
    if not inputs.official and not splits_path.exists():
        write_file_splits(splits_path, default_file_splits())  # own mode: the public file splits
    files = read_file_splits(splits_path)
    every_file = sorted({name for split in files for name in files[split]})
    channels = noise_channels(variant.binaural_noise)
    root = ensure_demand(variant.noise_root, every_file, channels, inputs.download_parent / DEMAND_FOLDER, inputs.progress)
    frames, shortest = check_recordings(root, every_file, channels)
    pending_cache = None
    if not inputs.official:
        _draw_own_noise(inputs, root, frames, files)
        segments = {split: read_noise_meta(metadata_dir / f"noise_meta_{split}.csv") for split in inputs.splits}
    else:
        cache_dir = inputs.output_root / NOISE_DRAWS_FOLDER
        segments, stamp = public_segments(metadata_dir, inputs.wsj_root, root, frames, cache_dir)
        if stamp is not None:
            pending_cache = (cache_dir, segments, stamp)
    scaling = {
        split: load_wham_scaling(
            metadata_paths(metadata_dir, inputs.n_spks, split)["scaling"],
            [s.output_filename for s in inputs.specs if s.split == split], inputs.freqs, inputs.modes,
        )
        for split in inputs.splits
    }
    infos = {}
    for spec in inputs.specs:
        segment = segments[spec.split].get(spec.output_filename)
        if segment is None:
            raise NoiseError(f"no noise segment for {spec.split}/{spec.output_filename}. Nothing was written.")
        if segment.file not in frames:
            raise NoiseError(f"{spec.output_filename}: noise {segment.file} is not in {FILE_SPLITS_NAME}")
        speech_gains, noise_gains, start = scaling[spec.split][spec.output_filename]
        speech = max(utterance_length(inputs.wsj_root, p) for p in spec.source_paths)
        segment = covering_segment(segment, start + speech, frames[segment.file])
        if segment.stop > shortest[segment.file]:
            raise NoiseError(
                f"{segment.file}: a channel of this recording ends before sample {segment.stop}, which "
                f"{spec.split}/{spec.output_filename} needs (the DEMAND channels are equally long). Nothing was written."
            )
        infos[(spec.split, spec.output_filename)] = NoiseInfo(segment, start, speech_gains, noise_gains, frames[segment.file])
    return root, infos, pending_cache


def _draw_own_noise(inputs: BuildInputs, root: Path, frames: dict, files: dict) -> None:
    """Own mode: draw the noise of the splits that lack it: ``noise_meta_<split>.csv`` and the WHAM!
    keys of ``scaling_<split>.npz`` (for every rate and length mode, as the WSJ gains)."""
    import logging

    from binaural.data.layout import FREQS, MODES
    from binaural.data.metadata import load_split, metadata_paths, npz_keys
    from binaural.data.noise import add_wham_keys, draw_noise, write_noise_meta

    for split in inputs.splits:
        paths = metadata_paths(inputs.metadata_dir, inputs.n_spks, split)
        meta = Path(inputs.metadata_dir) / f"noise_meta_{split}.csv"
        if "speech_start_sample_16k" in npz_keys(paths["scaling"]) and meta.exists():
            continue
        logging.getLogger(__name__).info("drawing the noise of the %s mixtures", split)
        specs = load_split(inputs.metadata_dir, inputs.n_spks, split)
        infos = draw_noise(specs, split, inputs.wsj_root, root, files[split], frames, inputs.seed, FREQS, MODES,
                           inputs.hrtf_set)
        add_wham_keys(paths["scaling"], infos, FREQS, MODES)
        write_noise_meta(meta, {name: info.segment for name, info in infos.items()})


# =============================================================================================
# Reverb: talkers through binaural room impulse responses (create_wav_2speakers_reverb.py)
# =============================================================================================


class _ReverbRenderer(Renderer):
    def __init__(self, variant: "ReverbVariant", inputs: BuildInputs, brir_set: Any) -> None:
        super().__init__(variant, inputs)
        self.brir_set = brir_set
        self.reverb_mode = variant.reverb_mode

    def render(self, spec, sources_at_rate, freq, mode):
        from binaural.data.mixing import fix_length, mix_sources, spatialize_reverb

        rate = SAMPLE_RATES[freq]
        dry = fix_length([s * g for s, g in zip(sources_at_rate, spec.gains[(freq, mode)])], mode)
        binaural = [
            spatialize_reverb(source, self.brir_set.brir(spec.reverb_time, azimuth, rate), self.reverb_mode, onset=None)
            for source, azimuth in zip(dry, spec.azimuths)
        ]
        signals = {f"s{k + 1}": b for k, b in enumerate(binaural)}
        signals["mix"] = mix_sources(binaural)
        return signals


class ReverbVariant(DataVariant):
    """The reverberant set: each talker through a binaural room impulse response, ``{mix, s1, s2}`` int16.

    Files are named ``<rt>_<utt1>_<az1>_<utt2>_<az2>.wav``; the targets are the reverberant
    binaural talkers.

    Arguments
    ---------
    brir_dir : str or Path, optional
        The BRIR Sim Set (a ``CATT_RIRs`` folder, its ``Binaural/16k`` folder or their parent),
        ``"simulate"`` for simulated shoebox rooms (cached in ``<download parent>/simulated_brirs``),
        or None to download the set into ``<download parent>/CATT_RIRs``.
    reverb_mode : str
        ``"per_ear"`` (each ear through its own BRIR, aligned on the direct sound; int16 saturates)
        or ``"published"`` (the public 2-D convolution, its flaw and wrap-around included).
    room_seed : int
        Seeds the simulated rooms (unused with the BRIR Sim Set).
    """

    name = "reverb"
    max_talkers = 2
    uses_hrtf = False

    def __init__(self, brir_dir: str | Path | None = None, reverb_mode: str = "per_ear", room_seed: int = 0) -> None:
        from binaural.data.rooms import REVERB_MODES, SIMULATE

        if reverb_mode not in REVERB_MODES:
            raise RecipeError(f"reverb_mode must be one of {REVERB_MODES}, got {reverb_mode!r}")
        self.brir_dir = None if brir_dir in (None, "", "null", "None") else str(brir_dir)
        self.simulated = self.brir_dir is not None and self.brir_dir.strip().lower() == SIMULATE
        self.reverb_mode = reverb_mode
        self.room_seed = int(room_seed)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--brir_dir",
            help="reverb variant: the BRIR Sim Set (CATT_RIRs folder), or 'simulate' for simulated rooms; "
            "downloaded into OUTPUT_DIR/../CATT_RIRs when absent",
        )
        parser.add_argument(
            "--reproduce_published_reverb", action="store_true",
            help="reverb variant: reproduce the published convolution (its right ear is the source through the "
            "sum of both BRIRs), only to compare with published numbers",
        )

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> "ReverbVariant":
        return cls(args.brir_dir, "published" if args.reproduce_published_reverb else "per_ear", room_seed=args.seed)

    def overflow(self, official: bool) -> str:
        return "wrap" if official and self.reverb_mode == "published" else "clip"

    def options(self) -> dict[str, Any]:
        rooms = {"brir_set": "simulated", "room_seed": self.room_seed} if self.simulated else {"brir_set": "BRIR Sim Set"}
        return {"reverb_mode": self.reverb_mode} | rooms

    def sources(self) -> dict[str, str]:
        return {"brir_dir": self.brir_dir or "downloaded (CATT_RIRs)"}

    def metadata_files(self, metadata_dir: Path, n_spks: int, split: str) -> tuple[Path, ...]:
        from binaural.data.metadata import metadata_paths
        from binaural.data.rooms import reverb_meta_path

        paths = metadata_paths(metadata_dir, n_spks, split)
        return (paths["filenames"], paths["scaling"], reverb_meta_path(metadata_dir, split))

    def load_specs(self, metadata_dir, n_spks, split, freqs, modes):
        from binaural.data.rooms import load_reverb_split

        return load_reverb_split(metadata_dir, split, freqs, modes)

    def draw_own_metadata(self, metadata_dir: Path, n_spks: int, splits: Sequence[str], seed: int) -> None:
        """Draw ``hrtf_reverb_meta_<split>.csv`` (a room and two azimuths per mixture) where it lacks."""
        from binaural.data.metadata import load_split
        from binaural.data.rooms import draw_reverb_meta, reverb_meta_path, write_reverb_meta

        for split in splits:
            path = reverb_meta_path(metadata_dir, split)
            if not path.exists():
                names = [spec.output_filename for spec in load_split(metadata_dir, n_spks, split)]
                write_reverb_meta(path, draw_reverb_meta(names, split, seed))

    def prepare(self, inputs: BuildInputs) -> Renderer:
        from binaural.data.rooms import open_brir_set

        parent = inputs.download_parent
        brir_set = open_brir_set(self.brir_dir, parent, parent / SIMULATED_BRIR_FOLDER, self.room_seed, inputs.progress)
        # Every BRIR is there (or simulated into the cache) before any output is written.
        brir_set.check({(s.reverb_time, az) for s in inputs.specs for az in s.azimuths}, inputs.workers, inputs.progress)
        return _ReverbRenderer(self, inputs, brir_set)
