"""Errors that name the place: file, row, sample id, column and what was wrong."""

from __future__ import annotations

from typing import Any, Protocol


class RowLike(Protocol):
    """What locates a manifest row (``Row`` has it; defined here so that errors import nothing)."""

    @property
    def row(self) -> int: ...
    @property
    def id(self) -> str: ...
    @property
    def split(self) -> str: ...


class DataError(ValueError):
    """A problem with the input data, located as precisely as is known.

    Args:
        reason: what was wrong, in words.
        file: the manifest or media file concerned.
        row: 1-based data row of the manifest (the header is row 0 in CSV files; JSONL rows are lines).
        sample_id: the value of the sample's ``id`` column.
        column: the manifest column concerned.
        split: the row's split, when known (kept for reports such as ``skipped_samples.csv``;
            not part of the message).
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        row: int | None = None,
        sample_id: str | None = None,
        column: str | None = None,
        split: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.sample_id = sample_id
        self.column = column
        self.split = split
        super().__init__(self._message())

    @classmethod
    def in_row(cls, reason: str, row: RowLike, file: str, column: str | None = None) -> DataError:
        """A problem of one manifest row: its number, id and split come from ``row``.

        Args:
            reason: what was wrong, in words.
            row: the manifest row (a :class:`~mmfuse.data.manifest.manifest.Row`).
            file: the manifest, or the media file the row's cell names.
            column: the manifest column concerned, when one is.
        """
        return cls(reason, file=file, row=row.row, sample_id=row.id, column=column, split=row.split)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # keep every field when a DataLoader worker sends the error to the main process
        return (_rebuild, (self.reason, self.file, self.row, self.sample_id, self.column, self.split))

    def _message(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.sample_id is not None:
            where.append(f"id {self.sample_id!r}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


def _rebuild(
    reason: str,
    file: str | None,
    row: int | None,
    sample_id: str | None,
    column: str | None,
    split: str | None,
) -> DataError:
    return DataError(reason, file=file, row=row, sample_id=sample_id, column=column, split=split)


class SampleError(Exception):
    """Raised by a modality's ``load`` when one cell cannot be decoded.

    The caller knows the row, id and column and turns this into a :class:`DataError`.

    Args:
        reason: what was wrong with the cell.
        file: the media file that failed, when the cell names one.
    """

    def __init__(self, reason: str, file: str | None = None) -> None:
        self.reason = reason
        self.file = file
        super().__init__(reason if file is None else f"{file}: {reason}")


class ConfigError(ValueError):
    """A setting the user gave that cannot work, or two settings that disagree.

    The message names the setting(s) by their config key (``model.encoders.image.init_args.in_channels``)
    and says what to change. The ``mmfuse`` command prints it as one message (exit code 1) instead of
    a traceback, like a :class:`DataError`.
    """
