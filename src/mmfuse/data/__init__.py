"""Data: a manifest of samples, one DataModule per modality, and the multimodal join."""

from mmfuse.data.manifest.errors import DataError, SampleError
from mmfuse.data.manifest.manifest import Manifest
from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.manifest.tasks import Task, TaskSpec
from mmfuse.data.modalities.audio import AudioDataModule
from mmfuse.data.modalities.base import ModalityDataModule
from mmfuse.data.modalities.graph import GraphDataModule
from mmfuse.data.modalities.image import ImageDataModule
from mmfuse.data.modalities.text import TextDataModule
from mmfuse.data.multimodal import MultimodalDataModule
from mmfuse.data.sources.relational import RelationalSource
from mmfuse.data.sources.shards import ShardSource
from mmfuse.data.sources.synthetic import SyntheticSource
from mmfuse.data.sources.synthetic_graph import SyntheticGraphSource

__all__ = [
    "AudioDataModule",
    "DataError",
    "GraphDataModule",
    "ImageDataModule",
    "Manifest",
    "ManifestSource",
    "ModalityDataModule",
    "MultimodalDataModule",
    "RelationalSource",
    "SampleError",
    "ShardSource",
    "SyntheticGraphSource",
    "SyntheticSource",
    "Task",
    "TaskSpec",
    "TextDataModule",
]
