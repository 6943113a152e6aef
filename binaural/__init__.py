"""Binaural speech separation: the library behind the recipe's commands.

Layers, lowest first; a module imports only from its own layer or the ones above it in this list:

=====================  ====================================================================
``binaural.errors``    the one error base, :class:`~binaural.errors.RecipeError`
``binaural.io``        atomic writes and locks, audio reading and writing, downloads
``binaural.data``      the dataset: layout on disk, metadata, HRTFs, rooms, noise, mixing,
                       data variants, the dataset record, generation, manifests, dynamic
                       mixing, the synthetic speech corpus
``binaural.models``    the three binaural Conv-TasNet separators and their fused layers
``binaural.realtime``  streaming: the PyTorch reference step, the numba and ONNX engines
``binaural.evaluation``  metrics (SNR, SI-SNR, SDR, ΔITD, ΔILD), the report and listening page
``binaural.training``  checkpoints, augmentations, the loss, the training data
``binaural.separation``  a trained experiment as a separator of files, blocks and streams
=====================  ====================================================================

``data`` and ``models`` are side by side (neither imports the other); ``realtime``,
``evaluation`` and ``training`` build on them; ``separation`` on all of them. The commands at the
top of the repository (``train.py``, ``separate.py``, ...) import the package, never the reverse.
"""
