"""Rewrite constraints.txt: the versions a fresh install of the project resolves today.

    python scripts/update_constraints.py    # a fresh venv in a temp dir: minutes, mostly downloads

Creates a virtual environment, installs torch (the version .ci/run installs) and then the project with
its `dev` and `graph` extras, no constraints, newest allowed versions, exactly as .ci/run does, and
writes its `pip freeze` (without the project itself) to constraints.txt. CI installs with
`-c constraints.txt`, so every run gets these versions; the weekly drift workflow installs without it
and tells you when the newest versions break something. Run this, then the tests, to move on.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def torch_requirement(ci_script: Path) -> str:
    """The torch pin of .ci/run (`pip install ... torch==X`), so the constraints match CI's torch."""
    found = re.search(r"torch==[\w.+]+", ci_script.read_text())
    if found is None:
        raise SystemExit(f"{ci_script}: no `torch==<version>` to install first")
    return found.group(0)


def freeze(venv: Path, torch: str) -> list[str]:
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, torch], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev,graph]"], check=True)
    out = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable"], check=True, capture_output=True, text=True
    ).stdout
    # `torch==2.13.0` (not `+cpu`): the constraint then holds for the CPU and the CUDA builds alike
    return sorted((re.sub(r"\+\w+$", "", line) for line in out.splitlines() if "==" in line), key=str.lower)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=ROOT / "constraints.txt", help="file to write")
    args = parser.parse_args()
    torch = torch_requirement(ROOT / ".ci" / "run")
    with tempfile.TemporaryDirectory() as tmp:
        pins = freeze(Path(tmp) / "venv", torch)
    where = f"Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    header = [
        "# What a fresh install of mmfuse[dev,graph] resolved, written by scripts/update_constraints.py",
        f"# ({where}). .ci/run and the push/PR workflow install with `-c constraints.txt`; the weekly",
        "# drift workflow installs without it (the newest versions pyproject.toml allows).",
    ]
    args.output.write_text("\n".join([*header, *pins]) + "\n")
    print(f"{len(pins)} pins written to {args.output}")


if __name__ == "__main__":
    main()
