"""The ``mmfuse`` command: LightningCLI's fit / validate / test / predict and mmfuse's own commands.

mmfuse fit --config configs/quickstart.yaml
mmfuse test --config configs/quickstart.yaml --ckpt_path runs/.../best.ckpt
mmfuse check-data --config configs/quickstart.yaml

This module sits above :mod:`mmfuse.cli` (the LightningCLI) and :mod:`mmfuse.commands` (the other
commands, which build from the same configs through the CLI), so neither imports the other's caller.
"""

from __future__ import annotations

import os
import signal
import sys

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

from mmfuse.cli import user_errors
from mmfuse.cli.help import LIGHTNING_PURPOSES, top_level_help
from mmfuse.cli.multimodal_cli import MultimodalCLI
from mmfuse.cli.run_report import console
from mmfuse.commands import COMMANDS, PURPOSES
from mmfuse.lit.module import MultimodalModule


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``mmfuse`` command (``args``: the arguments after ``mmfuse``; default ``sys.argv``).

    A user error (bad data, a bad or inconsistent setting, a config that does not parse) is printed as
    one message on stderr and exits with code 1; ``--debug`` or ``MMFUSE_DEBUG=1`` shows its traceback
    instead (:mod:`mmfuse.cli.user_errors`). Any other exception keeps its traceback.
    """
    argv, debug = user_errors.strip_debug(sys.argv[1:] if args is None else list(args))
    if args is None:
        sys.argv = sys.argv[:1] + argv  # DDP starts the other processes with sys.argv: without --debug
        if debug:
            os.environ[user_errors.DEBUG_ENV] = "1"  # ...but with the variable
    try:
        _dispatch(argv, None if args is None else argv)
    except SIGTERMException:
        # Lightning ends a fit on SIGTERM with a SystemExit of code 0; a job a batch system stopped
        # has not succeeded: 143 (128 + SIGTERM) as the shell reports it, so `fit && test` stops here
        console.print(
            "[bold]stopped by SIGTERM[/bold]: the newest state is in last.ckpt; resume with --ckpt_path last"
        )
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception as error:
        found = user_errors.find_user_error(error)
        if found is None or debug or user_errors.debug_from_env():
            raise
        user_errors.report(found, argv[0] if argv and not argv[0].startswith("-") else "")
        raise SystemExit(1) from None


def _dispatch(argv: list[str], args: list[str] | None) -> None:
    if argv in ([], ["-h"], ["--help"]):
        print(top_level_help({**LIGHTNING_PURPOSES, **PURPOSES}), end="")
        # exit code as argparse's --help; without arguments a command is missing
        raise SystemExit(0 if argv else 1)
    if argv in (["--version"], ["-V"]):
        from mmfuse import __version__

        print(f"{__package__} {__version__}")
        return
    if argv and argv[0] in COMMANDS:  # mmfuse's own commands: check-data, ablate
        code = COMMANDS[argv[0]](argv[1:])
        if code:
            raise SystemExit(code)
        return
    MultimodalCLI(
        MultimodalModule,
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=args,
        auto_configure_optimizers=False,
        parser_kwargs={
            "prog": "mmfuse",  # also under `python -m mmfuse`
            **{name: {"description": purpose} for name, purpose in LIGHTNING_PURPOSES.items()},
        },
    )


if __name__ == "__main__":
    main()
