"""Build the configured objects of ``mmfuse fit`` from the same arguments, for mmfuse's own commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytorch_lightning as pl
from jsonargparse import Namespace

from mmfuse.cli import MultimodalCLI
from mmfuse.lit.data_links import build_data, link_pretrained
from mmfuse.lit.module import MultimodalModule


class _ParseOnly(MultimodalCLI):
    """Parses (and validates) a full config without building the model or the trainer."""

    def before_instantiate_classes(self) -> None:
        # the links that fill data settings from the encoders (tokenizer, image mean/std): the data is
        # checked (check-data) as training would read it
        link_pretrained(self.config[self.subcommand] if self.subcommand else self.config)

    def instantiate_classes(self) -> None:
        pass

    def _set_seed(self) -> None:
        pass  # nothing random is built here


@contextmanager
def _own_argv() -> Iterator[None]:
    # LightningCLI warns when given `args` while sys.argv has arguments (here: the command's own)
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def _cli(
    cli_class: type[MultimodalCLI], args: list[str], evaluation: tuple[str, str | None] | None = None
) -> MultimodalCLI:
    with _own_argv():
        return cli_class(
            MultimodalModule,
            pl.LightningDataModule,
            evaluation=evaluation,
            subclass_mode_data=True,
            args=args,
            run=False,
            auto_configure_optimizers=False,
        )


def full_cli(args: list[str], evaluation: tuple[str, str | None] | None = None) -> MultimodalCLI:
    """``MultimodalCLI`` with model, data and trainer built from ``args`` as for ``mmfuse test``; not run.

    ``evaluation``: (command, checkpoint) when the command evaluates a checkpoint: its output then
    goes under the checkpoint's run (``<run>/eval/<time>-<command>/``).
    """
    return _cli(MultimodalCLI, args, evaluation)


def parse_config(args: list[str]) -> Namespace:
    """The validated config of ``mmfuse fit <args>``, nothing built."""
    return _cli(_ParseOnly, args).config


__all__ = ["build_data", "full_cli", "parse_config"]


def command_parser(prog: str, description: str, example: str) -> argparse.ArgumentParser:
    """The argument parser of an mmfuse command with options of its own (the rest goes to the config):
    its description and example kept as written, and no abbreviated options (an abbreviation would
    take a config argument for one of the command's own)."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
