"""What ``train.py``'s Brain uses: crash-safe checkpoints (:mod:`.checkpoints`), the augmentations
(:mod:`.augment`), the loss (:mod:`.losses`), the training data (:mod:`.data`) and the saved
test examples (:mod:`.examples`)."""
