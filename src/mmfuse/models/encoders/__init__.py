"""Per-modality encoders: each maps its inputs to ``EncoderOutput(tokens (B, T, D), mask (B, T))``."""

from mmfuse.models.encoders.audio_cnn import AudioCNN
from mmfuse.models.encoders.audio_transformer import AudioTransformer
from mmfuse.models.encoders.gnn import GCNLayer, GraphEncoder
from mmfuse.models.encoders.hf_audio import HFAudioEncoder
from mmfuse.models.encoders.hf_common import other_parameters, pretrained_parameters
from mmfuse.models.encoders.hf_image import HFImageEncoder
from mmfuse.models.encoders.hf_text import HFTextEncoder
from mmfuse.models.encoders.image_cnn import ImageCNN
from mmfuse.models.encoders.image_vit import ImageViT
from mmfuse.models.encoders.text_rnn import TextRNN
from mmfuse.models.encoders.text_transformer import TextTransformer

__all__ = [
    "AudioCNN",
    "AudioTransformer",
    "GCNLayer",
    "GraphEncoder",
    "HFAudioEncoder",
    "HFImageEncoder",
    "HFTextEncoder",
    "ImageCNN",
    "ImageViT",
    "TextRNN",
    "TextTransformer",
    "other_parameters",
    "pretrained_parameters",
]
