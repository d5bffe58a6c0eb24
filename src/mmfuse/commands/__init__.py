"""mmfuse's own subcommands beside LightningCLI's fit / validate / test / predict.

LightningCLI's subcommands are fixed, so :func:`mmfuse.main.main` hands these to :func:`run` by name.
Each reads the same config files as ``mmfuse fit`` (``--config``, ``--data.*``, ...).
"""

from __future__ import annotations

from collections.abc import Callable


def _check_data(args: list[str]) -> int:
    from mmfuse.commands.check_data import main

    return main(args)


def _ablate(args: list[str]) -> int:
    from mmfuse.commands.ablate import main

    return main(args)


def _pack(args: list[str]) -> int:
    from mmfuse.commands.pack import main

    return main(args)


def _index(args: list[str]) -> int:
    from mmfuse.commands.index import main

    return main(args)


def _embed(args: list[str]) -> int:
    from mmfuse.commands.embed import main

    return main(args)


#: name -> entry point taking the arguments after the name and returning the exit code
COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "check-data": _check_data,
    "ablate": _ablate,
    "pack": _pack,
    "index": _index,
    "embed": _embed,
}

#: name -> one sentence on what the command is for (``mmfuse --help``); every command in COMMANDS has one
PURPOSES: dict[str, str] = {
    "check-data": "Check the manifest, every file it references and the data against the model before a run.",
    "pack": "Write a config's manifest into WebDataset shards per split, and the source that reads them.",
    "index": "Index existing WebDataset shards once, so that loading reads the index instead of scanning.",
    "ablate": "Test a checkpoint with every non-empty subset of its modalities and tabulate the metrics.",
    "embed": "Write a checkpoint's per-modality and fused embeddings of a split; cross-modal retrieval.",
}
