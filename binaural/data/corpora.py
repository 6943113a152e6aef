"""The corpora a binaural mixture set is made from, one class each, as the data variants are.

WSJ0 with the official Binaural-WSJ0Mix metadata, WSJ0 (or any corpus in its layout) with our own
drawn metadata, and LibriSpeech with the public LibriMix metadata differ in where the utterances
live (the hparams key / flag naming their root), how the splits are named, which generator makes
the tree, what its record and manifests are called, and what dynamic mixing draws from. The
generator's caller (``train.py``), the manifests and dynamic mixing ask the corpus; none of them
tests a corpus's name. The corpus of a build follows from its options object
(:class:`binaural.data.record.GenerationOptions` or :class:`binaural.data.librimix.LibriMixOptions`)::

    corpus = Corpus.of(options)
    corpus.ensure(hparams[corpus.root_key], data_folder, options)
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

from binaural.data.layout import SPLITS
from binaural.data.librimix import LibriMixOptions, ensure_librimix, scan_librispeech_talkers
from binaural.data.record import GenerationOptions
from binaural.errors import RecipeError

__all__ = ["Corpus", "LibriSpeechCorpus", "OwnWSJ0Corpus", "WSJ0Corpus"]


class Corpus(abc.ABC):
    """One source of talkers and its metadata; subclasses are registered in definition order."""

    #: The hparams key (and generator flag) holding the corpus's root folder.
    root_key: ClassVar[str]
    #: What the dataset made from it is called, ``{n}`` the talker count.
    title_format: ClassVar[str]
    _registry: ClassVar[list[type["Corpus"]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None):
            Corpus._registry.append(cls)

    @classmethod
    def of(cls, options: Any) -> "Corpus":
        """The corpus a dataset options object describes (the most specific class that claims it)."""
        for corpus in reversed(Corpus._registry):
            if corpus.claims(options):
                return corpus()
        raise RecipeError(
            f"dataset_options is a {type(options).__name__}; declare binaural.data.record.GenerationOptions "
            "(WSJ0) or binaural.data.librimix.LibriMixOptions (LibriSpeech) as the hparams files do"
        )

    @classmethod
    @abc.abstractmethod
    def claims(cls, options: Any) -> bool:
        """Whether ``options`` describe a dataset made from this corpus."""

    def title(self, n_spks: int) -> str:
        return self.title_format.format(n=n_spks)

    @abc.abstractmethod
    def splits(self, options: Any) -> tuple[str, str, str]:
        """The (training, validation, test) split folders of the dataset."""

    def manifest_name(self, n_spks: int, split: str) -> str:
        """The SpeechBrain manifest of one split (the hparams files' ``train_data`` ... name it so)."""
        return f"{self.title(n_spks).lower().replace(' ', '_')}_{split}.csv"

    @abc.abstractmethod
    def ensure(self, root: str | Path, output_root: str | Path, options: Any) -> None:
        """Make ``output_root`` hold the complete dataset of ``options``, made from ``root`` if it lacks."""

    def dynamic_mixing_options(self, options: Any) -> dict[str, Any]:
        """What the corpus adds to the recipe's dynamic-mixing factory."""
        return {}


class WSJ0Corpus(Corpus):
    """WSJ0 with the official Binaural-WSJ0Mix metadata (``tr``/``cv``/``tt``)."""

    root_key = "wsj_root"
    title_format = "Binaural WSJ0-{n}mix"

    @classmethod
    def claims(cls, options: Any) -> bool:
        return isinstance(options, GenerationOptions)

    def splits(self, options: Any) -> tuple[str, str, str]:
        return SPLITS  # type: ignore[return-value]

    def manifest_name(self, n_spks: int, split: str) -> str:
        from binaural.data.layout import manifest_name

        return manifest_name(n_spks, split)

    def ensure(self, root, output_root, options) -> None:
        from binaural.data.generation import ensure_dataset

        ensure_dataset(root, output_root, options)


class OwnWSJ0Corpus(WSJ0Corpus):
    """A corpus in the WSJ0 layout with our own drawn metadata and listener split."""

    @classmethod
    def claims(cls, options: Any) -> bool:
        return isinstance(options, GenerationOptions) and options.own_metadata

    def dynamic_mixing_options(self, options: Any) -> dict[str, Any]:
        # The official CIPIC split would let own-mode validation/test listeners into training.
        return {"listener_split": "own"}


class LibriSpeechCorpus(Corpus):
    """LibriSpeech with the public LibriMix metadata (``train-100``/``train-360``, ``dev``, ``test``)."""

    root_key = "librispeech_root"
    title_format = "Binaural Libri{n}Mix"

    @classmethod
    def claims(cls, options: Any) -> bool:
        return isinstance(options, LibriMixOptions)

    def splits(self, options: Any) -> tuple[str, str, str]:
        return (options.train_split, "dev", "test")

    def ensure(self, root, output_root, options) -> None:
        ensure_librimix(root, output_root, options)

    def dynamic_mixing_options(self, options: Any) -> dict[str, Any]:
        # LibriSpeech's <speaker>/<chapter>/<id>.flac talkers; the training listeners of the placement
        # draw (split_subjects with the generation seed), never a dev or test listener.
        return {"talker_scan": scan_librispeech_talkers, "listener_split": "own"}
