"""Errors the user caused are one clear message, not a traceback.

A :class:`~mmfuse.data.manifest.errors.DataError` (a bad manifest row or file), a
:class:`~mmfuse.data.manifest.errors.ConfigError` (a setting that cannot work, two settings that disagree), a
config that does not parse, or Lightning's ``MisconfigurationException`` reaches the user as one message
on stderr and exit code 1, wherever it was raised: Lightning and jsonargparse wrap errors raised in
hooks and links (``Call to compute_fn of link ... failed``), so the chain of causes is searched. A
``ValueError`` raised while the configured objects are built is a constructor rejecting its settings:
a ``ConfigError`` (:func:`config_errors`). Anything else is a bug and keeps its traceback. ``--debug``
(or ``MMFUSE_DEBUG=1``) re-raises user errors too, with the full traceback.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

from lightning_fabric.utilities.exceptions import MisconfigurationException
from rich.console import Console
from rich.markup import escape

from mmfuse.data.manifest.errors import ConfigError, DataError
from mmfuse.lit.checkpoint_source import CheckpointError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "MMFUSE_DEBUG"

#: the kinds of error a user causes; MisconfigurationException: Lightning's, e.g. `--trainer.devices 0`
USER_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    ConfigError,
    argparse.ArgumentError,
    MisconfigurationException,
    CheckpointError,
)


def debug_from_env() -> bool:
    """``MMFUSE_DEBUG`` set to anything but empty, ``0``, ``false`` or ``no``."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def strip_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (which LightningCLI would reject), and whether it was there."""
    kept = [a for a in argv if a != DEBUG_FLAG]
    return kept, len(kept) != len(argv)


def find_user_error(error: BaseException) -> BaseException | None:
    """The user error that ``error`` is or was raised from (its ``__cause__`` chain), else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, USER_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def as_config_error(error: ValueError) -> ConfigError | None:
    """A ``ValueError`` raised while building the configured objects as the :class:`ConfigError` it is
    (a constructor rejecting its settings), with the message of the innermost ``ValueError`` (jsonargparse
    wraps errors raised in links); None when it already is or wraps a user error."""
    if find_user_error(error) is not None:
        return None
    innermost: BaseException = error
    while isinstance(innermost.__cause__, ValueError):
        innermost = innermost.__cause__
    return ConfigError(str(innermost))


@contextmanager
def config_errors() -> Iterator[None]:
    """Inside: a ``ValueError`` is raised as :func:`as_config_error` makes it (building from the config)."""
    try:
        yield
    except ValueError as error:
        converted = as_config_error(error)
        if converted is None:
            raise
        raise converted from error


def report(error: BaseException, command: str) -> None:
    """Print ``error`` as one message on stderr, with how to see the traceback (rank 0 only under DDP)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:
        return  # every process meets the same error: one message is enough
    if isinstance(error, DataError):
        kind = "data error"
    elif isinstance(error, CheckpointError):
        kind = "checkpoint error"
    elif isinstance(error, argparse.ArgumentError):
        kind = "config error"
        error = _ParseError(f"{error.message}\n(see `mmfuse {command} --help`)" if command else error.message)
    else:
        kind = "config error"
    console = Console(stderr=True, soft_wrap=True)
    console.print(f"[bold red]{kind}:[/bold red] {escape(str(error))}", highlight=False)
    hint = f"(add {DEBUG_FLAG} or set {DEBUG_ENV}=1 for the full traceback)"
    console.print(f"[dim]{hint}[/dim]", highlight=False)


class _ParseError(Exception):
    """A jsonargparse message, reworded."""
