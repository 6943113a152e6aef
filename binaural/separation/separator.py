"""A trained binaural Conv-TasNet as a separator: files, folders, batches, streams (``separate.py``'s library).

``separate.py`` is its command line; its ``--help`` shows the commands.

``--experiment`` takes a folder train.py made or a published SpeechBrain output folder as it is
downloaded (its ``hyperparams.yaml`` has no ``Model``: :func:`published_model`); the checkpoint is
the best intact one (:mod:`binaural.training.checkpoints`: ours by ``valid_snr``, the published by their negative
``snr``; a damaged one is skipped with a warning). The experiment's ``hyperparams.yaml`` is
HyperPyYAML and can run code when loaded: load only experiments you trust.

Each input ``NAME.wav`` (two channels, any sample rate) gives ``NAME_s1.wav``, ``NAME_s2.wav``
(``NAME_s3.wav`` for three talkers; two inputs that would write the same file are refused before
any work): the binaural estimate of each talker, stereo, at the input's
rate and length. The input is resampled to the model's rate (``binaural.data.mixing.resample``, polyphase) and
the estimates back. Files are written as 32-bit float wav by default (``--subtype FLOAT``): no
clipping whatever the level; with ``--subtype PCM_16``/``PCM_24`` an estimate whose peak exceeds
full scale is scaled down (both ears by the same factor, so its interaural level difference
stays) and a line says so. Every write is atomic (``binaural.io.audio.write_atomic``).

Long files are processed in blocks, so that the activations do not grow with the file (about
7 MB per second of block for the published model). Each block is extended by the receptive field
of the model on each side (:func:`binaural.realtime.streaming.model_context`: 8176 samples before and 8184 after,
1.02 s, for the published non-causal model: 1020 TCN frames of 8 samples plus the encoder window
and one hop of slack; 3.06 s before and 24 samples after for the causal one), blocks are joined
with a 100 ms linear cross-fade, and the result equals whole-file processing for models whose
normalisations are frame-wise (``cLN``). The published non-causal model uses ``gLN``, whose
statistics span its whole input: there each block (default 60 s plus context) is normalised on
its own, like a 60 s utterance, and files up to one block are processed whole. A file is streamed
(``binaural.separation.blocks.stream_file``): read a second at a time, resampled piece by piece
(``binaural.data.mixing.StreamResampler``, equal to resampling it whole), separated block by block,
and each estimate written as it becomes final, so peak memory does not grow with the file's length
(``benchmarks/bench_separate_memory.py``); the files equal whole-file processing.

An estimate never replaces an input: an ``--output_dir`` that is the input folder or lies inside it
is refused before any work, and so is an estimate whose path is a file given as input
(``binaural.separation.files``). The model's sample rate and sizes are facts of the experiment:
``--override`` may not change them for an ``--experiment``; inputs below 4 kHz are refused.

``--streaming`` runs a causal model (``hparams/convtasnet-parallel-causal.yaml``) chunk by chunk
with :class:`binaural.realtime.streaming.StreamingTasNet`, as a live input would be, and prints the algorithmic
latency (chunk + encoder window - hop); its output equals the offline causal model's. With
``--engine numba`` the same step runs compiled, one call per chunk (:mod:`binaural.realtime.numba_engine`, the
fast CPU engine); with ``--engine onnx`` as an ONNX model in onnxruntime (:mod:`binaural.realtime.onnx_engine`);
``--export_onnx MODEL.onnx`` writes that model and ``MODEL.json`` (rate, chunk, hop, latency, state
layout) for a runtime without this recipe.

The Python API is :class:`BinauralSeparator` (``from_experiment``, ``from_hparams``,
``separate_file``, ``separate_batch``, ``reset`` / ``process_chunk`` / ``flush``).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from speechbrain.utils.checkpoints import Checkpoint

from binaural.io.atomic import WriteError
from binaural.io.audio import check_channels, check_readable
from binaural.models.tasnet import PUBLISHED_NAMES, BinauralTasNet, IndependentTasNet, ParallelTasNet, published_recoverables
from binaural.training.hparams import current_yaml
from binaural.training.checkpoints import KNOWN_CHECKPOINT_KEYS, CheckpointError, IntactCheckpointer, checkpoint_damage, one_line
from binaural.data.mixing import resample
from binaural.realtime.streaming import NotStreamableError, StreamingTasNet, algorithmic_latency
from binaural.separation.blocks import (
    _forward,
    blocks_of_stream,
    chunks_of_stream,
    plan_blocks,
    separate_in_blocks,
    stream_file,
)
from binaural.separation.files import SeparationError

__all__ = [
    "KNOWN_CHECKPOINT_KEYS",
    "BinauralSeparator",
    "SeparationError",
    "find_best_checkpoint",
    "inference_overrides",
    "load_hparams",
    "plan_blocks",
    "separate_in_blocks",
    "streaming_figures",
]

#: SpeechBrain's ``create_experiment_directory`` writes ``hyperparams.yaml``; ``hparams.yaml`` is accepted too.
EXPERIMENT_HPARAMS_NAMES: tuple[str, ...] = ("hyperparams.yaml", "hparams.yaml")
DEFAULT_SAMPLE_RATE = 8000
DEFAULT_BLOCK_SECONDS = 60.0
DEFAULT_CROSSFADE_MS = 100.0
#: Hparams an ``--override`` may not change in an experiment (:func:`refuse_fact_overrides`): its
#: rate and the recipe's model sizes (also those a resolved copy no longer refers to by name).
EXPERIMENT_FACTS: tuple[str, ...] = (
    "sample_rate", "num_spks", "N_encoder_out", "kernel_size", "kernel_stride", "B", "H", "P", "X", "R",
    "norm_type", "causal", "mask_nonlinear",
)
#: Inputs below this rate (Hz) are refused: they hold no speech band to separate (telephone speech
#: is 8 kHz), so such a rate is a wrong header, and resampling them would invent the signal.
MIN_INPUT_RATE = 4000
#: The streaming engines (:meth:`BinauralSeparator.use_engine`).
ENGINES: tuple[str, ...] = ("torch", "numba", "onnx")


# ============================================================================================== loading
def _top_level_entries(text: str) -> dict:
    """The top-level ``key: node`` entries of the YAML ``text`` (ruamel nodes; empty if not a mapping)."""
    import ruamel.yaml
    from ruamel.yaml.nodes import MappingNode

    root = ruamel.yaml.YAML().compose(text)
    if not isinstance(root, MappingNode):
        return {}
    return {key.value: value for key, value in root.value}


def separator_keys(text: str) -> set[str]:
    """The top-level keys of the YAML ``text`` that the separator is built from.

    ``Model`` (our files) and ``modules`` (ours and the published recipe's, which lists the six
    lobes), and every key they depend on through ``!ref`` / ``!copy`` or a YAML alias (the resolved
    copies in experiment folders use aliases), transitively.
    """
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    entries = _top_level_entries(text)
    owner = {id(node): key for key, node in entries.items()}

    def references(top: object) -> set[str]:
        """The top-level keys the entry ``top`` refers to (``!ref <key...>``, ``!copy``, aliases)."""
        found: set[str] = set()
        stack, seen = [top], set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node is not top and id(node) in owner:  # an alias of another top-level object
                found.add(owner[id(node)])
            elif isinstance(node, ScalarNode) and str(node.tag) in ("!ref", "!copy"):
                found.update(re.split(r"[.\[]", name, maxsplit=1)[0] for name in re.findall(r"<([^<>]+)>", node.value))
            elif isinstance(node, MappingNode):
                stack.extend(item for pair in node.value for item in pair)
            elif isinstance(node, SequenceNode):
                stack.extend(node.value)
        return found

    needed: set[str] = set()
    todo = [key for key in ("Model", "modules") if key in entries]
    while todo:
        key = todo.pop()
        if key in entries and key not in needed:
            needed.add(key)
            todo.extend(references(entries[key]))
    return needed


def inference_overrides(text: str) -> dict:
    """Overrides that make loading the YAML ``text`` build the separator and nothing else.

    ``!PLACEHOLDER`` keys (``data_folder``, ``wsj_root``) get dummy values, and every top-level
    ``!new:`` / ``!name:`` object that the separator does not depend on (:func:`separator_keys`)
    is replaced by ``None``: the ``Checkpointer`` (which would create its folder where we stand),
    the loggers, the optimiser, the augmentations (the published files name
    ``speechbrain.lobes.augment``, gone from SpeechBrain 1.x)... Only ``!apply:`` entries (the
    seed) still run as written.
    """
    needed = separator_keys(text)
    overrides: dict = {}
    for key, node in _top_level_entries(text).items():
        tag = str(node.tag)
        if tag == "!PLACEHOLDER":
            overrides[key] = f"/nonexistent/{key}"
        elif tag.startswith(("!new:", "!name:")) and key not in needed:
            overrides[key] = None
    return overrides


def refuse_fact_overrides(text: str, overrides: dict, source: Path) -> None:
    """Refuse ``overrides`` that would change what a trained experiment is.

    An experiment's weights were trained at its ``sample_rate`` with its model's sizes: another
    value runs the model on signals it never saw (an 8 kHz model at 16 kHz separates badly without
    a word) or builds a model its checkpoint does not fit. The facts are
    :data:`EXPERIMENT_FACTS` and every key the separator is built from (:func:`separator_keys`).
    """
    facts = set(EXPERIMENT_FACTS) | separator_keys(text)
    changed = sorted(key for key in overrides if key in facts)
    if changed:
        raise SeparationError(
            f"--override {', '.join(changed)}: the sample rate and the model's sizes are facts of the experiment "
            f"{source.parent} (the weights were trained with them); drop the override: inputs at any rate are "
            "resampled to the model's rate, and the estimates back"
        )


def load_hparams(path: Path, overrides: dict | None = None, experiment: bool = False) -> dict:
    """Load a recipe YAML (or an experiment's resolved copy, ours or a published one) for inference.

    Only the separator is built (:func:`inference_overrides`): the experiment's own paths are
    relative to where it was trained, and its training-only objects may not even exist in this
    SpeechBrain. ``overrides`` win, except, for an ``experiment``'s own copy, over its sample
    rate and model sizes (:func:`refuse_fact_overrides`). A HyperPyYAML file can run code when
    loaded (``!new:``, ``!apply:`` build any Python object): load only experiments you trust.
    """
    from hyperpyyaml import load_hyperpyyaml

    path = Path(path)
    if not path.is_file():
        raise SeparationError(f"{path}: hparams file not found")
    try:
        text = path.read_text(encoding="utf-8")
        defaults = inference_overrides(text)
    except (OSError, UnicodeDecodeError) as error:
        raise SeparationError(f"{path}: cannot read the hparams ({one_line(error)})") from error
    except Exception as error:  # ruamel's parser and composer errors: the file is not YAML
        raise SeparationError(f"{path}: not a YAML file ({type(error).__name__}: {one_line(error)})") from error
    if experiment:
        refuse_fact_overrides(text, overrides or {}, path)
    defaults.update(overrides or {})
    try:
        return load_hyperpyyaml(current_yaml(text), defaults)
    except Exception as error:  # hyperpyyaml raises many types; all mean "this YAML does not load"
        raise SeparationError(f"{path}: cannot load the hparams ({type(error).__name__}: {one_line(error)})") from error


#: The published recipe has no ``Model``: its train.py picks the forward pass from
#: ``experiment_name`` ("independent", then "cross", then "parallel" in it). Our class for each
#: (None: cannot be rebuilt, see :func:`published_model`).
PUBLISHED_VARIANTS: tuple[tuple[str, type[BinauralTasNet] | None], ...] = (
    ("independent", IndependentTasNet),
    ("cross", None),
    ("parallel", ParallelTasNet),
)


def published_model(hparams: dict, source: Path) -> BinauralTasNet:
    """The separator of a published SpeechBrain experiment: its six lobes (``modules``) in our class."""
    modules = hparams.get("modules") or {}
    missing = [name for name in PUBLISHED_NAMES if name not in modules]
    if missing:
        raise SeparationError(
            f"{source}: no 'Model', and 'modules' lacks the published lobes {', '.join(missing)}; declare "
            "`Model: !new:binaural.models.ParallelTasNet` with the six lobes, as hparams/convtasnet-parallel.yaml does"
        )
    name = str(hparams.get("experiment_name", ""))
    for word, model_class in PUBLISHED_VARIANTS:
        if word in name:
            if model_class is None:
                raise SeparationError(
                    f"{source}: a published '{word}' experiment ({name}): its interaural projection was a new, random "
                    "Conv1d at every forward pass, never trained nor saved, so this model cannot be rebuilt; train "
                    "hparams/convtasnet-cross.yaml (a learned projection) instead"
                )
            try:
                return model_class(**{lobe: modules[lobe] for lobe in PUBLISHED_NAMES})
            except (TypeError, ValueError) as error:
                raise SeparationError(f"{source}: the published lobes do not make a {model_class.__name__}: {error}") from error
    raise SeparationError(
        f"{source}: no 'Model', and experiment_name {name!r} names none of the published variants "
        f"({', '.join(word for word, _ in PUBLISHED_VARIANTS)}), from which the published recipe picks its forward pass"
    )


def model_from_hparams(hparams: dict, source: Path) -> BinauralTasNet:
    """The YAML's ``Model`` (a :class:`binaural.models.tasnet.BinauralTasNet`), in eval mode; for a
    published experiment's YAML (no ``Model``), :func:`published_model`."""
    model = hparams.get("Model", hparams.get("model"))
    if model is None and "modules" in hparams and "Model" not in hparams:
        model = published_model(hparams, source)
    if not isinstance(model, BinauralTasNet):
        raise SeparationError(
            f"{source}: no 'Model' of binaural.models (got {type(model).__name__}); declare "
            "`Model: !new:binaural.models.ParallelTasNet` with the six lobes, as hparams/convtasnet-parallel.yaml does"
        )
    return model.eval()


def _checkpointer(save_folder: Path, model: BinauralTasNet) -> IntactCheckpointer:
    """A checkpointer over ``save_folder`` holding the model's lobes under the published names."""
    return IntactCheckpointer(save_folder, recoverables=published_recoverables(model))


def find_best_checkpoint(save_folder: Path, model: BinauralTasNet, min_key: str | None = None,
                         max_key: str | None = None) -> tuple[Checkpoint, str]:
    """The intact checkpoint of ``save_folder`` to use, and a phrase saying why it was chosen.

    :meth:`binaural.training.checkpoints.IntactCheckpointer.find_best_checkpoint` (train.py ``--test_only`` uses
    the same): with ``min_key``/``max_key`` the best by that key, otherwise by the first of
    :data:`KNOWN_CHECKPOINT_KEYS` found in the checkpoints' meta, else the most recent. Damaged
    checkpoints are skipped with a warning naming them.
    """
    save_folder = Path(save_folder)
    if not save_folder.is_dir() or not any(save_folder.glob("CKPT+*")):
        raise SeparationError(
            f"{save_folder}: no checkpoint (CKPT+... folder); train first "
            "(python train.py hparams/...yaml) or pass --hparams and --checkpoint"
        )
    checkpointer = _checkpointer(save_folder, model)
    checkpoint, reason = checkpointer.find_best_checkpoint(min_key=min_key, max_key=max_key)
    if checkpoint is None:
        if checkpointer.damaged:
            raise SeparationError(checkpointer.unusable_message())
        raise SeparationError(f"{save_folder}: no checkpoint has the meta key {min_key or max_key!r}")
    return checkpoint, reason


def load_checkpoint_folder(model: BinauralTasNet, folder: Path) -> None:
    """Load ``folder`` (a ``CKPT+...`` folder written by SpeechBrain's ``Checkpointer``) into ``model``."""
    folder = Path(folder)
    if not (folder / "CKPT.yaml").is_file():
        raise SeparationError(
            f"{folder}: not a SpeechBrain checkpoint folder (no CKPT.yaml); pass a "
            "<experiment>/save/CKPT+... folder"
        )
    checkpointer = _checkpointer(folder.parent, model)
    listed = [c for c in checkpointer.list_checkpoints() if Path(c.path).resolve() == folder.resolve()]
    if not listed:
        reason = checkpointer.damaged.get(folder, "it is not a CKPT+... folder of SpeechBrain's")
        raise SeparationError(f"{folder}: not a usable checkpoint of {folder.parent} ({reason})")
    _load(checkpointer, listed[0])


def _load(checkpointer: IntactCheckpointer, checkpoint: Checkpoint) -> None:
    """Load ``checkpoint`` after checking its files, naming what is missing, damaged or mismatching."""
    missing = [name for name in checkpointer.recoverables if name not in checkpoint.paramfiles]
    if missing:
        raise SeparationError(
            f"{checkpoint.path}: no {', '.join(m + '.ckpt' for m in missing)}: this checkpoint is not "
            "of this model's lobes (wrong --hparams for this --checkpoint?)"
        )
    damage = checkpoint_damage(checkpoint, checkpointer.recoverables)
    if damage is not None:
        raise SeparationError(f"{checkpoint.path}: damaged checkpoint: {damage}; use another CKPT+... folder")
    try:
        checkpointer.load_checkpoint(checkpoint)
    except CheckpointError as error:
        raise SeparationError(str(error)) from error


def check_input_rate(rate: int) -> None:
    """Refuse a mixture's ``rate`` (Hz) below :data:`MIN_INPUT_RATE`."""
    if rate < MIN_INPUT_RATE:
        raise SeparationError(
            f"sample rate {rate} Hz, below the {MIN_INPUT_RATE} Hz this recipe separates (no speech band fits); "
            "check the file's header, or resample the recording to at least 8000 Hz"
        )


def _device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SeparationError("CUDA is not available on this machine; use --device cpu")
    return device


# ============================================================================================== API
class BinauralSeparator:
    """A trained binaural Conv-TasNet ready to separate (in the spirit of SpeechBrain's
    ``SepformerSeparation``).

    Shapes: a mixture is ``[time, 2]`` (or ``[batch, time, 2]``), left ear first; estimates
    ``[time, 2, n_spks]`` (``[batch, time, 2, n_spks]``), at :attr:`sample_rate` unless said.

    Arguments
    ---------
    model : BinauralTasNet
        E.g. the ``Model`` of a recipe YAML with trained weights.
    sample_rate : int
        The model's rate in Hz (the YAML's ``sample_rate``).
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    block_seconds : float
        Block length of long files (:func:`separate_in_blocks`).
    crossfade_ms : float
        Cross-fade between blocks.
    """

    def __init__(
        self,
        model: BinauralTasNet,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        device: str | torch.device = "cpu",
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        crossfade_ms: float = DEFAULT_CROSSFADE_MS,
    ) -> None:
        if not (math.isfinite(crossfade_ms) and crossfade_ms >= 0):
            raise SeparationError(f"the cross-fade must be a finite number of ms >= 0, got {crossfade_ms}")
        if not (math.isfinite(block_seconds) and block_seconds >= 2 * crossfade_ms / 1000 and block_seconds > 0):
            raise SeparationError(
                f"--block_seconds {block_seconds:g}: a block must be a finite number of seconds, at least twice the "
                f"{crossfade_ms:g} ms cross-fade between blocks ({2 * crossfade_ms / 1000:g} s); the default is "
                f"{DEFAULT_BLOCK_SECONDS:g}"
            )
        self.device = _device(device)
        self.model = model.eval().to(self.device)
        self.sample_rate = int(sample_rate)
        self.block_seconds = float(block_seconds)
        self.crossfade_ms = float(crossfade_ms)
        if model.n_spks is None or model.stride is None or model.kernel_size is None:
            raise SeparationError("the model's lobes must be SpeechBrain's dual_path.Encoder and conv_tasnet.MaskNet")
        self.n_spks: int = model.n_spks
        self._stream: StreamingTasNet | None = None
        #: Where the weights came from (for messages).
        self.source: str = "given model"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_hparams(
        cls,
        hparams_file: str | Path,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        overrides: dict | None = None,
        **kwargs,
    ) -> BinauralSeparator:
        """The ``Model`` of ``hparams_file`` with the weights of ``checkpoint`` (a ``CKPT+...`` folder).

        Without ``checkpoint`` the weights are the YAML's random initialisation (benchmarks only).
        """
        hparams = load_hparams(Path(hparams_file), overrides)
        model = model_from_hparams(hparams, Path(hparams_file))
        source = "random initialisation"
        if checkpoint is not None:
            load_checkpoint_folder(model, Path(checkpoint))
            source = str(checkpoint)
        separator = cls(model, hparams.get("sample_rate", DEFAULT_SAMPLE_RATE), device, **kwargs)
        separator.source = source
        return separator

    @classmethod
    def from_experiment(
        cls,
        folder: str | Path,
        device: str | torch.device = "cpu",
        min_key: str | None = None,
        max_key: str | None = None,
        overrides: dict | None = None,
        **kwargs,
    ) -> BinauralSeparator:
        """The best checkpoint of an experiment folder (``results/<name>/<seed>``) made by train.py.

        Reads the folder's ``hyperparams.yaml`` (or ``hparams.yaml``) and ``save/CKPT+...``; the
        checkpoint is chosen by :func:`find_best_checkpoint`.
        """
        folder = Path(folder)
        candidates = [folder / name for name in EXPERIMENT_HPARAMS_NAMES]
        hparams_file = next((c for c in candidates if c.is_file()), None)
        if hparams_file is None:
            raise SeparationError(
                f"{folder}: no {' or '.join(EXPERIMENT_HPARAMS_NAMES)}; pass the experiment folder "
                "train.py created (results/<experiment_name>/<seed>), or --hparams and --checkpoint"
            )
        hparams = load_hparams(hparams_file, overrides, experiment=True)
        model = model_from_hparams(hparams, hparams_file)
        checkpoint, reason = find_best_checkpoint(folder / "save", model, min_key, max_key)
        _load(_checkpointer(folder / "save", model), checkpoint)  # the files once more: they may have changed since
        separator = cls(model, hparams.get("sample_rate", DEFAULT_SAMPLE_RATE), device, **kwargs)
        separator.source = f"{checkpoint.path} ({reason})"
        return separator

    # ------------------------------------------------------------------ offline
    def separate_batch(self, mix: torch.Tensor) -> torch.Tensor:
        """Whole-signal separation: ``[batch, time, 2] -> [batch, time, 2, n_spks]`` (on the model's device)."""
        mix = torch.as_tensor(mix, dtype=torch.float32)
        if mix.ndim != 3 or mix.shape[-1] != 2:
            raise SeparationError(f"separate_batch expects [batch, time, 2]; got shape {tuple(mix.shape)}")
        with torch.inference_mode():
            return _forward(self.model, mix.to(self.device))

    def separate_long(self, mix: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Block-wise separation of ``[time, 2]`` (any length, bounded memory) -> ``[time, 2, n_spks]`` on the CPU."""
        mix = torch.as_tensor(np.asarray(mix, dtype=np.float32) if isinstance(mix, np.ndarray) else mix)
        if mix.ndim != 2 or mix.shape[1] != 2:
            raise SeparationError(f"expected a [time, 2] mixture; got shape {tuple(mix.shape)}")
        block = round(self.block_seconds * self.sample_rate)
        crossfade = round(self.crossfade_ms * self.sample_rate / 1000)
        return separate_in_blocks(self.model, mix, block, crossfade, self.device)

    def separate_at_model_rate(
        self, mix: np.ndarray, rate: int, streaming: bool = False, chunk_ms: float = 8.0
    ) -> np.ndarray:
        """``[time, 2]`` at ``rate`` Hz -> float32 ``[time', 2, n_spks]`` at the model's rate."""
        mix = np.asarray(mix)
        check_input_rate(rate)
        if mix.ndim != 2 or mix.shape[1] != 2:
            raise SeparationError(
                f"expected a two-channel [time, 2] mixture, got shape {mix.shape}: a mono signal carries no interaural cues"
            )
        at_model_rate = resample(mix, rate, self.sample_rate, axis=0).astype(np.float32, copy=False)
        if at_model_rate.shape[0] < self.model.kernel_size:
            raise SeparationError(
                f"the mixture is {mix.shape[0]} samples long at {rate} Hz, shorter than one encoder window "
                f"({self.model.kernel_size} samples at {self.sample_rate} Hz)"
            )
        if streaming:
            return self.stream_array(at_model_rate, chunk_ms)
        return self.separate_long(at_model_rate).numpy()

    def to_rate(self, estimate: np.ndarray, rate: int, n_samples: int) -> np.ndarray:
        """Model-rate ``[time', 2, ...]`` -> float32 at ``rate`` Hz with exactly ``n_samples`` samples."""
        return _fit_length(resample(estimate, self.sample_rate, rate, axis=0), n_samples).astype(np.float32, copy=False)

    def separate_array(
        self, mix: np.ndarray, rate: int, streaming: bool = False, chunk_ms: float = 8.0
    ) -> np.ndarray:
        """``[time, 2]`` at ``rate`` Hz -> float32 ``[time, 2, n_spks]`` at ``rate`` Hz, same length."""
        est = self.separate_at_model_rate(mix, rate, streaming, chunk_ms)  # [time_m, 2, C]
        return self.to_rate(est, rate, np.asarray(mix).shape[0])

    def separate_file(
        self,
        path: str | Path,
        output_dir: str | Path,
        streaming: bool = False,
        chunk_ms: float = 8.0,
        subtype: str = "FLOAT",
    ) -> list[Path]:
        """Separate one audio file; writes ``NAME_s1.wav``... (stereo, input rate and length) in ``output_dir``.

        Streamed from the file to the files (:func:`binaural.separation.blocks.stream_file`): peak
        memory is one block at the model's rate, whatever the file's length, and the estimates
        equal :meth:`separate_array` of the whole file.

        Raises:
            AudioFileError: unreadable, mono, corrupt or non-finite input (the message names the file).
            SeparationError: a rate below :data:`MIN_INPUT_RATE`, or too short for the model.
        """
        path = Path(path)
        info = check_readable(path)
        check_channels(path, info, 2)
        try:
            check_input_rate(info.samplerate)
            n_model = -(-info.frames * self.sample_rate // info.samplerate)
            if n_model < self.model.kernel_size:
                raise SeparationError(
                    f"the mixture is {info.frames} samples long at {info.samplerate} Hz, shorter than one encoder "
                    f"window ({self.model.kernel_size} samples at {self.sample_rate} Hz)"
                )
            targets = self.output_paths(path, output_dir)
            stream_file(path, info, targets, self.sample_rate, self._stream_separation(streaming, chunk_ms), subtype)
        except SeparationError as error:
            raise SeparationError(f"{path}: {error}") from error
        return targets

    def _stream_separation(self, streaming: bool, chunk_ms: float):
        """``separate(pieces, n_samples)`` for :func:`stream_file`: blocks offline, chunks when streaming."""
        if streaming:
            chunk = self.chunk_samples(chunk_ms)

            def chunks(pieces, n_samples):
                self.reset()
                return chunks_of_stream(self.process_chunk, self.flush, pieces, chunk)

            return chunks
        block = round(self.block_seconds * self.sample_rate)
        crossfade = round(self.crossfade_ms * self.sample_rate / 1000)
        return lambda pieces, n_samples: blocks_of_stream(self.model, pieces, n_samples, block, crossfade, self.device)

    def output_paths(self, path: str | Path, output_dir: str | Path) -> list[Path]:
        """Where :meth:`separate_file` writes the talkers of ``path``: ``NAME_s1.wav``, ``NAME_s2.wav``..."""
        return [Path(output_dir) / f"{Path(path).stem}_s{k + 1}.wav" for k in range(self.n_spks)]

    # ------------------------------------------------------------------ streaming
    @property
    def stream(self) -> StreamingTasNet:
        """The :class:`binaural.realtime.streaming.StreamingTasNet` of this model (built on first use)."""
        if self._stream is None:
            try:
                self._stream = StreamingTasNet(self.model, self.device)
            except NotStreamableError as error:
                raise SeparationError(f"{self.source}: cannot stream this model: {error}") from error
        return self._stream

    def use_stream(self, engine) -> None:
        """Stream with ``engine`` (e.g. an :class:`binaural.realtime.onnx_engine.OnnxStreamingTasNet` of this model)."""
        self._stream = engine

    def reset(self) -> None:
        """Start a new stream."""
        self.stream.reset()

    def process_chunk(self, chunk: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Next ``[time, 2]`` samples at the model's rate -> the final ``[time', 2, n_spks]`` samples."""
        chunk = torch.as_tensor(np.asarray(chunk, dtype=np.float32) if isinstance(chunk, np.ndarray) else chunk)
        return self.stream.process_chunk(chunk)

    def flush(self) -> torch.Tensor:
        """End the stream: the last ``[time', 2, n_spks]`` samples (see :meth:`StreamingTasNet.flush`)."""
        return self.stream.flush()

    def chunk_samples(self, chunk_ms: float) -> int:
        """``chunk_ms`` in samples at the model's rate; must be a whole number of encoder hops."""
        assert self.model.stride is not None
        samples = chunk_ms * self.sample_rate / 1000
        hop_ms = 1000 * self.model.stride / self.sample_rate
        if samples <= 0 or abs(samples - round(samples)) > 1e-6 or round(samples) % self.model.stride:
            raise SeparationError(
                f"--chunk_ms {chunk_ms:g} is not a multiple of the encoder hop ({hop_ms:g} ms = "
                f"{self.model.stride} samples at {self.sample_rate} Hz); use e.g. {hop_ms:g}, {2 * hop_ms:g}, {8 * hop_ms:g}"
            )
        return round(samples)

    def latency_ms(self, chunk_ms: float) -> float:
        """Algorithmic latency of streaming with ``chunk_ms`` chunks (:func:`binaural.realtime.streaming.algorithmic_latency`)."""
        assert self.model.kernel_size is not None and self.model.stride is not None
        samples = algorithmic_latency(self.model.kernel_size, self.model.stride, self.chunk_samples(chunk_ms))
        return 1000 * samples / self.sample_rate

    def use_engine(self, engine: str, chunk_ms: float) -> None:
        """Stream with ``engine`` (one of :data:`ENGINES`) in chunks of ``chunk_ms``.

        ``torch``: the PyTorch reference step (:mod:`binaural.realtime.streaming`), on any device;
        ``numba``: the step compiled by numba, built from the PyTorch engine's folded weights;
        ``onnx``: the step exported in memory and run by onnxruntime. Both of those on the CPU.

        Raises
        ------
        SeparationError
            An unknown engine, a CPU engine on another device, or its package missing.
        """
        if engine not in ENGINES:
            raise SeparationError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
        self.stream  # noqa: B018 (fails early, with the reason, for a non-causal model)
        chunk = self.chunk_samples(chunk_ms)
        if engine == "torch":
            return
        if self.device.type != "cpu":
            raise SeparationError(f"--engine {engine} runs on the CPU; drop --device or use --engine torch")
        try:
            if engine == "onnx":
                from binaural.realtime.onnx_engine import OnnxStreamingTasNet

                self.use_stream(OnnxStreamingTasNet.from_model(self.model, self.sample_rate, chunk))
                return
            from binaural.realtime.numba_engine import NumbaStreamingTasNet

            self.use_stream(NumbaStreamingTasNet(self.stream))
        except ImportError as error:
            needed = "onnxruntime" if engine == "onnx" else "numba"
            raise SeparationError(
                f"--engine {engine} needs {needed} ({error}); pip install -r extra_requirements.txt"
            ) from error

    def export_onnx(self, path: Path, chunk_ms: float) -> Path:
        """Write the streaming step for chunks of ``chunk_ms`` as ``path`` (ONNX) and its JSON
        beside it; returns the JSON's path.

        Raises
        ------
        SeparationError
            A non-causal model, a destination named ``.json``, or one that cannot be written.
        """
        from binaural.realtime.onnx_engine import export_onnx

        path = Path(path)
        if path.suffix == ".json":
            raise SeparationError(f"{path}: the model file gets the JSON beside it; name it MODEL.onnx")
        chunk = self.chunk_samples(chunk_ms)
        try:
            return export_onnx(self.model.cpu(), path, self.sample_rate, chunk)
        except NotStreamableError as error:
            raise SeparationError(f"{self.source}: cannot export a streaming model: {one_line(error)}") from error
        except WriteError as error:  # the folder: permissions, a file in the way, a full disk...
            raise SeparationError(f"--export_onnx {one_line(error)}") from error

    def stream_array(self, mix: np.ndarray, chunk_ms: float) -> np.ndarray:
        """Feed ``[time, 2]`` (model rate) chunk by chunk; the ``[time, 2, n_spks]`` output, as offline."""
        chunk = self.chunk_samples(chunk_ms)
        self.reset()
        mix_t = torch.as_tensor(np.ascontiguousarray(mix, dtype=np.float32))
        pieces = [self.process_chunk(mix_t[i : i + chunk]).cpu() for i in range(0, mix_t.shape[0], chunk)]
        pieces.append(self.flush().cpu())
        return torch.cat(pieces).numpy()


def _fit_length(signal: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad axis 0 to ``n_samples`` (resampling rounds lengths up)."""
    if signal.shape[0] >= n_samples:
        return signal[:n_samples]
    pad = [(0, n_samples - signal.shape[0])] + [(0, 0)] * (signal.ndim - 1)
    return np.pad(signal, pad)


def streaming_figures(path: Path, elapsed_s: float, latency_ms: float) -> str:
    """One line for a file separated with ``--streaming``: its real-time factor (processing time /
    audio duration, reading and writing included; below 1 keeps up with a live input) and the
    algorithmic latency (ms)."""
    info = check_readable(Path(path))
    duration_s = info.frames / info.samplerate
    rtf = elapsed_s / duration_s if duration_s > 0 else math.inf
    return (f"{path}: RTF {rtf:.3f} ({elapsed_s:.2f} s for {duration_s:.2f} s of audio), "
            f"algorithmic latency {latency_ms:g} ms")
