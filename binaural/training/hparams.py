"""Recipe YAML files across layouts: experiments saved before the ``binaural`` package still load.

An experiment folder keeps the resolved YAML it was trained with (``hyperparams.yaml``). Before
the library moved into the package, those files named its flat modules
(``Model: !new:binaural_tasnet.ParallelTasNet``, ``dataset_options: !new:dataset.GenerationOptions``,
...). :func:`current_yaml` rewrites such tags to the modules that hold the objects now, so that
``separate.py --experiment`` and ``train.py --test_only`` keep working on those folders. Nothing
else in the text changes. The old names are rewritten whatever is installed: a package that
happens to be called ``dataset`` or ``noise`` must not capture an experiment's objects.
"""
from __future__ import annotations

import re

#: The flat module of the previous layout -> the module that holds its objects now.
LEGACY_MODULES: dict[str, str] = {
    "atomic": "binaural.io.atomic",
    "audio_io": "binaural.io.audio",
    "binaural_tasnet": "binaural.models.tasnet",
    "checkpoints": "binaural.training.checkpoints",
    "data_variants": "binaural.data.variants",
    "dataset": "binaural.data.record",
    "download": "binaural.io.download",
    "dynamic_mixing": "binaural.data.dynamic_mixing",
    "errors": "binaural.errors",
    "hrtf": "binaural.data.hrtf",
    "layout": "binaural.data.layout",
    "metadata": "binaural.data.metadata",
    "metrics": "binaural.evaluation.metrics",
    "mixing": "binaural.data.mixing",
    "noise": "binaural.data.noise",
    "numba_streaming": "binaural.realtime.numba_engine",
    "onnx_streaming": "binaural.realtime.onnx_engine",
    "prepare_data": "binaural.data.manifests",
    "report": "binaural.evaluation.report",
    "rooms": "binaural.data.rooms",
    "streaming": "binaural.realtime.streaming",
    "synthetic_speech": "binaural.data.synthetic_speech",
}
#: Objects that moved to another module than the rest of their old one.
LEGACY_OBJECTS: dict[str, str] = {
    "dataset.ensure_dataset": "binaural.data.generation.ensure_dataset",
    "binaural_tasnet.fuse_masknet": "binaural.models.layers.fuse_masknet",
}

# A HyperPyYAML tag that imports: ``!new:``, ``!name:``, ``!apply:``, ``!module:``, then a dotted name.
_IMPORTING_TAG = re.compile(r"(?P<tag>!(?:new|name|apply|module):)(?P<name>[A-Za-z_][\w.]*)")


def current_name(dotted: str) -> str:
    """``binaural.models.tasnet.ParallelTasNet`` -> ``binaural.models.tasnet.ParallelTasNet``; others as they are."""
    if dotted in LEGACY_OBJECTS:
        return LEGACY_OBJECTS[dotted]
    head, dot, rest = dotted.partition(".")
    if head not in LEGACY_MODULES:
        return dotted
    return LEGACY_MODULES[head] + dot + rest


def current_yaml(text: str) -> str:
    """The YAML ``text`` with every importing tag naming a module of the previous layout renamed."""
    return _IMPORTING_TAG.sub(lambda match: match["tag"] + current_name(match["name"]), text)
