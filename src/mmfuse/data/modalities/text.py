"""Text: a word vocabulary learnt from the train split, or a Hugging Face tokenizer."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities.base import ModalityDataModule, Sample, SampleView
from mmfuse.pretrained import resolve_model_path

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mmfuse.data.manifest.source import ManifestSource

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
_WORD = r"\w+|[^\w\s]"  # runs of word characters, or single punctuation marks


class TextDataModule(ModalityDataModule):
    """Tokenizes the text held in a manifest column into ``input_ids`` and ``attention_mask``.

    Two tokenizers:

    - built-in (``tokenizer=None``): words and punctuation marks, indexed by a vocabulary learnt
      from the train split in :meth:`fit` (most frequent first, ties alphabetical): a ``tokenizers``
      WordLevel model trained by its WordLevelTrainer. Index 0 is ``<pad>``, 1 is ``<unk>`` (words
      not in the vocabulary). The vocabulary travels with the checkpoint through :meth:`state_dict`;
      :meth:`save_tokenizer` writes it as a Hugging Face tokenizer (``AutoTokenizer`` loads it).
    - Hugging Face (``tokenizer="<name or path>"``): ``AutoTokenizer.from_pretrained``, loaded on
      first use, with its special tokens; nothing is learnt from the data. Under the ``mmfuse``
      command it is taken from the text modality's ``HFTextEncoder`` when unset, so the model is
      named once (:func:`mmfuse.lit.data_links.link_pretrained`).

    The encoder receives ``input_ids`` ``(B, L)`` long and ``attention_mask`` ``(B, L)`` bool
    (True = real token), padded to the longest text in the batch.

    Args:
        column: manifest column holding the text itself.
        tokenizer: a Hugging Face tokenizer name, local folder or ``pkg:<package>/<folder>``
            (:func:`mmfuse.pretrained.resolve_model_path`), loaded with
            ``transformers.AutoTokenizer.from_pretrained``. None uses the built-in word vocabulary.
        max_length: texts are truncated to this many tokens (special tokens included).
        vocab_size: capacity of the built-in vocabulary, ``<pad>`` and ``<unk>`` included: the most
            frequent words are kept up to it. The text encoder's embedding has one row per entry of the
            learnt vocabulary (at most this many); the ``mmfuse`` command sets the encoder's
            ``vocab_size`` to it. Ignored with a Hugging Face tokenizer.
        min_freq: the built-in vocabulary keeps only words seen at least this often in the train split.
        lowercase: lowercase text before the built-in tokenizer splits it (a Hugging Face tokenizer
            applies its own normalisation).
        required: an empty cell is a problem (check-data reports it; training raises or skips the
            row, see ``on_bad_sample``) instead of marking this modality missing for the sample.
        source: the manifest, only needed when this module is used alone.
        batch_size: samples per batch, only used when alone.
        num_workers: DataLoader worker processes, only used when alone.
    """

    name = "text"

    def __init__(
        self,
        column: str = "text",
        tokenizer: str | None = None,
        max_length: int = 64,
        vocab_size: int = 8000,
        min_freq: int = 1,
        lowercase: bool = True,
        required: bool = False,
        source: ManifestSource | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            column=column, required=required, source=source, batch_size=batch_size, num_workers=num_workers
        )
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if vocab_size < 3:
            raise ValueError(
                f"vocab_size must be >= 3 (<pad>, <unk> and at least one word), got {vocab_size}"
            )
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.vocab_size = vocab_size
        self.min_freq = min_freq
        self.lowercase = lowercase
        self._words: Tokenizer | None = None  # the built-in WordLevel tokenizer, once learnt
        self._hf: PreTrainedTokenizerBase | None = None

    # --- tokenizers ----------------------------------------------------------------------------

    @property
    def hf_tokenizer(self) -> PreTrainedTokenizerBase:
        """The Hugging Face tokenizer, loaded on first use (only when ``tokenizer`` is set)."""
        if self.tokenizer is None:
            raise RuntimeError("TextDataModule uses the built-in vocabulary (tokenizer=None)")
        if self._hf is None:
            from transformers import AutoTokenizer

            # DataLoader workers fork after the tokenizer may have run: its thread pool would deadlock
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            self._hf = AutoTokenizer.from_pretrained(resolve_model_path(self.tokenizer))
        return self._hf

    def _word_level(self, vocab: dict[str, int] | None = None) -> Tokenizer:
        """The built-in tokenizer: a WordLevel model (``vocab``, or empty to train), lower-casing when
        ``lowercase``, words split as runs of word characters and single punctuation marks."""
        tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
        if self.lowercase:
            tokenizer.normalizer = normalizers.Lowercase()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(_WORD), behavior="isolated")]
        )
        return tokenizer

    @property
    def vocab(self) -> list[str]:
        """The built-in vocabulary in index order (``<pad>``, ``<unk>``, then words)."""
        if self._words is None:
            raise _not_fitted()
        index = self._words.get_vocab()
        return sorted(index, key=index.__getitem__)

    def save_tokenizer(self, folder: str | os.PathLike[str]) -> Path:
        """Write the built-in vocabulary as a Hugging Face tokenizer (``tokenizer.json`` and its config)
        that ``transformers.AutoTokenizer.from_pretrained(folder)`` loads, giving the same ids.

        Returns:
            the ``tokenizer.json`` written.
        """
        from transformers import PreTrainedTokenizerFast

        if self._words is None:
            raise _not_fitted()
        fast = PreTrainedTokenizerFast(tokenizer_object=self._words, pad_token=PAD, unk_token=UNK)
        fast.save_pretrained(str(folder))
        return Path(folder) / "tokenizer.json"

    @property
    def pad_id(self) -> int:
        """The id that pads ``input_ids``."""
        if self.tokenizer is None:
            return PAD_ID
        # a tokenizer without a pad token (GPT-2 style): any valid id will do, the mask hides it
        pad = self.hf_tokenizer.pad_token_id
        return 0 if pad is None else int(pad)

    # --- ModalityDataModule --------------------------------------------------------------------

    def fit(self, train_cells: Sequence[str]) -> None:
        """Build the built-in vocabulary from the train split's texts (nothing to do with a HF tokenizer)."""
        if self.tokenizer is not None:
            return
        words = self._word_level()
        trainer = trainers.WordLevelTrainer(
            vocab_size=self.vocab_size,  # <pad> and <unk> included
            min_frequency=self.min_freq,
            special_tokens=[PAD, UNK],  # ids 0 and 1, in this order
            show_progress=False,
        )
        words.train_from_iterator(train_cells, trainer)
        self._words = words

    def load(self, cell: str, root: Path, train: bool) -> Sample:
        """Tokenize one text into ``{"input_ids": (L,) long, "attention_mask": (L,) bool}``, unpadded.

        Raises:
            SampleError: the text yields no tokens (e.g. only whitespace).
            RuntimeError: the built-in vocabulary has not been built or restored yet.
        """
        if self.tokenizer is None:
            if self._words is None:
                raise _not_fitted()
            ids = self._words.encode(cell).ids[: self.max_length]
            if not ids:
                raise SampleError("text has no tokens")
        else:
            encoded = self.hf_tokenizer(
                cell, truncation=True, max_length=self.max_length, return_special_tokens_mask=True
            )
            ids = list(encoded["input_ids"])
            if all(encoded["special_tokens_mask"]):
                raise SampleError("text has no tokens")
        input_ids = torch.tensor(ids, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones(len(ids), dtype=torch.bool)}

    def collate(self, samples: Sequence[Sample | None]) -> dict[str, Tensor]:
        """Pad to the longest text: ``{"input_ids": (B, L) long, "attention_mask": (B, L) bool}``.

        Padding is ``pad_id`` with mask False; a missing text (``None``) is one masked pad token.
        """
        empty = torch.zeros(0, dtype=torch.long)
        texts = [empty if s is None else s["input_ids"] for s in samples]
        lengths = torch.tensor([len(t) for t in texts])  # (B,)
        input_ids = pad_sequence(texts, batch_first=True, padding_value=self.pad_id)  # (B, L)
        if input_ids.shape[1] == 0:
            input_ids = torch.full((len(samples), 1), self.pad_id, dtype=torch.long)
        attention_mask = torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]  # (B, L)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def sample_view(self, cell: str, root: Path, inputs: Mapping[str, Tensor], b: int) -> SampleView:
        """The text, and its real tokens as text: vocabulary words, or the Hugging Face tokenizer's pieces."""
        ids = inputs["input_ids"][b][inputs["attention_mask"][b]].tolist()
        if self.tokenizer is not None:
            tokens = [str(t) for t in self.hf_tokenizer.convert_ids_to_tokens(ids)]
        else:
            vocab = self.vocab
            tokens = [vocab[i] if 0 <= i < len(vocab) else str(i) for i in ids]
        return SampleView("text", cell, tokens)

    def encoder_requirements(self) -> dict[str, int]:
        """The number of token ids: the learnt vocabulary's size (``<pad>``, ``<unk>`` and the words
        kept, at most ``vocab_size``), or the Hugging Face tokenizer's."""
        if self.tokenizer is None:
            return {"vocab_size": len(self.vocab)}
        return {"vocab_size": len(self.hf_tokenizer)}

    def state_dict(self) -> dict[str, Any]:
        """``{"vocab": [words in index order]}`` for the built-in vocabulary once built; else empty."""
        if self.tokenizer is None and self._words is not None:
            return {"vocab": self.vocab}
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the built-in vocabulary saved by :meth:`state_dict`.

        Raises:
            ValueError: the saved vocabulary does not fit this configuration.
        """
        if "vocab" not in state_dict:
            return
        vocab = [str(w) for w in state_dict["vocab"]]
        if self.tokenizer is not None:
            raise ValueError(
                f"the checkpoint holds a built-in vocabulary but tokenizer={self.tokenizer!r} is configured"
            )
        if vocab[:2] != [PAD, UNK]:
            raise ValueError(f"a saved vocabulary must start with {PAD!r}, {UNK!r}; got {vocab[:2]}")
        if len(vocab) > self.vocab_size:
            raise ValueError(
                f"the saved vocabulary has {len(vocab)} entries, more than vocab_size={self.vocab_size}"
            )
        self._words = self._word_level({word: i for i, word in enumerate(vocab)})


def _not_fitted() -> RuntimeError:
    return RuntimeError(
        "TextDataModule has no vocabulary yet: call fit(train_cells) or load_state_dict(...) "
        "before load() (MultimodalDataModule does this in setup)"
    )
