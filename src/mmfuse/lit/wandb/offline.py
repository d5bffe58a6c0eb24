"""Logging to W&B without an account: when a run goes offline, and the command that uploads it later."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_DEFAULT_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")


def has_wandb_credentials() -> bool:
    """True if W&B can authenticate without asking: an API key or identity token in the
    environment, or a ``.netrc`` entry (``$NETRC`` or ``~/.netrc``) for the W&B host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    hosts = set(_DEFAULT_HOSTS)
    if base_url := os.environ.get("WANDB_BASE_URL"):
        hosts.add(urlsplit(base_url).netloc or base_url)
    path = Path(os.environ.get("NETRC") or "~/.netrc").expanduser()
    try:
        entries = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return False
    return any((auth := entries.authenticators(h)) is not None and auth[2] for h in hosts)


def resolve_mode(offline: bool = False) -> tuple[str | None, str | None]:
    """The mode to force on ``wandb.init`` (None: leave it to W&B), and why it was forced.

    ``WANDB_MODE=offline|disabled`` is W&B's to apply. Otherwise, without credentials the run goes
    offline: W&B itself would prompt for a key on a terminal, or fail without one.
    """
    if offline:
        return "offline", None
    env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if env_mode in ("offline", "dryrun", "disabled") or has_wandb_credentials():
        return None, None
    where = "WANDB_API_KEY, or a ~/.netrc entry from `wandb login`"
    if env_mode == "online":
        return "offline", f"WANDB_MODE=online but no credentials ({where})"
    return "offline", f"no credentials ({where})"


def sync_command(run: Any) -> str:
    """``wandb sync <folders>``: the command that uploads an offline run, every session of it."""
    folder = Path(run.dir).parent  # .../wandb/offline-run-<time>-<id>
    # a resumed run has one folder per session, all with its id: sync them all, in order
    folders = sorted(f for f in folder.parent.glob("offline-run-*") if _folder_of(f.name, run.id))
    shown = [os.path.relpath(f) if f.is_relative_to(Path.cwd()) else str(f) for f in folders]
    return f"wandb sync {' '.join(shown)}"


def _folder_of(name: str, run_id: str) -> bool:
    """True if ``name`` is an offline folder of the run: ``offline-run-<time>-<id>[-<n>]``."""
    rest = name.split("-", 3)[-1]
    return rest == run_id or (rest.startswith(f"{run_id}-") and rest[len(run_id) + 1 :].isdigit())
