"""A pretrained Hugging Face text encoder (BERT, MiniLM, RoBERTa, T5's encoder, ...) as a token encoder."""

from __future__ import annotations

from torch import Tensor, nn

from mmfuse.models.encoders.hf_common import HFEncoderBase, backbone_width
from mmfuse.models.masking import ensure_one_key, zero_masked
from mmfuse.types import EncoderOutput


class HFTextEncoder(HFEncoderBase):
    """``transformers.AutoModel`` over token ids; its token states, projected to ``D``, are the tokens.

    Pair it with the text data's Hugging Face tokenizer of the same model
    (``TextDataModule(tokenizer=<same name or path>)``). Rows with no real token (a missing text)
    give all-zero tokens, not NaN.

    Vocabulary: ``vocab_size`` is what the data's ``encoder_requirements()`` is checked against
    (``len(tokenizer)``). By default it is the backbone's ``config.vocab_size``, equal to
    ``len(tokenizer)`` for BERT-likes (MiniLM: 30522). The ``mmfuse`` command sets ``vocab_size`` to
    ``len(tokenizer)`` from the text data; built in Python, set it where they differ: smaller than
    the embedding table (T5 pads its table to 32128 rows for a 32100-token tokenizer) is accepted as
    is; larger (tokens added to the tokenizer) resizes the token embeddings with
    ``resize_token_embeddings`` (new rows random; trainable only when the backbone is not frozen).

    Args:
        model_name_or_path: a hub id (``sentence-transformers/all-MiniLM-L6-v2``) or a local folder.
        d_model: output width ``D``.
        freeze: freeze the backbone (no gradients, kept in eval mode); the projection still trains.
        trust_remote_code: allow the model's own code from the hub. Off unless set in the config.
        gradient_checkpointing: recompute the backbone's activations in backward to save memory.
        config_only: random weights of the model's architecture (``AutoConfig.from_pretrained``),
            no pretrained weights loaded: for tests and offline experiments.
        vocab_size: the tokenizer's size, when it differs from the backbone's ``config.vocab_size``
            (see above). None: ``config.vocab_size``.
    """

    def __init__(
        self,
        model_name_or_path: str,
        d_model: int = 64,
        freeze: bool = False,
        trust_remote_code: bool = False,
        gradient_checkpointing: bool = False,
        config_only: bool = False,
        vocab_size: int | None = None,
    ) -> None:
        super().__init__(model_name_or_path, freeze, trust_remote_code, gradient_checkpointing, config_only)
        config = self.backbone.config
        rows = int(config.vocab_size)
        if vocab_size is not None and vocab_size > rows:
            self.backbone.resize_token_embeddings(vocab_size)
            if freeze:
                self.backbone.requires_grad_(False)
        self.vocab_size = rows if vocab_size is None else vocab_size
        self.d_model = d_model
        self.backbone_dim = backbone_width(config, "HFTextEncoder")
        self.proj = nn.Linear(self.backbone_dim, d_model)

    def backbone_states(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The backbone's last hidden states ``(B, L, backbone_dim)``, zero at padding."""
        mask = attention_mask.bool()
        # a row with no real token attends to position 0 (finite garbage), zeroed below
        out = self.backbone(input_ids=input_ids, attention_mask=ensure_one_key(mask).long())
        return zero_masked(out.last_hidden_state, mask)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> EncoderOutput:
        """Encode a batch of padded token id sequences.

        Args:
            input_ids: ``(B, L)`` long token ids of the model's tokenizer.
            attention_mask: ``(B, L)`` bool, True = real token.

        Returns:
            EncoderOutput with tokens ``(B, L, D)`` (zeros at padding) and mask = ``attention_mask``.
        """
        B, L = input_ids.shape
        mask = attention_mask.bool()
        if mask.shape != (B, L):
            raise ValueError(f"HFTextEncoder: attention_mask {tuple(mask.shape)} != input_ids {(B, L)}")
        tokens = self.proj(self.backbone_states(input_ids, mask))  # (B, L, D)
        return EncoderOutput(tokens=zero_masked(tokens, mask), mask=mask)
