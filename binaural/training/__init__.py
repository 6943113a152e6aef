"""What ``train.py`` uses: its command line read and checked before any work (:mod:`.arguments`),
the experiment folder's lock and log (:mod:`.experiment`), crash-safe checkpoints
(:mod:`.checkpoints`), the augmentations (:mod:`.augment`), the loss (:mod:`.losses`), the training
data (:mod:`.data`) and the saved test examples (:mod:`.examples`); one optimisation step outside a Brain, for the benchmarks (:mod:`.step`)."""
