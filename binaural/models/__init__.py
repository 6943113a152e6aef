"""The binaural Conv-TasNet separators (:mod:`.tasnet`) and their fused layers (:mod:`.layers`).

The YAML files name the separators here: ``Model: !new:binaural.models.ParallelTasNet``.
"""
from binaural.models.tasnet import BinauralTasNet, CrossChannelTasNet, IndependentTasNet, ParallelTasNet

__all__ = ["BinauralTasNet", "CrossChannelTasNet", "IndependentTasNet", "ParallelTasNet"]
