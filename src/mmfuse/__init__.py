"""mmfuse: a PyTorch Lightning template for multimodal deep learning."""

__version__ = "0.1.0"
