#!/usr/bin/env python3
"""Train and evaluate a binaural Conv-TasNet on Binaural WSJ0-2mix / WSJ0-3mix.

Reproduces SpeechBrain's ``recipes/BinauralWSJ0Mix/separation`` (Han, Luo & Mesgarani,
"Real-time binaural speech separation with preserved spatial cues", ICASSP 2020)::

    python train.py hparams/convtasnet-parallel.yaml --data_folder D --wsj_root W
    python train.py hparams/convtasnet-parallel.yaml --data_folder D --wsj_root W --test_only
    torchrun --nproc_per_node=2 train.py hparams/convtasnet-parallel.yaml --data_folder D --wsj_root W
    python -m torch.distributed.launch --nproc_per_node=2 train.py hparams/convtasnet-parallel.yaml \\
        --data_folder D --wsj_root W --distributed_launch --distributed_backend='nccl'

The YAML file is the whole experiment: the separator (``Model``, one of the classes of
``binaural_tasnet``), its lobes, the loss, the optimiser, the augmentations and every number.
This script never looks at ``experiment_name``; it only runs the stages:

1. data: make sure ``data_folder`` holds the complete dataset the YAML's ``dataset_options``
   describe (:func:`dataset.ensure_dataset`: its record says which parts are complete; what lacks
   is generated from ``wsj_root``, a folder made with other options is refused), then write the CSV
   manifests (``prepare_data``), both on the main process only; with
   ``dynamic_mixing: True`` the training mixtures are made on the fly instead (the YAML's
   ``dynamic_mixing_dataset``), validation and test stay the generated ones;
2. training (:class:`Separation`, a SpeechBrain ``Brain``): negative SNR with permutation-invariant
   training (each ear's SNR, averaged), augmentations applied identically to both ears, the
   best checkpoint kept by validation SNR, resumable;
3. test: the best checkpoint, ``metrics.evaluate_utterance`` per utterance, ``test_results.csv``.

Shapes follow the recipe: a binaural signal is ``[batch, time, ear]`` (ear 0 = left, 1 = right),
a set of talkers ``[batch, time, ear, speaker]``; time in samples at ``sample_rate`` Hz; losses
in dB (negative SNR, lower is better).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
from speechbrain.utils.distributed import if_main_process, is_distributed_initialized, run_on_main
from speechbrain.utils.logger import get_logger

from checkpoints import VALID_SNR_KEY, IntactCheckpointer
from dataset import GenerationOptions, ensure_dataset
from errors import RecipeError
from layout import SPLITS, freq_name

logger = get_logger(__name__)

#: Checkpoint meta key holding the validation SNR in dB (higher is better).
CKPT_KEY = VALID_SNR_KEY


# ==================================================================================================
# Command line
# ==================================================================================================

_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
# torch.distributed.launch adds "--local-rank=N" (older torch: "--local_rank=N"); the rank is in
# the environment too (LOCAL_RANK), which is where SpeechBrain reads it.
_LOCAL_RANK_FLAGS = ("--local-rank", "--local_rank")


def translate_argv(argv: Sequence[str]) -> list[str]:
    """Rewrite legacy launcher arguments into what SpeechBrain 1.1's ``parse_arguments`` accepts.

    * ``--local-rank=N`` / ``--local_rank N`` (added by ``torch.distributed.launch``): dropped,
      SpeechBrain takes the rank from the ``RANK`` / ``LOCAL_RANK`` environment variables.
    * ``--distributed_launch [True|False]``: dropped; SpeechBrain 1.1 no longer has the flag and
      detects a distributed launch from the same environment variables.
    * ``--test_only [True|False]`` / ``--test_only=VALUE``: the bare flag when true, nothing when
      false (SpeechBrain's ``--test_only`` takes no value; a value would become a YAML override).

    Every other argument is kept, in order.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, has_value, value = arg.partition("=")
        following = argv[i + 1] if i + 1 < len(argv) else None
        if name in _LOCAL_RANK_FLAGS:
            if not has_value and following is not None and following.lstrip("-").isdigit():
                i += 1  # the separate value of "--local_rank N"
        elif name in ("--distributed_launch", "--test_only"):
            if has_value:
                flag = _parse_bool(name, value)
            elif following is not None and following.lower() in _BOOL_WORDS:
                flag = _BOOL_WORDS[following.lower()]
                i += 1
            else:
                flag = True
            if name == "--test_only" and flag:
                out.append("--test_only")
        else:
            out.append(arg)
        i += 1
    return out


def _parse_bool(flag: str, value: str) -> bool:
    if value.lower() not in _BOOL_WORDS:
        raise RecipeError(f"{flag}={value}: expected True or False (or the bare flag {flag})")
    return _BOOL_WORDS[value.lower()]


# ==================================================================================================
# Augmentations: small pure functions on [batch, time, ear, speaker] tensors
# ==================================================================================================


def speed_perturb_sources(
    sources: torch.Tensor, perturb: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Speed-perturb each talker, with ONE factor for both ears of that talker.

    ``perturb`` maps ``[batch, time, ear] -> [batch, time', ear]`` with a single (random) speed per
    call, as ``speechbrain.augment.time_domain.SpeedPerturb`` does; it is called once per talker
    on both ears together, so the resampling of the two ears is the same linear operation and
    the interaural level and time differences survive (the ITD scales with the speed like every
    other duration). Talkers get independent factors, as in the published recipe.

    Arguments
    ---------
    sources : torch.Tensor
        ``[batch, time, ear, speaker]``.
    perturb : callable
        ``[batch, time, ear] -> [batch, time', ear]``.

    Returns
    -------
    torch.Tensor
        ``[batch, time'', ear, speaker]``, cut to the shortest perturbed talker.
    """
    perturbed = [perturb(sources[..., k]) for k in range(sources.shape[-1])]  # S x [batch, time_k, ear]
    length = min(p.shape[1] for p in perturbed)
    return torch.stack([p[:, :length] for p in perturbed], dim=-1)  # [batch, time'', ear, speaker]


def draw_shifts(
    n_spks: int,
    min_shift: int,
    max_shift: int,
    independent: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random circular shifts in samples, uniform in ``[min_shift, max_shift)``.

    Returns ``[speaker]`` (int64): one value repeated for every talker when ``independent`` is
    False (the whole scene moves), a value per talker when True (the published recipe: talkers
    move relative to each other). Both ears of a talker always share its shift.
    """
    if max_shift <= min_shift:
        raise RecipeError(f"the random shift needs min_shift < max_shift, got {min_shift} and {max_shift}")
    n_draws = n_spks if independent else 1
    shifts = torch.randint(min_shift, max_shift, (n_draws,), generator=generator)  # [n_draws]
    return shifts.expand(n_spks).clone()  # [speaker]


def shift_sources(sources: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll talker ``k`` by ``shifts[k]`` samples along time, both ears alike (ITD kept).

    Arguments
    ---------
    sources : torch.Tensor
        ``[batch, time, ear, speaker]``.
    shifts : torch.Tensor
        ``[speaker]`` integer shifts in samples (positive: later).

    Returns
    -------
    torch.Tensor
        ``[batch, time, ear, speaker]``.
    """
    if shifts.shape != (sources.shape[-1],):
        raise ValueError(f"need one shift per talker ({sources.shape[-1]}), got shape {tuple(shifts.shape)}")
    rolled = [torch.roll(sources[..., k], shifts=int(shifts[k]), dims=1) for k in range(sources.shape[-1])]
    return torch.stack(rolled, dim=-1)  # [batch, time, ear, speaker]


def sum_sources(sources: torch.Tensor) -> torch.Tensor:
    """The mixture of perturbed talkers: ``[batch, time, ear, speaker] -> [batch, time, ear]``.

    After speed perturbation or shifting, the stored mixture no longer matches the targets; the
    sum of the perturbed binaural talkers is the mixture they make.
    """
    return sources.sum(dim=-1)


def with_noise(targets: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """The signals an augmentation must move together: the talkers, and the noise as one more.

    ``[batch, time, ear, speaker]`` and ``[batch, time, ear]`` -> ``[batch, time, ear, speaker + 1]``
    (the noise last); ``targets`` itself without noise. The noisy mixture is talkers + noise: when
    the talkers are speed-perturbed or shifted, the mixture is rebuilt from them, and the noise
    goes through the same steps (its own speed factor, the scene's shift) so it is added back,
    cut to the same length, instead of being silently dropped.
    """
    if noise is None:
        return targets
    if noise.shape != targets.shape[:3]:
        raise RecipeError(
            f"noise_sig has shape {tuple(noise.shape)} but the talkers {tuple(targets.shape[:3])} (batch, time, ear): "
            "the noise file of a noisy mixture must be as long as its sources; regenerate the data"
        )
    return torch.cat([targets, noise.unsqueeze(-1)], dim=-1)


def random_segment(
    mix: torch.Tensor, sources: torch.Tensor, length: int, start: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same ``length``-sample window of the mixture and of every talker and ear.

    Arguments
    ---------
    mix : torch.Tensor
        ``[batch, time, ear]``.
    sources : torch.Tensor
        ``[batch, time, ear, speaker]``.
    length : int
        Window length in samples (signals shorter than that are returned whole).
    start : int, optional
        First sample; drawn uniformly when not given.

    Returns
    -------
    tuple of torch.Tensor
        ``[batch, time', ear]`` and ``[batch, time', ear, speaker]``, ``time' = min(time, length)``.
    """
    if length <= 0:
        raise RecipeError(f"training_signal_len must be a positive number of samples, got {length}")
    if start is None:
        start = int(torch.randint(0, 1 + max(0, mix.shape[1] - length), (1,)))
    return mix[:, start : start + length], sources[:, start : start + length]


def select_training_loss(
    losses: torch.Tensor, threshold: float | None, upper_limit: float
) -> tuple[torch.Tensor | None, str]:
    """The loss to back-propagate from per-example losses, or ``None`` to learn nothing.

    Examples already better than ``threshold`` (negative SNR in dB, e.g. -30 = 30 dB SNR) are
    dropped, so training time goes to the hard ones (the published ``threshold_byloss``).

    Arguments
    ---------
    losses : torch.Tensor
        ``[batch]`` negative SNR in dB.
    threshold : float or None
        Keep only ``losses > threshold``; ``None`` keeps all.
    upper_limit : float
        Losses at or above it (and non-finite ones) reject the batch (``loss_upper_lim``).

    Returns
    -------
    (loss, verdict)
        ``(mean of the kept losses, "ok")``, ``(None, "nonfinite")`` when the batch's loss is
        NaN/inf or not below ``upper_limit``, ``(None, "below_threshold")`` when every example
        is already better than the threshold.
    """
    if not bool(torch.isfinite(losses).all()):
        return None, "nonfinite"
    kept = losses if threshold is None else losses[losses > threshold]
    if kept.numel() == 0:
        return None, "below_threshold"
    loss = kept.mean()
    if not loss < upper_limit:
        return None, "nonfinite"
    return loss, "ok"


# ==================================================================================================
# Loss and saved audio
# ==================================================================================================


def separation_loss(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    estimates: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """Per-example permutation-invariant loss, computed in fp32 whatever the autocast state.

    ``loss_fn`` is the YAML's ``loss`` (``speechbrain.nnet.losses.get_snr_with_pitwrapper``:
    negative SNR of each ear, averaged over ears and talkers, under the best talker permutation;
    not SI-SNR, whose scale invariance lets each ear's gain drift and breaks the ILD). The SNR is
    a ratio of sums over the whole utterance and a log: in bf16 it would lose its decimals, so the
    loss always runs with autocast off.

    Arguments
    ---------
    estimates, targets : torch.Tensor
        ``[batch, time, ear, speaker]``.

    Returns
    -------
    torch.Tensor
        ``[batch]`` negative SNR in dB.
    """
    with torch.autocast(device_type=estimates.device.type, enabled=False):
        return loss_fn(targets.float(), estimates.float())


def peak_normalize(signal: np.ndarray, peak: float = 1.0) -> tuple[np.ndarray, float]:
    """Scale a binaural signal so its largest sample is ``peak``, with ONE factor for both ears.

    The published recipe divides each ear by its own peak, which erases the interaural level
    difference of every saved file; one common factor keeps it. A silent signal is returned as is.

    Arguments
    ---------
    signal : np.ndarray
        ``[time, ear]``.
    peak : float
        Target peak magnitude (full scale = 1.0).

    Returns
    -------
    (scaled, factor)
        ``[time, ear]`` float64 and the factor applied.
    """
    signal = np.asarray(signal, dtype=np.float64)
    largest = float(np.max(np.abs(signal))) if signal.size else 0.0
    factor = peak / largest if largest > 0 else 1.0
    return signal * factor, factor


def to_pcm16(signal: np.ndarray) -> np.ndarray:
    """``[time, ear]`` in [-1, 1] -> int16 by rounding ``x * 32767``: full scale never clips."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.size and float(np.max(np.abs(signal))) > 1.0:
        raise ValueError("to_pcm16 needs samples within [-1, 1]; peak_normalize the signal first")
    return np.round(signal * 32767.0).astype(np.int16)


def save_binaural_wav(path: Path, signal: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write ``[time, ear]`` as a 16-bit stereo wav, peak-normalised with one factor for both ears."""
    from audio_io import write_atomic

    if isinstance(signal, torch.Tensor):
        signal = signal.detach().float().cpu().numpy()
    scaled, _ = peak_normalize(signal)
    write_atomic(Path(path), to_pcm16(scaled), sample_rate, subtype="PCM_16")


# ==================================================================================================
# Data: generation, manifests, datasets
# ==================================================================================================


def dataset_options(hparams: dict, splits: Sequence[str]) -> GenerationOptions:
    """The YAML's ``dataset_options`` (:class:`dataset.GenerationOptions`) for the ``splits`` this run needs.

    Raises
    ------
    RecipeError
        The hparams file declares no ``dataset_options`` (one written before the dataset record),
        or its rates and length modes do not hold ``sample_rate`` and ``length_mode``.
    """
    options = hparams.get("dataset_options")
    if not isinstance(options, GenerationOptions):
        raise RecipeError(
            "the hparams file has no `dataset_options: !new:dataset.GenerationOptions` (with `data_variant: "
            "!new:data_variants.CleanVariant` or another variant): add them as hparams/convtasnet-parallel.yaml has them"
        )
    freq = freq_name(hparams["sample_rate"])
    if freq not in options.freqs:
        raise RecipeError(f"sample_rate {hparams['sample_rate']} needs '{freq}' in data_freqs (got {list(options.freqs)})")
    if hparams["length_mode"] not in options.modes:
        raise RecipeError(f"length_mode {hparams['length_mode']} must be one of data_modes {list(options.modes)}")
    if options.n_spks != hparams["num_spks"]:
        raise RecipeError(f"dataset_options has n_spks={options.n_spks} but num_spks is {hparams['num_spks']}")
    return dataclasses.replace(options, splits=tuple(splits), progress=sys.stderr.isatty())


def read_binaural(path: str, sample_rate: int) -> torch.Tensor:
    """Read a stereo wav as float32 ``[time, ear]`` in [-1, 1], checking its rate, channels and length.

    ``audio_io`` refuses a file whose header announces more samples than it holds (a truncated
    copy would otherwise train as a shorter utterance).
    """
    from audio_io import read_float

    if not os.path.isfile(path):
        raise RecipeError(f"{path}: file not found; regenerate the data or rerun without skip_prep")
    audio, rate = read_float(Path(path), dtype="float32")  # [time, ear]; one header check, in the loader
    if rate != sample_rate:
        raise RecipeError(
            f"{path}: {rate} Hz but sample_rate is {sample_rate}; set --sample_rate {rate} or "
            f"use the wav{freq_name(sample_rate)} data"
        )
    if audio.shape[1] != 2:
        raise RecipeError(
            f"{path}: {audio.shape[1]} channel(s), expected 2 (left, right); "
            "the binaural recipe needs the stereo Binaural WSJ0-mix files"
        )
    return torch.from_numpy(audio)


def signal_keys(n_spks: int) -> list[str]:
    """Dataset item keys of the signals: ``["mix_sig", "s1_sig", ..., "s{n}_sig"]``."""
    return ["mix_sig"] + [f"s{k}_sig" for k in range(1, n_spks + 1)]


def static_dataset(
    csv_path: str | Path, n_spks: int, sample_rate: int, data_folder: str | Path
) -> sb.dataio.dataset.DynamicItemDataset:
    """A SpeechBrain dataset of one manifest, yielding ``{"id", "mix_sig", "s1_sig", ...[, "noise_sig"]}``.

    Each ``*_sig`` is float32 ``[time, ear]``: the same items as the dynamic-mixing dataset, so the
    training step does not know which one it gets. A manifest with a ``noise_wav`` column (the
    noisy variant) gives ``noise_sig`` too: the training augmentations add it back to the talkers
    they perturb. ``$data_root`` in the CSV (the published manifests' placeholder) is replaced by
    ``data_folder``.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise RecipeError(f"{csv_path}: manifest not found; run without skip_prep to write it")
    with open(csv_path, encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    needed = ["ID", "mix_wav"] + [f"s{k}_wav" for k in range(1, n_spks + 1)]
    absent = [column for column in needed if column not in header]
    if absent:
        raise RecipeError(
            f"{csv_path}: no column {', '.join(absent)} (num_spks is {n_spks}); regenerate the "
            "manifest for this talker count (run without skip_prep)"
        )
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(
        csv_path=str(csv_path), replacements={"data_root": str(data_folder)}
    )
    reader = functools.partial(read_binaural, sample_rate=sample_rate)
    keys = signal_keys(n_spks) + (["noise_sig"] if "noise_wav" in header else [])
    for key in keys:
        name = key[: -len("_sig")]
        dataset.add_dynamic_item(reader, takes=f"{name}_wav", provides=key)
    dataset.set_output_keys(["id"] + keys)
    return dataset


def dynamic_mixing_factory(hparams: dict) -> Callable[[], torch.utils.data.Dataset]:
    """The YAML's ``dynamic_mixing_dataset`` factory, after checking that it can work.

    The dynamic-mixing dataset plugs in through the YAML: ``dynamic_mixing_dataset`` is a
    ``!name:`` factory, called with no argument (its arguments bound in the YAML), returning a
    torch Dataset of the same items as :func:`static_dataset`, optionally with ``set_epoch(epoch)``
    (called at the start of every training epoch) and sharding itself across DDP ranks.
    """
    base = Path(hparams["base_folder_dm"])
    if not base.is_dir():
        raise RecipeError(
            f"dynamic_mixing: True draws utterances from base_folder_dm={base}, which is not a folder; "
            "set --base_folder_dm (default <wsj_root>/wsj0/si_tr_s/)"
        )
    factory = hparams.get("dynamic_mixing_dataset")
    if factory is None:
        raise RecipeError(
            "dynamic_mixing: True needs dynamic_mixing_dataset in the hparams file, e.g. "
            "`dynamic_mixing_dataset: !name:dynamic_mixing.DynamicMixingDataset` with its arguments "
            "(the dataset to train on); set it, or set dynamic_mixing: False"
        )
    return factory


def training_set(
    hparams: dict, static_train: torch.utils.data.Dataset, options: GenerationOptions
) -> torch.utils.data.Dataset:
    """The training data: the static manifest's dataset, or the dynamic-mixing one when asked for.

    The dynamic-mixing dataset is the YAML's factory, with what the data set adds to it: with own
    metadata its listeners are the training heads of the own split (``listener_split="own"``; the
    official CIPIC split would let own-mode validation/test heads into training), and the data
    variant's own options (:meth:`data_variants.DataVariant.dynamic_mixing_options`, e.g. diotic
    noise when the generated noise is). Start-up errors name the file and the fix.
    """
    if not hparams["dynamic_mixing"]:
        return static_train
    factory = dynamic_mixing_factory(hparams)
    variant = options.variant
    arguments = {"listener_split": "own"} if options.own_metadata else {}
    arguments |= variant.dynamic_mixing_options()
    if variant.uses_hrtf and options.hrtf_dir is not None and str(options.hrtf_dir) != str(hparams["hrtf_dm"]):
        logger.warning(
            f"dynamic mixing places the talkers with hrtf_dm={hparams['hrtf_dm']}, but the data was generated with "
            f"hrtf_dir={options.hrtf_dir}: set --hrtf_dm to the same HRTF set to train on the heads you test on"
        )
    noise_folder = getattr(factory, "keywords", {}).get("noise_folder")
    if noise_folder is not None and not Path(noise_folder).is_dir():
        raise RecipeError(
            f"noise_folder_dm={noise_folder}: no such folder. Dynamic mixing adds the DEMAND noise of "
            "the training environments (noise_files_dm) from there: set --noise_folder_dm to your DEMAND copy "
            "(the --noise_root the data was generated with)"
        )
    try:
        dataset = factory(**arguments)
    except RecipeError as error:
        raise RecipeError(f"dynamic mixing: {error}") from error
    variant.check_dynamic_mixing(dataset)
    placer = getattr(dataset, "placer", None)
    logger.info(f"dynamic mixing: training on {dataset!r}" + (f", talkers placed by {placer!r}" if placer else ""))
    return dataset


# ==================================================================================================
# The Brain
# ==================================================================================================


def _gather(value: object) -> list:
    """``value`` of every rank, in rank order (``[value]`` when not distributed)."""
    if not is_distributed_initialized():
        return [value]
    values: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(values, value)
    return values


def stack_signals(batch, n_spks: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixture ``[batch, time, ear]``, targets ``[batch, time, ear, speaker]``, relative lengths ``[batch]``."""
    mix, lengths = batch.mix_sig  # PaddedData: [batch, time, ear], [batch]
    targets = torch.stack([getattr(batch, f"s{k}_sig").data for k in range(1, n_spks + 1)], dim=-1)
    return mix, targets, lengths


def batch_noise(batch) -> torch.Tensor | None:
    """The batch's noise ``[batch, time, ear]`` (noisy variant), or None."""
    noise = getattr(batch, "noise_sig", None)
    return None if noise is None else noise.data


class Separation(sb.Brain):
    """The training, validation and test steps of the recipe.

    ``self.modules.model`` is the YAML's ``Model`` (``[batch, time, ear] -> [batch, time, ear,
    speaker]``); every other ingredient is an hparam: ``loss``, ``speed_perturb``, ``drop_chunk``,
    ``drop_freq``, ``lr_scheduler`` (called as ``scheduler([optimizer], epoch, valid_loss)``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        run_opts = kwargs.get("run_opts") or {}
        # Options given explicitly (command line, or the keys of a run_opts dict) win over hparams.
        overridden = set(run_opts) if isinstance(run_opts, dict) else run_opts.overridden_args
        # The published key clip_grad_norm sets SpeechBrain's clipping unless --max_grad_norm is given;
        # SpeechBrain 1.1 clips with whatever it gets, and a negative norm would flip the gradients:
        # a negative value means "no clipping" as in the published recipe.
        norm = self.max_grad_norm if "max_grad_norm" in overridden else self.hparams.clip_grad_norm
        self.max_grad_norm = float(norm) if norm >= 0 else float("inf")
        self._accepted_since_step = 0
        self.below_threshold_count = 0
        self.n_train_batches = 0
        self.test_rows: list[dict] = []
        self.n_audio_saved = 0
        self.train_stats: dict = {}

    # ---------------------------------------------------------------------------------- forward
    def compute_forward(self, batch, stage):
        """Separate the batch's mixtures (augmented for training).

        Returns
        -------
        (estimates, targets, mix)
            ``[batch, time, ear, speaker]``, ``[batch, time, ear, speaker]``, ``[batch, time, ear]``;
            ``targets`` and ``mix`` after the augmentations in the TRAIN stage.
        """
        mix, targets, lengths = stack_signals(batch, self.hparams.num_spks)
        mix, targets, lengths = mix.to(self.device), targets.to(self.device), lengths.to(self.device)
        if stage == sb.Stage.TRAIN:
            noise = batch_noise(batch)
            mix, targets = self.augment(mix, targets, lengths, None if noise is None else noise.to(self.device))
        estimates = self.modules.model(mix)  # [batch, time, ear, speaker]
        return estimates, targets, mix

    def augment(
        self, mix: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training augmentations selected in the YAML, in the published order.

        Runs in fp32 (autocast off): the resamplers and filters would otherwise write bf16 targets.

        Arguments
        ---------
        mix : torch.Tensor
            ``[batch, time, ear]``.
        targets : torch.Tensor
            ``[batch, time, ear, speaker]``.
        lengths : torch.Tensor
            ``[batch]`` relative lengths (for the chunk dropper).
        noise : torch.Tensor, optional
            ``[batch, time, ear]``, the noise in ``mix`` (noisy variant). When the talkers are
            perturbed the mixture is rebuilt as their sum plus this noise, perturbed with them
            (:func:`with_noise`).
        """
        hp = self.hparams
        with torch.no_grad(), torch.autocast(device_type=self.device_type, enabled=False):
            if hp.use_speedperturb or hp.use_rand_shift:
                n_talkers = targets.shape[-1]
                signals = with_noise(targets, noise)  # [batch, time, ear, speaker (+ noise)]
                if hp.use_speedperturb:
                    signals = speed_perturb_sources(signals, hp.speed_perturb)
                if hp.use_rand_shift:
                    shifts = draw_shifts(signals.shape[-1], hp.min_shift, hp.max_shift, hp.independent_shifts)
                    signals = shift_sources(signals, shifts)
                targets = signals[..., :n_talkers]
                mix = sum_sources(signals)  # the talkers, and the noise when there is one
            if hp.use_wavedrop:
                # The same chunks and bands vanish from both ears (SpeechBrain treats the last
                # axis as channels): the mixture's interaural cues stay consistent.
                mix = hp.drop_chunk(mix, lengths)
                mix = hp.drop_freq(mix)
            if hp.limit_training_signal_len:
                mix, targets = random_segment(mix, targets, hp.training_signal_len)
        return mix, targets

    def compute_objectives(self, predictions, batch, stage) -> torch.Tensor:
        """``[batch]`` negative SNR in dB (PIT over talkers, SNR averaged over both ears), fp32."""
        estimates, targets, _ = predictions
        return separation_loss(self.hparams.loss, estimates, targets)

    # ---------------------------------------------------------------------------------- training
    def fit_batch(self, batch):
        """One training step with the published loss thresholding and non-finite guard.

        A rejected batch (non-finite loss, loss above ``loss_upper_lim``, or every example better
        than ``threshold``) still back-propagates an exact zero: under DDP every rank must take
        part in the gradient all-reduce, or the others would wait forever.
        """
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.n_train_batches += 1
        self.on_fit_batch_start(batch, should_step)
        with self.no_sync(not should_step):
            with self.training_ctx:
                predictions = self.compute_forward(batch, sb.Stage.TRAIN)
            losses = self.compute_objectives(predictions, batch, sb.Stage.TRAIN)  # [batch]
            threshold = self.hparams.threshold if self.hparams.threshold_byloss else None
            loss, verdict = select_training_loss(losses, threshold, self.hparams.loss_upper_lim)
            if loss is None:
                self._count_rejected(verdict)
                loss = self._zero_loss()
            else:
                self._accepted_since_step += 1
            self.scaler.scale(loss / self.grad_accumulation_factor).backward()
        if should_step:
            self.optimizers_step()
        self.on_fit_batch_end(batch, predictions, loss, should_step)
        finite = bool(torch.isfinite(losses).all())
        # The logged training loss is that of every example (what the model achieves), 0 when
        # non-finite as in the published recipe, so one bad batch does not poison the average.
        return losses.detach().mean().cpu() if finite else torch.tensor(0.0)

    def _count_rejected(self, verdict: str) -> None:
        if verdict == "nonfinite":
            self.nonfinite_count += 1
            logger.info(
                f"non-finite loss or loss >= loss_upper_lim: batch skipped "
                f"({self.nonfinite_count} so far this epoch)"
            )
        else:
            self.below_threshold_count += 1

    def _zero_loss(self) -> torch.Tensor:
        """An exact zero that depends on every trainable parameter (zero gradients everywhere)."""
        params = [p for p in self.modules.parameters() if p.requires_grad]
        return torch.stack([p.sum() for p in params]).sum() * 0.0

    def optimizers_step(self) -> None:
        """Step, unless no batch since the last step was accepted on any rank (published: skip)."""
        accepted = self._accepted_since_step
        if is_distributed_initialized():
            count = torch.tensor([accepted], device=self.device)
            torch.distributed.all_reduce(count)  # every rank takes the same decision
            accepted = int(count.item())
        self._accepted_since_step = 0
        if accepted == 0:
            self.zero_grad(set_to_none=True)
            return
        super().optimizers_step()

    def on_fit_start(self) -> None:
        # SpeedPerturb resamples on the device it was built for (CPU by default); run it where the
        # batch is instead of copying every batch to the CPU and back.
        if hasattr(self.hparams.speed_perturb, "device"):
            self.hparams.speed_perturb.device = self.device
        super().on_fit_start()  # DDP wrapping, optimiser, resume from the latest checkpoint

    # ---------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate_batch(self, batch, stage):
        """Validation loss; in the TEST stage also the per-utterance metrics and saved audio."""
        with self.evaluation_ctx:
            predictions = self.compute_forward(batch, stage)
        losses = self.compute_objectives(predictions, batch, stage)  # [batch]
        if stage == sb.Stage.TEST and if_main_process():
            self.score_test_batch(batch, predictions)
        return losses.mean().detach().cpu()

    def score_test_batch(self, batch, predictions) -> None:
        """``metrics.evaluate_utterance`` for each utterance of the batch (unpadded), saving audio."""
        from metrics import best_permutation, evaluate_utterance

        estimates, targets, mix = predictions
        lengths = batch.mix_sig.lengths
        for i, utt_id in enumerate(batch.id):
            n = round(float(lengths[i]) * mix.shape[1])
            mix_i = mix[i, :n].float().cpu()  # [time, ear]
            targets_i = targets[i, :n].float().cpu()  # [time, ear, speaker]
            estimates_i = estimates[i, :n].float().cpu()  # [time, ear, speaker]
            row = {"snt_id": utt_id}
            row.update(evaluate_utterance(mix_i, targets_i, estimates_i, self.hparams.sample_rate))
            self.test_rows.append(row)
            if self.hparams.save_audio and self.n_audio_saved < self.hparams.n_audio_to_save:
                order = list(best_permutation(targets_i, estimates_i))
                self.save_audio(utt_id, mix_i, targets_i, estimates_i[..., order])
                self.n_audio_saved += 1

    def save_audio(
        self, utt_id: str, mix: torch.Tensor, targets: torch.Tensor, estimates: torch.Tensor
    ) -> None:
        """Stereo wavs of one test utterance in ``audio_results_folder`` (published file names).

        ``item<id>_mix.wav``, ``item<id>_source<k>.wav`` (target) and ``item<id>_source<k>hat.wav``
        (estimate, in the target's order); each file is normalised with one factor for both ears.
        """
        folder = Path(self.hparams.audio_results_folder)
        rate = self.hparams.sample_rate
        save_binaural_wav(folder / f"item{utt_id}_mix.wav", mix, rate)
        for k in range(targets.shape[-1]):
            save_binaural_wav(folder / f"item{utt_id}_source{k + 1}.wav", targets[..., k], rate)
            save_binaural_wav(folder / f"item{utt_id}_source{k + 1}hat.wav", estimates[..., k], rate)

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Load the best intact checkpoint (``checkpoints.IntactCheckpointer.find_best_checkpoint``:
        ours by ``valid_snr``, a published SpeechBrain experiment by its negative ``snr``); refuse
        to evaluate an untrained model or one whose every checkpoint is damaged."""
        checkpoint, reason = self.checkpointer.find_best_checkpoint(min_key=min_key, max_key=max_key)
        if checkpoint is None:
            raise RecipeError(no_checkpoint_message(self.checkpointer))
        logger.info(f"evaluating {checkpoint.path} ({reason})")
        self.checkpointer.load_checkpoint(checkpoint)

    # ---------------------------------------------------------------------------------- stages
    def on_stage_start(self, stage, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.below_threshold_count = 0
            self.n_train_batches = 0
            self._accepted_since_step = 0
            dataset = getattr(self, "train_dataset", None)
            if hasattr(dataset, "set_epoch"):  # the dynamic-mixing dataset draws per epoch
                dataset.set_epoch(epoch)
        elif stage == sb.Stage.TEST:
            self.test_rows = []
            self.n_audio_saved = 0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            counts = _gather((self.n_train_batches, self.nonfinite_count, self.below_threshold_count))
            logger.info(f"epoch {epoch}: training batches per rank {[c[0] for c in counts]}")
            self.train_stats = {
                "loss": stage_loss,
                "nonfinite_count": sum(c[1] for c in counts),
                "below_threshold_count": sum(c[2] for c in counts),
            }
        elif stage == sb.Stage.VALID:
            current_lr, next_lr = self.hparams.lr_scheduler([self.optimizer], epoch, stage_loss)
            sb.nnet.schedulers.update_learning_rate(self.optimizer, next_lr)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": current_lr},
                train_stats=self.train_stats,
                valid_stats={"loss": stage_loss, "snr": -stage_loss},
            )
            # Keeps the latest checkpoint (to resume) and the best one by validation SNR.
            self.checkpointer.save_and_keep_only(meta={CKPT_KEY: -stage_loss}, max_keys=[CKPT_KEY])
        elif stage == sb.Stage.TEST:
            self.write_test_results(stage_loss)

    def write_test_results(self, stage_loss: float) -> None:
        """``test_results.csv`` (one row per utterance and ``avg``) and the averages in the logs."""
        average = None
        if if_main_process():
            from metrics import write_results_csv

            path = Path(self.hparams.output_folder) / "test_results.csv"
            average = write_results_csv(self.test_rows, path)
            summary = ", ".join(f"{name} {value:.2f}" for name, value in average.items() if name != "snt_id")
            logger.info(f"test averages over {len(self.test_rows)} utterances ({path}): {summary}")
        average = sb.utils.distributed.ddp_broadcast(average)
        self.hparams.train_logger.log_stats(
            stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
            test_stats={"loss": stage_loss} | {k: v for k, v in average.items() if k != "snt_id"},
        )
        if if_main_process():
            # report.md, its figures and the listening page report.html; a failure there is logged and
            # never loses test_results.csv.
            try:
                from report import PAGE_NAME, write_report

                report = write_report(self.hparams.output_folder)
                logger.info(f"report: {report}; listening page: {report.with_name(PAGE_NAME)}")
            except Exception as error:  # noqa: BLE001 - whatever breaks the report, keep the results
                logger.error(
                    f"the report could not be written ({type(error).__name__}: {error}); test_results.csv is "
                    f"kept: retry with `python report.py {self.hparams.output_folder}`"
                )


def no_checkpoint_message(checkpointer: IntactCheckpointer) -> str:
    """Why ``--test_only`` cannot evaluate: no checkpoint in the folder, or none intact (named)."""
    if checkpointer.damaged:
        return f"{checkpointer.unusable_message()}: nothing to evaluate"
    return (
        f"no trained checkpoint in {checkpointer.checkpoints_dir}: nothing to evaluate. Train first (the same "
        "command without --test_only), or point --output_folder at a trained experiment"
    )


def checked_checkpointer(hparams: dict, hparams_file: str) -> IntactCheckpointer:
    """The hparams file's ``checkpointer``, which must be a ``checkpoints.IntactCheckpointer``."""
    checkpointer = hparams["checkpointer"]
    if not isinstance(checkpointer, IntactCheckpointer):
        raise RecipeError(
            f"{hparams_file}: checkpointer is a {type(checkpointer).__name__}; declare `checkpointer: "
            "!new:checkpoints.IntactCheckpointer` (same arguments) as hparams/convtasnet-parallel.yaml does, so that "
            "a killed save never leaves a checkpoint that resume or --test_only would trust"
        )
    return checkpointer


# ==================================================================================================
# Main
# ==================================================================================================


def run(hparams_file: str, hparams: dict, run_opts, overrides: str) -> None:
    """The recipe's stages (see the module docstring)."""
    test_only = bool(run_opts["test_only"])
    checkpointer = checked_checkpointer(hparams, hparams_file)
    if test_only and checkpointer.find_best_checkpoint()[0] is None:
        raise RecipeError(no_checkpoint_message(checkpointer))

    # An experiment's hyperparams.yaml records what was trained (ours, or a published SpeechBrain
    # one): evaluating it keeps that record rather than writing the evaluation's YAML over it.
    keep_record = test_only and (Path(hparams["output_folder"]) / "hyperparams.yaml").is_file()
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=None if keep_record else hparams_file,
        overrides=overrides,
    )
    n_spks = hparams["num_spks"]
    splits = ("tt",) if test_only else SPLITS
    options = dataset_options(hparams, splits)
    if not test_only and hparams["dynamic_mixing"]:
        dynamic_mixing_factory(hparams)  # fail before generating anything if it cannot work

    if not hparams["skip_prep"]:
        from prepare_data import prepare_binaural_wsj0mix

        # The YAML may declare how to make the talkers' corpus in wsj_root first (make_corpus, a
        # !name: hook with its arguments bound, e.g. hparams/demo.yaml's synthetic corpus); the hook
        # keeps what is already there, so a rerun reuses it.
        if hparams.get("make_corpus") is not None:
            run_on_main(hparams["make_corpus"])
        # The dataset's checks and its generation live beside the generator: one call.
        run_on_main(
            ensure_dataset,
            kwargs={"wsj_root": hparams["wsj_root"], "output_root": hparams["data_folder"], "options": options},
        )
        run_on_main(
            prepare_binaural_wsj0mix,
            kwargs={
                "datapath": hparams["data_folder"],
                "savepath": hparams["save_folder"],
                "n_spks": n_spks,
                "freq": freq_name(hparams["sample_rate"]),
                "mode": hparams["length_mode"],
                "splits": splits,
                "variant": options.variant,
            },
        )

    manifests = {"tr": hparams["train_data"], "cv": hparams["valid_data"], "tt": hparams["test_data"]}
    datasets = {
        split: static_dataset(manifests[split], n_spks, hparams["sample_rate"], hparams["data_folder"])
        for split in splits
    }
    separator = Separation(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=checkpointer,
    )
    if not test_only:
        train_data = training_set(hparams, datasets["tr"], options)
        separator.train_dataset = train_data  # on_stage_start calls its set_epoch, if it has one
        # PaddedBatch explicitly: SpeechBrain picks it only for its own DynamicItemDataset.
        train_opts = {"collate_fn": sb.dataio.batch.PaddedBatch} | hparams["dataloader_opts"]
        if train_data is not datasets["tr"]:
            # The dynamic-mixing dataset shards itself across DDP ranks: hand the Brain a loader,
            # or it would add a DistributedSampler and shard the epoch a second time.
            train_data = sb.dataio.dataloader.make_dataloader(train_data, **train_opts)
        separator.fit(
            hparams["epoch_counter"],
            train_data,
            datasets["cv"],
            train_loader_kwargs=train_opts,
            valid_loader_kwargs=dict(hparams["valid_dataloader_opts"]),
        )
    # The best checkpoint by the key its folder holds (checkpoints.KNOWN_CHECKPOINT_KEYS: ours, published).
    separator.evaluate(datasets["tt"], test_loader_kwargs=dict(hparams["test_dataloader_opts"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from hyperpyyaml import load_hyperpyyaml

    raw = list(sys.argv[1:] if argv is None else argv)
    try:
        args = translate_argv(raw)
    except RecipeError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    if any(a.split("=")[0] == "--distributed_launch" for a in raw) and "RANK" not in os.environ:
        print("train.py: warning: --distributed_launch without a launcher (no RANK in the environment): "
              "running one process; start with torchrun --nproc_per_node=N for DDP", file=sys.stderr)
    hparams_file, run_opts, overrides = sb.parse_arguments(args)
    if not os.path.isfile(hparams_file):
        print(f"train.py: error: {hparams_file}: hparams file not found (e.g. hparams/convtasnet-parallel.yaml)",
              file=sys.stderr)
        return 2
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)

    # Multi-process (DDP) set-up from the launcher's environment (RANK, LOCAL_RANK, WORLD_SIZE).
    sb.utils.distributed.ddp_init_group(run_opts)
    finished = False
    try:
        run(hparams_file, hparams, run_opts, overrides)
        finished = True
    except RecipeError as error:
        message = error_line(error)
        if logging.getLogger().handlers:  # the experiment's log.txt exists: keep the reason there too
            logger.error(message)
        print(f"train.py: error: {message}", file=sys.stderr)
        return 1
    finally:
        if is_distributed_initialized():
            if finished:
                # Tear down together: under load, a rank that destroyed its gloo group and exited
                # while another was still working (rank 0 writes the report after the test) could
                # abort at exit ("terminate called without an active exception").
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    return 0


def error_line(error: RecipeError) -> str:
    """The one line a bad-input error prints.

    An error raised in a DataLoader worker comes back re-raised by torch with the worker's
    traceback in its message ("Caught AudioFileError in DataLoader worker process 0. Original
    Traceback ...: audio_io.AudioFileError: <the message>"); its last line is the message.
    """
    text = str(error).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last and "Error" in last.split(": ", 1)[0] else last


if __name__ == "__main__":
    sys.exit(main())
