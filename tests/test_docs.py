"""No stale docs: every command in README.md and docs/*.md, the results tables' rows included, still works.

- ``mmfuse fit|validate|test|predict ...`` parses in-process with ``--print_config`` (nothing is built,
  so W&B never starts); ``--help`` exits 0; ``check-data`` / ``ablate`` take their own options and
  parse the rest as ``fit`` does;
- ``python <script> ...``: the script exists, ``--help`` works, and every ``--option`` used is in the help;
- ``bash`` / ``sbatch`` scripts exist and are valid shell (``bash -n``);
- any other program (pip, wandb, pytest, ...) is not run, but every repository path it names must exist.

Files the guides tell you to create stand in for themselves: ``cp A B`` makes ``B`` mean ``A``, and a YAML
code block whose first line is ``# configs/NAME.yaml`` is that file.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmfuse.commands import COMMANDS
from mmfuse.main import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = {
    "pip",
    "pytest",
    "wandb",
    "cp",
    "git",
    "pre-commit",
    "cd",
    "for",
    "jupyter",
    "torchrun",
    "srun",
    ".",
}
PATH_PREFIXES = ("configs/", "scripts/", "benchmarks/", "notebooks/", "docs/", "tests/", "src/")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Command:
    where: str  # page:line
    text: str


def _blocks(page: Path) -> list[tuple[str, int, list[str]]]:
    """Fenced code blocks: (language, first line number, lines)."""
    blocks, lang, start, lines = [], None, 0, []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        fence = FENCE.match(line.strip())
        if fence and lang is None:
            lang, start, lines = fence.group(1), number + 1, []
        elif line.strip() == "```" and lang is not None:
            blocks.append((lang, start, lines))
            lang = None
        elif lang is not None:
            lines.append(line)
    return blocks


def _shell_commands(page: Path) -> list[Command]:
    found = []
    for lang, start, lines in _blocks(page):
        if lang not in ("", "bash", "sh", "shell"):
            continue
        joined: list[tuple[int, str]] = []
        for offset, line in enumerate(lines):
            if joined and joined[-1][1].endswith("\\"):
                joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line.strip())
            else:
                joined.append((start + offset, line))
        for number, line in joined:
            code = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()  # comments off
            code = re.split(r"\s(?:\d?>|\|)", code, maxsplit=1)[0].strip()  # redirections, pipes off
            first = code.split()[0] if code else ""
            known = (
                first in NOT_RUN or first in ("mmfuse", "python", "python3", "bash", "sbatch") or "=" in first
            )
            # in a shell block every line is a command; a plain block also holds CSV rows and output
            if code and (known or lang):
                for part in code.split(" && "):
                    found.append(Command(f"{page.name}:{number}", part.strip()))
    return found


def _inline_commands(page: Path) -> list[Command]:
    """Commands in inline code on the guides' pages (`python benchmarks/x.py`)."""
    found = []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        for span in re.findall(r"`((?:mmfuse|python) [^`]+)`", line):
            if "<" not in span and "..." not in span:
                found.append(Command(f"{page.name}:{number}", span))
    return found


def _table_commands(page: Path) -> list[Command]:
    """Results tables: a header cell "configs after `mmfuse fit ...`" and one row per run."""
    found, prefix, column = [], None, -1
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if not line.startswith("|"):
            prefix = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        header = [i for i, c in enumerate(cells) if c.startswith("configs after `mmfuse fit")]
        if header:
            column = header[0]
            prefix = re.search(r"`(mmfuse fit[^`]*)`", cells[column]).group(1)  # type: ignore[union-attr]
        elif prefix is not None and not set(cells[column]) <= set("-: "):
            extra = re.findall(r"`([^`]*)`", cells[column])
            found.append(Command(f"{page.name}:{number}", " ".join([prefix, *extra])))
    return found


def _defined_files(tmp: Path) -> dict[str, Path]:
    """What the guides create: `cp A B` (B is A) and YAML blocks headed `# configs/NAME.yaml`."""
    defined: dict[str, Path] = {}
    for page in PAGES:
        for lang, _, lines in _blocks(page):
            if lang == "yaml" and lines and re.fullmatch(r"# (configs/\S+\.yaml)", lines[0].strip()):
                path = tmp / Path(lines[0].strip()[2:]).name
                path.write_text("\n".join(lines) + "\n")
                defined[lines[0].strip()[2:]] = path
        for command in _shell_commands(page):
            tokens = shlex.split(command.text)
            if tokens[0] == "cp" and len(tokens) == 3:
                defined[tokens[2]] = ROOT / tokens[1]
    return defined


ALL = [c for page in PAGES for c in (*_shell_commands(page), *_table_commands(page))]
ALL += [c for page in PAGES[1:] for c in _inline_commands(page)]
COMMANDS_TO_CHECK = list({c.text: c for c in ALL}.values())  # each distinct command once


def test_the_commands_are_found() -> None:
    tables = [c.text for page in PAGES for c in _table_commands(page)]
    assert len(tables) >= 11  # 6 quickstart rows + 5 graph rows
    assert "mmfuse fit --config configs/quickstart.yaml --config configs/fusion/late.yaml" in tables
    texts = {c.text for c in COMMANDS_TO_CHECK}
    assert "mmfuse check-data --config configs/my_data.yaml" in texts
    assert "python benchmarks/quickstart_table.py" in texts
    for page in PAGES[1:]:
        assert any(c.where.startswith(page.name) for c in COMMANDS_TO_CHECK) or page.name == "README.md", page


def _resolve(token: str, defined: dict[str, Path]) -> str:
    if token in defined:
        return str(defined[token])
    if token.startswith(PATH_PREFIXES) and "<" not in token and "..." not in token:
        assert (ROOT / token).exists(), f"{token} does not exist"
    return token


def _exit_code(call: object, *args: object) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
        call(*args)  # type: ignore[operator]
    return int(info.value.code or 0), out.getvalue()


def _check_mmfuse(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    if args == ["--version"]:
        main(args)
        return
    if args and args[0] in COMMANDS:  # own options first, then the config as `fit` reads it
        code, help_text = _exit_code(COMMANDS[args[0]], ["--help"])
        assert code == 0
        own = set(re.findall(r"--\w+", help_text)) - {"--help", "--config"}
        rest, skip = [], False
        for arg in args[1:]:
            if skip:
                skip = False
            elif arg.split("=")[0] in own:
                skip = "=" not in arg
            else:
                rest.append(arg)
        args = ["fit", *rest]
    if "--help" in args:
        with pytest.raises(SystemExit) as info:
            main(args)
    else:
        with pytest.raises(SystemExit) as info:
            main([*args, "--print_config"])
    assert info.value.code == 0, capsys.readouterr().err[-2000:]


def _check_script(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    code, help_text = _exit_code(runpy.run_path, str(ROOT / script), None, "__main__")
    assert code == 0, f"{script} --help failed"
    for option in (a.split("=")[0] for a in args if a.startswith("--")):
        assert option in help_text, f"{script} has no option {option}"


@pytest.mark.parametrize("command", COMMANDS_TO_CHECK, ids=lambda c: c.where)
def test_documented_command_works(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    defined = _defined_files(tmp_path)
    tokens = shlex.split(command.text)
    while tokens and re.fullmatch(r"[A-Za-z_]\w*=\S*", tokens[0]):
        tokens.pop(0)  # VAR=value before the program
    if tokens[:3] in (["python", "-m", "mmfuse"], ["python3", "-m", "mmfuse"]):
        tokens = ["mmfuse", *tokens[3:]]
    program, args = tokens[0], [_resolve(t, defined) for t in tokens[1:]]
    monkeypatch.setattr(sys, "argv", ["mmfuse"])  # LightningCLI warns when given args beside pytest's
    if program == "mmfuse":
        _check_mmfuse(args, capsys)
    elif program in ("python", "python3") and args[:1] == ["-m"]:
        assert args[1] in ("venv", "pip"), f"{command.where}: no rule for `python -m {args[1]}`"
    elif program in ("python", "python3") and args and args[0].endswith(".py"):
        _check_script(args[0], args[1:], monkeypatch)
    elif program in ("bash", "sbatch"):
        subprocess.run(["bash", "-n", str(ROOT / args[0])], check=True)
    else:
        assert program in NOT_RUN, f"{command.where}: no rule for {program!r} in tests/test_docs.py"
