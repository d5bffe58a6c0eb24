"""Decode one manifest row into its modalities, collecting everything that is wrong with it.

The training dataset and ``mmfuse check-data`` both call :func:`decode_row`, so they agree exactly
on what a bad sample is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

from mmfuse.data.manifest.errors import DataError, SampleError
from mmfuse.data.manifest.manifest import Manifest, Row
from mmfuse.data.modalities.base import ModalityDataModule, Sample
from mmfuse.data.sources.shards import ShardRow

Status = Literal["present", "missing", "broken"]
STATUSES: tuple[Status, ...] = ("present", "missing", "broken")


class Decoded(NamedTuple):
    """One row, decoded.

    Attributes:
        inputs: modality -> its tensors, or None where the cell is empty or broken.
        status: modality -> ``present`` / ``missing`` (empty cell) / ``broken`` (a problem).
        problems: everything wrong with the row, each naming file, row, id and column; empty when
            the row is usable.
    """

    inputs: dict[str, Sample | None]
    status: dict[str, Status]
    problems: list[DataError]


def decode_row(
    manifest: Manifest,
    row: Row,
    modalities: Mapping[str, ModalityDataModule],
    train: bool,
    labelled: bool = True,
) -> Decoded:
    """Decode every non-empty cell of ``row`` with its modality's ``load`` and check its target.

    Problems: a media path outside the manifest's folder (unless the source allows it), a cell that
    does not decode (missing file, corrupt file, ...), an empty cell of a
    ``required`` modality, no modality present at all, and, when ``labelled``, a target cell that is
    invalid, or no target at all in a labelled split (see :meth:`Manifest.target_problems`).

    Args:
        manifest: the parsed manifest (for the root folder, the classes and the file name).
        row: the row to decode.
        modalities: modality name -> the DataModule that decodes its column.
        train: decode with train-time augmentation.
        labelled: check the target (False for ``predict``, where targets may be absent).
    """
    inputs: dict[str, Sample | None] = {}
    status: dict[str, Status] = {}
    problems: list[DataError] = []

    def problem(reason: str, column: str | None, file: str | None = None) -> None:
        problems.append(
            DataError.in_row(
                reason,
                row,
                file or (row.place(column) if isinstance(row, ShardRow) else str(manifest.path)),
                column,
            )
        )

    for name, dm in modalities.items():
        inputs[name] = None
        cell = row.cells.get(dm.column, "")
        if cell.strip() == "":
            status[name] = "missing"  # an empty cell: this modality is missing for this sample
            if dm.required:
                status[name] = "broken"
                problem(f"empty cell, but modality {name!r} is required", dm.column)
            continue
        outside = manifest.outside_root(cell) if dm.cell_is_path else None
        if outside is not None:
            status[name] = "broken"
            problem(outside, dm.column, str(manifest.root / cell))
            continue
        try:
            if isinstance(row, ShardRow) and dm.cell_is_path:
                inputs[name] = dm.load_bytes(*row.read(dm.column), train)  # a member of the row's shard
            else:
                inputs[name] = dm.load(cell, manifest.root, train)
            status[name] = "present"
        except SampleError as e:
            status[name] = "broken"
            problem(e.reason, dm.column, e.file)
    if modalities and all(s == "missing" for s in status.values()):
        columns = [m.column for m in modalities.values()]
        problem(f"no modality present (columns {columns} are all empty)", None)
    if labelled:
        for column, reason in manifest.target_problems(row):
            problem(reason, column)
    return Decoded(inputs, status, problems)


def missing_columns(manifest: Manifest, modalities: Mapping[str, ModalityDataModule]) -> list[DataError]:
    """One problem per modality whose column the manifest does not have (nothing of it can be decoded)."""
    return [
        DataError(
            f"modality {name!r} reads column {dm.column!r}, which the manifest does not have "
            f"(columns: {manifest.columns})",
            file=str(manifest.path),
            column=dm.column,
        )
        for name, dm in modalities.items()
        if dm.column not in manifest.columns
    ]
