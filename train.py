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
``binaural.models``), its lobes, the loss, the optimiser, the augmentations and every number.
This script never looks at ``experiment_name``; it only runs the stages:

1. data: make sure ``data_folder`` holds the complete dataset the YAML's ``dataset_options``
   describe (:func:`binaural.data.generation.ensure_dataset`: its record says which parts are complete; what lacks
   is generated from ``wsj_root``, a folder made with other options is refused), then write the CSV
   manifests (``binaural.data.manifests``), both on the main process only; with
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

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from binaural.training.experiment import experiment_lock, log_to_files, silence_false_messages

silence_false_messages()  # before SpeechBrain, which logs a false warning while it is imported
import speechbrain as sb  # noqa: E402
from speechbrain.utils.distributed import if_main_process, is_distributed_initialized, run_on_main
from speechbrain.utils.logger import get_logger

from binaural.data.corpora import Corpus
from binaural.data.layout import freq_name
from binaural.errors import RecipeError
from binaural.training.augment import draw_shifts, random_segment, shift_sources, speed_perturb_sources, sum_sources, with_noise
from binaural.training.checkpoints import VALID_SNR_KEY, IntactCheckpointer
from binaural.training.arguments import UsageError, check_precision, load_hparams, parse_command_line
from binaural.training.data import dataset_options, dynamic_mixing_factory, static_dataset, training_set
from binaural.training.examples import save_binaural_wav
from binaural.training.losses import select_training_loss, separation_loss

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
        self.saved_ids: set[str] = set()
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
        from binaural.evaluation.metrics import SilentSignalError, best_permutation, evaluate_utterance

        estimates, targets, mix = predictions
        lengths = batch.mix_sig.lengths
        for i, utt_id in enumerate(batch.id):
            n = round(float(lengths[i]) * mix.shape[1])
            mix_i = mix[i, :n].float().cpu()  # [time, ear]
            targets_i = targets[i, :n].float().cpu()  # [time, ear, speaker]
            estimates_i = estimates[i, :n].float().cpu()  # [time, ear, speaker]
            try:
                row = {"snt_id": utt_id, **evaluate_utterance(mix_i, targets_i, estimates_i, self.hparams.sample_rate)}
            except SilentSignalError as error:  # one damaged file does not void the test set: its row is left out
                logger.warning(f"test utterance {utt_id} left out of test_results.csv: {error}")
                continue
            self.test_rows.append(row)
            if self.hparams.save_audio and self.n_audio_saved < self.hparams.n_audio_to_save:
                order = list(best_permutation(targets_i, estimates_i))
                self.save_audio(utt_id, mix_i, targets_i, estimates_i[..., order])
                self.n_audio_saved += 1
                self.saved_ids.add(utt_id)

    @torch.no_grad()
    def save_chosen_examples(self) -> None:
        """After scoring: the audio of the test utterances ``choose_examples`` picks beyond the first N
        (the true best, worst and SNRi quantiles), separated again from ``self.test_dataset`` (a few
        utterances; keeping every estimate of the test stage would not fit in memory), and
        ``chosen_examples.json`` saying which were chosen and why."""
        from binaural.data.layout import CHOSEN_EXAMPLES_NAME
        from binaural.evaluation.metrics import best_permutation
        from binaural.io.atomic import atomic_text
        from binaural.training.examples import choice_rule, choose_examples

        n_first = self.hparams.n_audio_to_save
        chosen = choose_examples(self.test_rows, n_first)
        dataset = getattr(self, "test_dataset", None)
        index = {utt_id: i for i, utt_id in enumerate(getattr(dataset, "data_ids", []))}
        for utt_id in [u for u in chosen if u not in self.saved_ids]:
            if utt_id not in index:  # no dataset to separate it again from (a caller's own Brain use)
                chosen.pop(utt_id)
                continue
            mix, targets, _ = stack_signals(sb.dataio.batch.PaddedBatch([dataset[index[utt_id]]]), self.hparams.num_spks)
            model = getattr(self.modules.model, "module", self.modules.model)  # this rank alone: not through DDP
            with self.evaluation_ctx:
                estimates = model(mix.to(self.device))[0].float().cpu()  # [time, ear, speaker]
            mix, targets = mix[0], targets[0]
            self.save_audio(utt_id, mix, targets, estimates[..., list(best_permutation(targets, estimates))])
            self.saved_ids.add(utt_id)
        folder = Path(self.hparams.audio_results_folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_text(folder / CHOSEN_EXAMPLES_NAME) as handle:
            json.dump({"rule": choice_rule(n_first, len(self.test_rows)), "examples": chosen}, handle, indent=1)

    def save_audio(
        self, utt_id: str, mix: torch.Tensor, targets: torch.Tensor, estimates: torch.Tensor
    ) -> None:
        """Stereo wavs of one test utterance in ``audio_results_folder`` (published file names).

        ``<id>_mix.wav``, ``<id>_source<k>.wav`` (target) and ``<id>_source<k>hat.wav`` (estimate, in
        the target's order; the published names without their ``item`` prefix); each file is
        normalised with one factor for both ears.
        """
        folder = Path(self.hparams.audio_results_folder)
        rate = self.hparams.sample_rate
        save_binaural_wav(folder / f"{utt_id}_mix.wav", mix, rate)
        for k in range(targets.shape[-1]):
            save_binaural_wav(folder / f"{utt_id}_source{k + 1}.wav", targets[..., k], rate)
            save_binaural_wav(folder / f"{utt_id}_source{k + 1}hat.wav", estimates[..., k], rate)

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Load the best intact checkpoint (``binaural.training.checkpoints.IntactCheckpointer.find_best_checkpoint``:
        ours by ``valid_snr``, a published SpeechBrain experiment by its negative ``snr``); refuse
        to evaluate an untrained model or one whose every checkpoint is damaged."""
        checkpoint, reason = self.checkpointer.find_best_checkpoint(min_key=min_key, max_key=max_key)
        if checkpoint is None:
            epochs = None if self.test_only else self.hparams.epoch_counter.limit
            raise RecipeError(no_checkpoint_message(self.checkpointer, epochs))
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
            self.saved_ids = set()

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
            if self.hparams.save_audio and if_main_process():
                try:
                    self.save_chosen_examples()
                except (RecipeError, OSError) as error:  # examples are a view: the test results still get written
                    logger.error(f"the chosen test examples could not be saved ({error}); the page shows the others")
            self.write_test_results(stage_loss)

    def write_test_results(self, stage_loss: float) -> None:
        """``test_results.csv`` (one row per utterance and ``avg``) and the averages in the logs."""
        average = None
        if if_main_process():
            from binaural.evaluation.metrics import write_results_csv

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
                from binaural.evaluation.report import PAGE_NAME, write_report

                report = write_report(self.hparams.output_folder)
                logger.info(f"report: {report}; listening page: {report.with_name(PAGE_NAME)}")
            except Exception as error:  # noqa: BLE001 - whatever breaks the report, keep the results
                logger.error(
                    f"the report could not be written ({type(error).__name__}: {error}); test_results.csv is "
                    f"kept: retry with `python report.py {self.hparams.output_folder}`"
                )


def no_checkpoint_message(checkpointer: IntactCheckpointer, epochs: int | None = None) -> str:
    """Why the test stage cannot evaluate: no checkpoint in the folder, or none intact (named).

    ``epochs``: the ``N_epochs`` of a run that trained first (None: ``--test_only``).
    """
    if checkpointer.damaged:
        return f"{checkpointer.unusable_message()}: nothing to evaluate"
    if epochs is not None:
        return (
            f"nothing was trained (N_epochs is {epochs}) and {checkpointer.checkpoints_dir} holds no checkpoint to "
            "evaluate; give --N_epochs 1 or more"
        )
    return (
        f"no trained checkpoint in {checkpointer.checkpoints_dir}: nothing to evaluate. Train first (the same "
        "command without --test_only), or point --output_folder at a trained experiment"
    )


def checked_checkpointer(hparams: dict, hparams_file: str) -> IntactCheckpointer:
    """The hparams file's ``checkpointer``, which must be a ``binaural.training.checkpoints.IntactCheckpointer``."""
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
    # The corpus (WSJ0, own metadata, LibriSpeech) names the splits, its root's key and its generator.
    corpus = Corpus.of(hparams.get("dataset_options"))
    train_split, valid_split, test_split = corpus.splits(hparams["dataset_options"])
    splits = (test_split,) if test_only else (train_split, valid_split, test_split)
    options = dataset_options(hparams, splits)
    if not test_only and hparams["dynamic_mixing"]:
        dynamic_mixing_factory(hparams)  # fail before generating anything if it cannot work

    if not hparams["skip_prep"]:
        from binaural.data.manifests import prepare_binaural_wsj0mix

        # The YAML may declare how to make the talkers' corpus in wsj_root first (make_corpus, a
        # !name: hook with its arguments bound, e.g. hparams/demo.yaml's synthetic corpus); the hook
        # keeps what is already there, so a rerun reuses it.
        if hparams.get("make_corpus") is not None:
            run_on_main(hparams["make_corpus"])
        # The dataset's checks and its generation live beside the generator: one call.
        run_on_main(
            corpus.ensure,
            kwargs={"root": hparams[corpus.root_key], "output_root": hparams["data_folder"], "options": options},
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
                "corpus": corpus,
            },
        )

    manifests = {train_split: hparams["train_data"], valid_split: hparams["valid_data"], test_split: hparams["test_data"]}
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
        train_data = training_set(hparams, datasets[train_split], options)
        separator.train_dataset = train_data  # on_stage_start calls its set_epoch, if it has one
        # PaddedBatch explicitly: SpeechBrain picks it only for its own DynamicItemDataset.
        train_opts = {"collate_fn": sb.dataio.batch.PaddedBatch} | hparams["dataloader_opts"]
        if train_data is not datasets[train_split]:
            # The dynamic-mixing dataset shards itself across DDP ranks: hand the Brain a loader,
            # or it would add a DistributedSampler and shard the epoch a second time.
            train_data = sb.dataio.dataloader.make_dataloader(train_data, **train_opts)
        separator.fit(
            hparams["epoch_counter"],
            train_data,
            datasets[valid_split],
            train_loader_kwargs=train_opts,
            valid_loader_kwargs=dict(hparams["valid_dataloader_opts"]),
        )
    separator.test_dataset = datasets[test_split]  # save_chosen_examples separates the chosen ones again
    # The best checkpoint by the key its folder holds (checkpoints.KNOWN_CHECKPOINT_KEYS: ours, published).
    separator.evaluate(datasets[test_split], test_loader_kwargs=dict(hparams["test_dataloader_opts"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2: a wrong command line, 1: bad input)."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if any(a.split("=")[0] == "--distributed_launch" for a in raw) and "RANK" not in os.environ:
        print("train.py: warning: --distributed_launch without a launcher (no RANK in the environment): "
              "running one process; start with torchrun --nproc_per_node=N for DDP", file=sys.stderr)
    finished = False
    try:
        hparams_file, run_opts, overrides = parse_command_line(translate_argv(raw))
        hparams = load_hparams(hparams_file, overrides)
        check_precision(run_opts, hparams, torch.cuda.is_available(),
                        torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        # One launch writes into output_folder at a time; its rank 0 holds the lock before the
        # process group forms, so the other ranks of a refused launch never get past it.
        with experiment_lock(hparams["output_folder"]):
            # Multi-process (DDP) set-up from the launcher's environment (RANK, LOCAL_RANK, WORLD_SIZE).
            sb.utils.distributed.ddp_init_group(run_opts)
            run(hparams_file, hparams, run_opts, overrides)
        finished = True
    except RecipeError as error:
        message = error_line(error)
        log_to_files(message)  # the experiment's log.txt, when there is one; the console gets it once
        print(f"train.py: error: {message}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
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
    Traceback ...: binaural.io.audio.AudioFileError: <the message>"); its last line is the message.
    """
    text = str(error).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last and "Error" in last.split(": ", 1)[0] else last


if __name__ == "__main__":
    sys.exit(main())
