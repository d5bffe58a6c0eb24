"""Graph files: the JSON format and PyTorch Geometric ``.pt`` files, read and validated.

JSON format (one graph per file, ``N`` nodes, ``E`` edges, ``F`` node features, ``F_e`` edge features)::

    {"x": [[0.1, 1.0], [0.3, 0.0], [0.7, 1.0]],      # N rows of F numbers each
     "edge_index": [[0, 1], [1, 2]],                  # 2 rows of E node indices: sources, then targets
     "edge_attr": [[1.0], [0.5]]}                     # optional: E rows of F_e numbers

An edge-less graph has ``"edge_index": [[], []]`` (or ``[]``). ``.pt`` files hold what
``torch.save`` wrote for a ``torch_geometric.data.Data`` object, or for a dict of tensors with the
same keys (``torch.save(data.to_dict(), path)``); both load with ``torch.load(weights_only=True)``,
which runs no code from the file.

Shape letters here: ``N`` nodes, ``E`` edges, ``F`` node features, ``F_e`` edge features.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.manifest.errors import SampleError

GraphTensors = dict[str, Tensor]
SUFFIXES = (".json", ".pt", ".pth")
MAX_JSON_MB = 256.0  # a million nodes with 16 features as JSON text is ~150 MB


def read_graph(path: Path, trust_pickle: bool = False, max_json_mb: float = MAX_JSON_MB) -> GraphTensors:
    """Read and validate one graph file.

    Args:
        path: a ``.json`` file in the format above, or a ``.pt`` / ``.pth`` file.
        trust_pickle: for ``.pt`` files that ``torch.load(weights_only=True)`` refuses (they hold
            Python objects other than tensors and PyG's ``Data``), load them with full unpickling,
            which can run code from the file. Only for files you trust.
        max_json_mb: a larger ``.json`` file is refused before it is parsed (parsing takes about
            ten times the file's size in memory).

    Returns:
        ``{"x": (N, F) float32, "edge_index": (2, E) int64}`` plus ``"edge_attr": (E, F_e) float32``
        when the file has edge features. ``N`` may be 0 (the caller decides whether that is allowed).

    Raises:
        SampleError: naming the file: missing, unreadable, or malformed (ragged or non-numeric
            features, a wrong dtype, edge indices out of range, edge features that do not match
            the edges, NaN or inf), a JSON file over ``max_json_mb`` or nested too deeply, or a
            ``.pt`` file with unsafe content (without ``trust_pickle``).
    """
    if not path.is_file():
        raise SampleError("file not found", file=str(path))
    suffix = path.suffix.lower()
    if suffix == ".json":
        raw = _load_json(path, max_json_mb)
    elif suffix in (".pt", ".pth"):
        raw = _load_pt(path, trust_pickle)
    else:
        raise SampleError(f"unknown graph file type {suffix!r} (expected one of {SUFFIXES})", file=str(path))
    try:
        return _validate(raw)
    except ValueError as e:
        raise SampleError(f"malformed graph: {e}", file=str(path)) from None


def _load_json(path: Path, max_mb: float) -> dict[str, Tensor | None]:
    try:
        size = path.stat().st_size
        if size > max_mb * 2**20:
            raise SampleError(
                f"JSON graph file is {size / 2**20:.1f} MB, more than max_json_mb={max_mb:g} "
                "(raise it, or store large graphs as .pt tensors)",
                file=str(path),
            )
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SampleError(f"not a valid JSON file: {e}", file=str(path)) from None
    except RecursionError:
        # json's decoder recurses once per nesting level; the format itself needs three
        raise SampleError(
            "not a valid graph JSON file: nested too deeply (the format needs 3 levels)", file=str(path)
        ) from None
    if not isinstance(obj, dict):
        raise SampleError(
            f'expected a JSON object {{"x": ..., "edge_index": ...}}, got a {type(obj).__name__}',
            file=str(path),
        )
    try:
        for key in ("x", "edge_index"):
            if key not in obj:
                raise ValueError(f"no {key!r} key (keys: {sorted(obj)})")
        x = _json_matrix(obj["x"], "x", "node", integer=False)
        edges = obj["edge_index"]
        if edges == []:  # the short form of an edge-less graph
            edges = [[], []]
        if not isinstance(edges, list) or len(edges) != 2 or not all(isinstance(r, list) for r in edges):
            raise ValueError("'edge_index' must be two lists, [[sources...], [targets...]]")
        if len(edges[0]) != len(edges[1]):
            raise ValueError(f"ragged 'edge_index': {len(edges[0])} sources but {len(edges[1])} targets")
        edge_index = _json_array(edges, "edge_index", integer=True).reshape(2, -1)
        attr = obj.get("edge_attr")
        if attr is None:
            edge_attr = None
        elif isinstance(attr, list) and attr and not any(isinstance(a, list) for a in attr):
            edge_attr = _json_array(attr, "edge_attr", integer=False)  # one scalar per edge
        else:
            edge_attr = _json_matrix(attr, "edge_attr", "edge", integer=False)
    except ValueError as e:
        raise SampleError(f"malformed graph: {e}", file=str(path)) from None
    return {"x": x, "edge_index": edge_index, "edge_attr": edge_attr}


def _json_matrix(value: Any, key: str, what: str, integer: bool) -> Tensor:
    """A JSON list of equal-length number lists -> ``(rows, cols)``; ``[]`` -> ``(0, 0)``."""
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list of per-{what} lists of numbers, got {type(value).__name__}")
    if not value:
        return torch.zeros(0, 0)
    if not all(isinstance(r, list) for r in value):
        raise ValueError(f"{key!r} must be a list of per-{what} lists of numbers (one list per {what})")
    width = len(value[0])
    for i, r in enumerate(value):
        if len(r) != width:
            raise ValueError(f"ragged {key!r}: {what} {i} has {len(r)} values, {what} 0 has {width}")
    return _json_array(value, key, integer)


def _json_array(value: Any, key: str, integer: bool) -> Tensor:
    try:
        array = np.asarray(value)
    except ValueError:  # nested lists of unequal depth
        raise ValueError(f"{key!r} is not a regular table of numbers") from None
    kinds = "iu" if integer else "iuf"
    if array.size and array.dtype.kind not in kinds:
        wanted = "integers" if integer else "numbers"
        found = {"f": "non-integer numbers", "b": "true/false values"}.get(
            array.dtype.kind, "non-numeric values"
        )
        raise ValueError(f"{key!r} must hold {wanted}, found {found}")
    return torch.from_numpy(array.astype(np.int64 if integer else np.float32))


def _safe_globals() -> list[Any]:
    """The PyG classes a pickled ``Data`` needs, where PyG is installed (``Data`` holds only tensors)."""
    try:
        from torch_geometric.data import Data
        from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
        from torch_geometric.data.storage import GlobalStorage
    except ImportError:
        return []
    return [Data, DataEdgeAttr, DataTensorAttr, GlobalStorage]


def _load_pt(path: Path, trust_pickle: bool) -> dict[str, Tensor | None]:
    try:
        if hasattr(torch.serialization, "safe_globals"):  # torch >= 2.5: allowed for this load only
            with torch.serialization.safe_globals(_safe_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            torch.serialization.add_safe_globals(_safe_globals())
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refused something; torch's message is mostly advice to turn the check off
        detail = _refusal_detail(str(e))
        if trust_pickle:
            obj = _load_unsafe(path)  # the user trusts these files; a corrupt one fails there
        elif re.search(r"\bglobal\b", detail, re.IGNORECASE):  # a class or function: unsafe content
            raise SampleError(
                f"unsafe content refused ({detail}): the file holds Python objects besides tensors, and "
                "unpickling them can run code from the file, so mmfuse loads .pt graphs with "
                "torch.load(weights_only=True), which refuses them. Re-save the graph as tensors "
                "(torch.save(data.to_dict(), path)), or, only for files you trust, set "
                "trust_pickle: true on the graph modality (off by default) to load them with full "
                "unpickling",
                file=str(path),
            ) from None
        else:
            raise SampleError(
                f"cannot read .pt file ({detail}): corrupt, not written by torch.save, or content "
                "that torch.load(weights_only=True) does not read (trust_pickle: true, off by "
                "default, loads a file you trust with full unpickling)",
                file=str(path),
            ) from None
    except Exception as e:  # the safe loader runs no code from the file: anything else is a bad file
        raise SampleError(f"cannot read .pt file: {type(e).__name__}: {e}", file=str(path)) from None
    if isinstance(obj, Mapping):
        fields = dict(obj)
    elif callable(getattr(obj, "to_dict", None)) and not hasattr(obj, "node_types"):
        fields = obj.to_dict()  # a PyG Data object
    else:
        kind = "a heterogeneous graph (HeteroData)" if hasattr(obj, "node_types") else type(obj).__name__
        raise SampleError(
            f"expected a torch_geometric Data object or a dict of tensors, got {kind}", file=str(path)
        )
    try:
        for key in ("x", "edge_index"):
            if not isinstance(fields.get(key), Tensor):
                raise ValueError(f"no {key!r} tensor (fields: {sorted(fields)})")
        attr = fields.get("edge_attr")
        if attr is not None and not isinstance(attr, Tensor):
            raise ValueError(f"'edge_attr' must be a tensor, got {type(attr).__name__}")
    except ValueError as e:
        raise SampleError(f"malformed graph: {e}", file=str(path)) from None
    return {"x": fields["x"], "edge_index": fields["edge_index"], "edge_attr": attr}


def _refusal_detail(message: str) -> str:
    """The line of torch's weights_only refusal that says what was refused, without torch's advice
    (which varies between versions and suggests weights_only=False)."""
    advice = ("Weights only load failed", "weights_only", "Check the documentation", "Please file an issue")
    lines = [line.strip() for line in message.split("WeightsUnpickler error:")[-1].splitlines()]
    kept = [line for line in lines if line and not any(a in line for a in advice)]
    return kept[0].split(". Please")[0].rstrip(".") if kept else "refused by torch.load(weights_only=True)"


def _load_unsafe(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # arbitrary unpickling can raise anything
        raise SampleError(f"cannot read .pt file: {e}", file=str(path)) from None


def _validate(raw: Mapping[str, Tensor | None]) -> GraphTensors:
    x, edge_index, edge_attr = raw["x"], raw["edge_index"], raw.get("edge_attr")
    assert x is not None and edge_index is not None
    if x.dtype == torch.bool or x.is_complex() or not (x.is_floating_point() or _is_integer(x)):
        raise ValueError(f"'x' must be a real-valued tensor, got dtype {x.dtype}")
    if x.dim() == 1 and x.numel() == 0:
        x = x.reshape(0, 0)  # no nodes
    if x.dim() != 2:
        raise ValueError(f"'x' must be 2-D (nodes, features), got shape {tuple(x.shape)}")
    if not _is_integer(edge_index):
        raise ValueError(f"'edge_index' must hold integers, got dtype {edge_index.dtype}")
    if edge_index.numel() == 0:
        edge_index = edge_index.reshape(2, 0)
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"'edge_index' must have shape (2, E), got {tuple(edge_index.shape)}")
    N, E = x.shape[0], edge_index.shape[1]
    if E and (int(edge_index.min()) < 0 or int(edge_index.max()) >= N):
        bad = edge_index[(edge_index < 0) | (edge_index >= N)][0]
        raise ValueError(
            f"edge index out of range: edge_index refers to node {int(bad)} but the graph has "
            f"{N} nodes ('x' has {N} rows; valid indices are 0..{N - 1})"
        )
    x = x.to(torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError("'x' holds NaN or inf")
    out = {"x": x.contiguous(), "edge_index": edge_index.to(torch.int64).contiguous()}
    if edge_attr is not None:
        if edge_attr.dtype == torch.bool or not (edge_attr.is_floating_point() or _is_integer(edge_attr)):
            raise ValueError(f"'edge_attr' must be a real-valued tensor, got dtype {edge_attr.dtype}")
        if edge_attr.dim() == 1:
            edge_attr = edge_attr[:, None]  # one scalar per edge
        if edge_attr.dim() != 2 or edge_attr.shape[0] != E:
            raise ValueError(
                f"'edge_attr' must have one row per edge, shape ({E}, F_e); got {tuple(edge_attr.shape)}"
            )
        edge_attr = edge_attr.to(torch.float32)
        if not torch.isfinite(edge_attr).all():
            raise ValueError("'edge_attr' holds NaN or inf")
        out["edge_attr"] = edge_attr.contiguous()
    return out


def _is_integer(t: Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool
