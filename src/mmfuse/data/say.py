"""One line about the data (what was left out, kept in memory, ...) on stderr, as every data line is."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape


def say(line: str) -> None:
    """Print ``line`` after a yellow ``data`` tag, on stderr (stdout may be a results file)."""
    Console(soft_wrap=True, stderr=True).print(f"[bold yellow]data[/bold yellow] {escape(line)}")
