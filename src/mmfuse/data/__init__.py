"""Data: a manifest of samples, one DataModule per modality, and the multimodal join."""

from mmfuse.data.audio import AudioDataModule
from mmfuse.data.base import ModalityDataModule
from mmfuse.data.errors import DataError, SampleError
from mmfuse.data.graph import GraphDataModule
from mmfuse.data.image import ImageDataModule
from mmfuse.data.manifest import Manifest, ManifestSource
from mmfuse.data.multimodal import MultimodalDataModule
from mmfuse.data.synthetic import SyntheticSource
from mmfuse.data.synthetic_graph import SyntheticGraphSource
from mmfuse.data.tasks import Task, TaskSpec
from mmfuse.data.text import TextDataModule

__all__ = [
    "AudioDataModule",
    "DataError",
    "GraphDataModule",
    "ImageDataModule",
    "Manifest",
    "ManifestSource",
    "ModalityDataModule",
    "MultimodalDataModule",
    "SampleError",
    "SyntheticGraphSource",
    "SyntheticSource",
    "Task",
    "TaskSpec",
    "TextDataModule",
]
