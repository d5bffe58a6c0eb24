"""The LightningCLI with mmfuse's links, checkpointing and end-of-run report, its help and its user errors."""

from mmfuse.cli.multimodal_cli import MultimodalCLI

__all__ = ["MultimodalCLI"]
