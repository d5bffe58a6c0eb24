"""Class names learnt from a target column's values, when the config does not give them.

Integer values are class ids (the classes are ``0..max``); names are sorted in natural order
(``class2`` before ``class10``); a value seen once where a typical class has many rows is taken for
a typo, not a class (it is then a problem of its row).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from mmfuse.data.manifest.errors import DataError

_TYPICAL_CLASS_ROWS = 10  # see _outliers
_DIGITS = re.compile(r"([0-9]+)")  # ASCII digits only: int() of other Unicode digits may fail


def natural_key(text: str) -> tuple[tuple[tuple[int, int, str], ...], str]:
    """Sort key that compares runs of digits as numbers: ``"class2"`` before ``"class10"``.

    Digit runs sort before letters at the same position; the text itself breaks remaining ties
    (``"a01"`` and ``"a1"``), so the order is total and the same on every machine.
    """
    parts = tuple((0, int(p), "") if _DIGITS.fullmatch(p) else (1, 0, p) for p in _DIGITS.split(text) if p)
    return parts, text


def infer_classes(counts: Counter[str], path: Path, column: str, ints: bool) -> list[str]:
    """Class names from target counts: ``0..max`` when the values are integer ids, else the names
    in natural order (:func:`natural_key`)."""
    values = set(counts) - _outliers(counts)
    numbers = {int(v) for v in values if _is_int(v)} if ints else set()
    int_rows = sum(c for v, c in counts.items() if v in values and _is_int(v))
    if numbers and int_rows >= 0.9 * sum(counts[v] for v in values):
        # integer labels are class ids: the classes are 0..max, by number. Rows whose target is
        # not such an id (a stray name, a negative number) fail the class check, row by row.
        top = max(numbers)
        if top < 0:
            raise DataError(f"negative class id {top}", file=str(path), column=column)
        return [str(i) for i in range(top + 1)]
    return sorted(values, key=natural_key)


def _outliers(counts: Counter[str]) -> set[str]:
    """Target values that are almost surely not classes: seen once where a typical class has >= 10 rows.

    Inferred classes would otherwise turn a typo or a stray value into a class of its own. With
    ``classes`` given in the config nothing is guessed: every value outside it is reported.
    """
    if len(counts) < 2:
        return set()
    sizes = sorted(counts.values())
    if sizes[len(sizes) // 2] < _TYPICAL_CLASS_ROWS:
        return set()
    return {v for v, c in counts.items() if c == 1}


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
