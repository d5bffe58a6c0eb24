"""Per-modality encoders: each maps its inputs to ``EncoderOutput(tokens (B, T, D), mask (B, T))``."""

from mmfuse.models.encoders.audio_cnn import AudioCNN
from mmfuse.models.encoders.image_cnn import ImageCNN
from mmfuse.models.encoders.text_rnn import TextRNN
from mmfuse.models.encoders.text_transformer import TextTransformer

__all__ = ["AudioCNN", "ImageCNN", "TextRNN", "TextTransformer"]
