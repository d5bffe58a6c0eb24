"""``mmfuse --help``: every subcommand with its purpose; ``mmfuse fit --help``: shorter, whole sentences."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from typing import Any

from jsonargparse import DefaultHelpFormatter

TITLE = "mmfuse: multimodal deep learning with PyTorch Lightning"
DESCRIPTION = (
    "Train, evaluate and inspect models that fuse images, text, audio, graphs and tables. Every "
    "subcommand reads the same YAML configs (--config FILE, more --config files and --key value "
    "overrides on top)."
)

#: LightningCLI's subcommands -> their purpose, in mmfuse's words (Lightning's are cut mid-sentence)
LIGHTNING_PURPOSES = {
    "fit": "Train, validating on the val split; then test the best checkpoint and say where the run is.",
    "validate": "Evaluate a checkpoint (--ckpt_path) on the val split and write val_metrics.json.",
    "test": "Evaluate a checkpoint (--ckpt_path) on the test split and write test_metrics.json.",
    "predict": "Write each sample's predicted class and class probabilities to a CSV file.",
}

# the "known subclasses" of an `nn.Module`-typed setting (model.encoders) would list every torch.nn
# layer and every LightningModule: only mmfuse's encoders are meant there
_ENCODERS = "mmfuse.models.encoders."
_SUBCLASSES = re.compile(r"known subclasses: (?P<paths>[^()]*)\)$", re.S)
_SENTENCE_END = (".", "!", "?", ")", '"')


def top_level_help(purposes: dict[str, str]) -> str:
    """The text of ``mmfuse --help``: usage, what mmfuse is, each subcommand with its purpose."""
    width = max(len(name) for name in purposes) + 2
    lines = [
        "usage: mmfuse [-h] [--version] [--debug] COMMAND [--config FILE ...] [--KEY VALUE ...]",
        "",
        TITLE,
        "",
        textwrap.fill(DESCRIPTION, 100),
        "",
        "commands:",
        *(f"  {name:<{width}}{purpose}" for name, purpose in purposes.items()),
        "",
        "options:",
        "  -h, --help     show this message (`mmfuse COMMAND --help`: that command's settings)",
        "  --version      print mmfuse's version",
        "  --debug        show the full traceback of an error (or set MMFUSE_DEBUG=1)",
        "",
        "example: mmfuse fit --config configs/quickstart.yaml",
    ]
    return "\n".join(lines) + "\n"


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's formatter with a one-line usage, section titles cut back to their last whole
    sentence, and ``nn.Module`` settings listing only mmfuse's encoders as known subclasses."""

    def add_usage(self, usage: str | None, actions: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        actions = list(actions)
        if usage is None and len(actions) > 8:  # a subcommand's usage would list every setting (80 lines)
            usage = "%(prog)s [-h] [-c CONFIG] [--print_config[=flags]] [--KEY VALUE ...]"
        super().add_usage(usage, actions, *args, **kwargs)

    def start_section(self, heading: str | None) -> None:
        super().start_section(whole_sentences(heading) if heading else heading)

    def _get_help_string(self, action: Any) -> str:
        return only_mmfuse_encoders(super()._get_help_string(action))


def whole_sentences(text: str) -> str:
    """``text`` up to its last complete sentence when it stops mid-sentence (a docstring's first line)."""
    text = text.strip()
    if not text.endswith(_SENTENCE_END):
        cut = text.rfind(". ")
        text = text[: cut + 1] if cut > 0 else text
    return text.removesuffix(".")  # argparse adds a colon


def only_mmfuse_encoders(help_text: str) -> str:
    """A help text whose known subclasses are ``torch.nn.Module``'s, with only mmfuse's encoders listed."""
    match = _SUBCLASSES.search(help_text)
    if match is None:
        return help_text
    paths = [p.strip() for p in match["paths"].split(",")]
    if "torch.nn.Module" not in paths:
        return help_text
    kept = [p for p in paths if p.startswith(_ENCODERS)]
    listed = f"any torch.nn.Module; mmfuse's encoders: {', '.join(kept)}" if kept else "any torch.nn.Module"
    return help_text[: match.start()] + f"known subclasses: {listed})"
