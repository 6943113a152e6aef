"""train.py's command line, read and checked before any work: one line for every mistake.

SpeechBrain reads the command line in two halves: its run options (``--device``, ``--precision``,
...) with argparse, and every other ``--key value`` as a YAML override of the hparams file, which
HyperPyYAML applies while it builds the experiment's objects. A mistake in either half used to
surface as a traceback from deep inside (argparse's usage text, ruamel's duplicate-key error, a
``KeyError`` listing a hundred keys, ``int('abc')`` in SpeechBrain's epoch counter, a learning rate
of ``'abc'`` reaching the optimiser after the data was generated). Here each is a
:class:`UsageError` naming the option, the value and what is wanted:

* the hparams file must be UTF-8 text holding a YAML mapping (:func:`read_hparams`);
* an override must name a top-level key of that file (else the closest known options are
  suggested), be given once, and have the type of the file's value (:func:`check_overrides`);
* the values the recipe counts with (:data:`RULES`: epochs, batch size, learning rate, rates,
  lengths, network sizes) are checked on the resolved hparams, before any object is built
  (:func:`check_values`); the mixed precision against the device (:func:`check_precision`).
"""
from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from binaural.data.layout import SAMPLE_RATES
from binaural.errors import RecipeError
from binaural.training.checkpoints import one_line
from binaural.training.experiment import check_output_folder
from binaural.training.hparams import current_yaml

__all__ = ["RULES", "Rule", "UsageError", "check_overrides", "check_precision", "check_values", "load_hparams",
           "parse_command_line", "plain_values", "read_hparams", "run_option_names"]

#: The hparams file a message suggests as an example.
EXAMPLE_HPARAMS = "hparams/convtasnet-parallel.yaml"
_YAML_TAG = "tag:yaml.org,2002:"
#: What the YAML of the overrides is called in a message.
_OVERRIDES = "the command-line options"


class UsageError(RecipeError):
    """A command line or hparams file that does not describe a run (exit status 2, as argparse's)."""


# ================================================================================================ values
@dataclass(frozen=True)
class Rule:
    """What a numeric hparam may hold: its type, its bounds (inclusive unless said) or its choices."""

    kind: type  # int or float (an int is a float too)
    minimum: float | None = None
    above_minimum: bool = False  # True: the minimum itself is refused
    maximum: float | None = None
    choices: tuple[int, ...] = ()

    def wanted(self) -> str:
        """``"an integer >= 1"``: what the rule accepts, in words."""
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        text = "an integer" if self.kind is int else "a number"
        if self.minimum is not None:
            text += f" {'>' if self.above_minimum else '>='} {self.minimum:g}"
        if self.maximum is not None:
            text += f"{' and' if self.minimum is not None else ''} <= {self.maximum:g}"
        return text

    def accepts(self, value: Any) -> bool:
        numeric = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric) or not math.isfinite(value):
            return False
        if self.choices:
            return value in self.choices
        low_ok = self.minimum is None or (value > self.minimum if self.above_minimum else value >= self.minimum)
        return low_ok and (self.maximum is None or value <= self.maximum)


_SIZE = Rule(int, 1)
#: The hparams the recipe counts with; a file that lacks one (e.g. demo.yaml) is not asked for it.
RULES: dict[str, Rule] = {
    "N_epochs": Rule(int, 0),
    "batch_size": _SIZE,
    "lr": Rule(float, 0, above_minimum=True),
    "weight_decay": Rule(float, 0),
    "lr_decay_factor": Rule(float, 0, above_minimum=True, maximum=1),
    "lr_patience": Rule(int, 0),
    "sample_rate": Rule(int, choices=tuple(SAMPLE_RATES.values())),
    "num_spks": Rule(int, choices=(2, 3)),
    "training_signal_len": _SIZE,  # samples
    "training_signal_len_dm": _SIZE,  # samples
    "epoch_size_dm": _SIZE,
    "n_audio_to_save": Rule(int, 0),
    "kernel_size": Rule(int, 2),  # samples; the encoder's stride is kernel_size // 2
    "kernel_stride": _SIZE,
    **{name: _SIZE for name in ("N_encoder_out", "B", "H", "P", "X", "R")},
}


def check_values(values: Mapping[str, Any], given: Mapping[str, str], hparams_file: str) -> None:
    """Raise :class:`UsageError` for the first value of ``values`` that breaks its :data:`RULES` entry.

    ``given`` maps the keys set on the command line to their text there, so that the message
    names the option as the user typed it (``--batch_size 0``), else the file.
    """
    for key, rule in RULES.items():
        if key in values and not rule.accepts(values[key]):
            where = f"--{key} {given[key]}" if key in given else f"{hparams_file}: {key}: {values[key]!r}"
            raise UsageError(f"{where}: {key} must be {rule.wanted()}, not {_describe(values[key])}")


def _describe(value: Any) -> str:
    return f"the text {value!r}" if isinstance(value, str) else repr(value)


# ================================================================================================ the file
def read_hparams(path: str | Path) -> str:
    """The hparams file's text (legacy tags renamed, :func:`~binaural.training.hparams.current_yaml`);
    a missing, binary or non-YAML file, or one that is no mapping, is a :class:`UsageError`."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not" if path.is_dir() else "not found; give"
        raise UsageError(f"{path}: hparams file {what} a YAML file (e.g. {EXAMPLE_HPARAMS})")
    try:
        text = current_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not a text file (byte {error.start} is not UTF-8); give a YAML hparams file "
                         f"such as {EXAMPLE_HPARAMS}") from error
    except OSError as error:
        raise UsageError(f"{path}: cannot be read ({error.strerror or error})") from error
    _mapping(text, str(path))
    return text


def _mapping(text: str, source: str) -> list[tuple[str, Node]]:
    """The ``(key, value node)`` pairs of the YAML mapping ``text``, in order, duplicates kept."""
    try:
        root = YAML().compose(text)
    except YAMLError as error:
        mark, problem = getattr(error, "problem_mark", None), getattr(error, "problem", "")
        if source == _OVERRIDES:  # one "key: value" line per option: name the option
            start = getattr(error, "context_mark", None) or mark  # where the unfinished value began
            option = text.splitlines()[min(start.line, len(text.splitlines()) - 1)] if start else text
            raise UsageError(f"--{option.replace(':', '', 1)}: not a valid value ({problem}); write a list or "
                             "mapping whole, e.g. --n_mixtures '{tr: 2, cv: 1, tt: 2}'") from error
        where = f" (line {mark.line + 1}, column {mark.column + 1}: {problem})" if mark else ""
        raise UsageError(f"{source}: not valid YAML{where}; fix it or give a file such as {EXAMPLE_HPARAMS}") from error
    if root is None and source == _OVERRIDES:  # no override at all
        return []
    if not isinstance(root, MappingNode):
        raise UsageError(f"{source}: holds no `key: value` mapping, so it is not an hparams file (e.g. {EXAMPLE_HPARAMS})")
    return [(str(key.value), value) for key, value in root.value]


def _kind(node: Node) -> str | None:
    """``"number"``, ``"bool"``, ``"text"``, ``"mapping"``, ``"list"`` or None (null, a tag: anything goes)."""
    if isinstance(node, MappingNode):
        return "mapping" if not node.tag or node.tag.startswith(_YAML_TAG) else None
    if isinstance(node, SequenceNode):
        return "list" if not node.tag or node.tag.startswith(_YAML_TAG) else None
    tag = str(node.tag)
    return {"int": "number", "float": "number", "bool": "bool", "str": "text"}.get(tag.removeprefix(_YAML_TAG))


_KIND_WANTED = {"number": "a number", "bool": "True or False", "text": "a text", "mapping": "a mapping {key: value}",
                "list": "a list [a, b]"}


# ================================================================================================ overrides
def check_overrides(text: str, overrides: str, hparams_file: str, run_options: list[str]) -> dict[str, str]:
    """Check the command line's overrides against the hparams file; returns ``{key: value text}``.

    Arguments
    ---------
    text : str
        The hparams file's text.
    overrides : str
        SpeechBrain's YAML of the overrides (``"key: value"`` lines).
    hparams_file : str
        The file's name, for messages.
    run_options : list of str
        SpeechBrain's run options (``--device``, ...), suggested for a misspelt one too.

    Raises
    ------
    UsageError
        An option given twice, one the file does not have (the closest known are suggested), or
        a value of another type than the file's (a number for a number, a mapping for a mapping).
    """
    known = dict(_mapping(text, hparams_file))
    given: dict[str, str] = {}
    for key, node in _mapping(overrides, _OVERRIDES):
        shown = _text(node)
        if key in given:
            raise UsageError(f"--{key} is given twice ({given[key]} and {shown}); give it once")
        if key not in known:
            raise UsageError(_unknown(key, [*known, *(o.lstrip("-") for o in run_options)], hparams_file))
        wanted, got = _kind(known[key]), _kind(node)
        if wanted and got != wanted and not (wanted == "text" and got in ("number", "bool")):
            kind = RULES[key].wanted() if key in RULES else _KIND_WANTED[wanted]
            raise UsageError(f"--{key} {shown}: {key} takes {kind} ({hparams_file} has "
                             f"{_text(known[key])}), not {shown!r}")
        given[key] = shown
    return given


def _text(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return str(node.value)
    return "a mapping" if isinstance(node, MappingNode) else "a list"


def _unknown(key: str, known: list[str], hparams_file: str) -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if not close:  # a case slip ("--n_epochs") is close whatever the length
        close = [name for name in known if name.lower() == key.lower()]
    hint = f"did you mean {' or '.join('--' + name for name in close)}?" if close else f"see the keys of {hparams_file}"
    return f"unknown option --{key} (not a key of {hparams_file}, nor a SpeechBrain run option); {hint}"


def plain_values(text: str, overrides: str, hparams_file: str) -> dict[str, Any]:
    """The hparams' plain values (numbers, booleans, texts) with overrides and ``!ref`` resolved,
    before any object is built."""
    from hyperpyyaml import resolve_references

    try:
        resolved = resolve_references(text, overrides).getvalue()
    except ValueError as error:  # HyperPyYAML's "'data_folder' is a !PLACEHOLDER and must be replaced."
        if "PLACEHOLDER" not in str(error):
            raise UsageError(f"{hparams_file}: {one_line(error)}") from error
        key = str(error).split("'")[1]
        raise UsageError(f"{hparams_file} leaves {key} for the command line: give --{key} (a folder)") from error
    except (YAMLError, KeyError, TypeError) as error:
        raise UsageError(f"{hparams_file} with these options cannot be read ({one_line(error)})") from error
    safe = YAML(typ="safe", pure=True)
    return {key: safe.constructor.construct_object(node, deep=True)
            for key, node in _mapping(resolved, hparams_file) if _kind(node) in ("number", "bool", "text")}


# ================================================================================================ loading
def parse_command_line(args: list[str]):
    """SpeechBrain's ``parse_arguments`` with argparse's mistakes as :class:`UsageError` (not usage text).

    Returns ``(hparams_file, run_opts, overrides)`` as SpeechBrain's does.
    """
    from speechbrain.utils.run_opts import RunOptions

    class OneLineOptions(RunOptions):  # the same options; only how a mistake is reported differs
        @staticmethod
        def _create_parser() -> argparse.ArgumentParser:
            parser = RunOptions._create_parser()
            parser.prog = "train.py"

            def error(message: str) -> None:
                raise UsageError(f"{message} (see python train.py --help)")

            parser.error = error
            return parser

    hparams_file, options, overrides = OneLineOptions.from_command_line_args(args)
    return hparams_file, RunOptions(**options.as_dict()), overrides


def run_option_names() -> list[str]:
    """SpeechBrain's run options (``--device``, ``--precision``, ...)."""
    from speechbrain.utils.run_opts import RunOptions

    return [name for action in RunOptions._create_parser()._actions for name in action.option_strings]


def load_hparams(hparams_file: str, overrides: str) -> dict:
    """The experiment's hparams, built by HyperPyYAML once the file and the overrides are checked.

    Raises
    ------
    UsageError
        The file or an override is wrong (see the module); or an object of the file cannot be
        built with these values (its class, its arguments), named with the library's reason.
    """
    from hyperpyyaml import load_hyperpyyaml

    text = read_hparams(hparams_file)
    given = check_overrides(text, overrides, hparams_file, run_option_names())
    values = plain_values(text, overrides, hparams_file)
    check_values(values, given, hparams_file)
    if isinstance(values.get("output_folder"), str):  # the checkpointer creates its folder while it is built
        check_output_folder(values["output_folder"])
    try:
        return load_hyperpyyaml(text, overrides)
    except OSError as error:
        raise UsageError(f"{hparams_file}: cannot be built: {error.filename or ''} {error.strerror or error}; check "
                         "the folders given") from error
    except (ImportError, AttributeError, TypeError, ValueError, KeyError, YAMLError) as error:
        raise UsageError(f"{hparams_file}: cannot be built with these options ({type(error).__name__}: "
                         f"{one_line(error)}); check its values and the options given") from error


def check_precision(run_opts, hparams: Mapping[str, Any], cuda_available: bool, bf16_on_cuda: bool) -> None:
    """Refuse a mixed precision the device cannot run (before any data is made).

    fp16 runs on CUDA only (SpeechBrain refuses it on the CPU); bf16 on the CPU, or on a GPU that
    supports it. The precision is ``--precision`` if given, else the file's ``precision``.
    """
    device = run_opts["device"] or ("cuda" if cuda_available else "cpu")
    on_cuda = device.startswith("cuda")
    for option in ("precision", "eval_precision"):
        given = option in run_opts.overridden_args
        precision = run_opts[option] if given or option not in hparams else hparams[option]
        where = f"--{option} {precision}" if given else f"{option}: {precision} (hparams)"
        if precision == "fp16" and not on_cuda:
            raise UsageError(f"{where}: half precision needs a CUDA GPU and this run is on the {device}; use "
                             f"--{option} bf16 (mixed precision on the CPU) or fp32")
        if precision == "bf16" and on_cuda and not bf16_on_cuda:
            raise UsageError(f"{where}: this GPU does not support bfloat16; use --{option} fp16 or fp32")
