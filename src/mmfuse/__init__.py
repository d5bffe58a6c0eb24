"""mmfuse: a PyTorch Lightning template for multimodal deep learning."""

from importlib.metadata import PackageNotFoundError, version

try:
    # one source of truth: pyproject.toml's `version`, as installed (`pip install -e .` included)
    __version__ = version(__name__)
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
