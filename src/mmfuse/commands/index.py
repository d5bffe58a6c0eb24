"""``mmfuse index``: write the index beside each of existing WebDataset shards (img2dataset output, ...)."""

from __future__ import annotations

import tarfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from rich.console import Console
from rich.markup import escape

from mmfuse.commands.config import build_data, command_parser, parse_config
from mmfuse.data.sources.shard_files import expand
from mmfuse.data.sources.shard_index import SUFFIX, write_index
from mmfuse.data.sources.shards import ShardSource

DESCRIPTION = f"""\
Write the index of each shard beside it (train-000000.tar -> train-000000.tar{SUFFIX}): what loading
the shard would otherwise find by scanning every tar header (about 1 ms a sample), so that the
ShardSource reads one small file per shard instead. `mmfuse pack` writes the index of its own shards;
this command is for shards written by another tool (img2dataset, webdataset's ShardWriter), once.

Give the shards by pattern (--shards 'data/laion/{{00000..00099}}.tar'), or give the run's config
(--config FILE ...) to index every split of its ShardSource, with the text members it reads. A shard
changed after it was indexed is detected when loaded, and scanned: index it again.
"""
EXAMPLE = "example: mmfuse index --shards 'data/laion/{00000..00099}.tar' --workers 4"


def main(args: list[str]) -> int:
    """Run ``mmfuse index``; returns the exit code (1 if a shard could not be indexed)."""
    parser = command_parser("mmfuse index", DESCRIPTION, EXAMPLE)
    parser.add_argument("--shards", help="shard paths or fsspec URLs with brace ranges (several: spaces)")
    parser.add_argument(
        "--inline",
        nargs="+",
        help="member extensions whose text the index holds (default: the config's text members and "
        "JSON fields member; with --shards: txt json)",
    )
    parser.add_argument("--workers", type=int, default=2, help="shards indexed at once (default 2)")
    own, rest = parser.parse_known_args(args)
    if (own.shards is None) == (not rest):
        parser.error("give either --shards PATTERN or the run's config (--config FILE ...)")
    if own.shards is not None:
        urls, inline = expand(own.shards), ["txt", "json"]
    else:
        source = build_data(parse_config(rest)).source
        if not isinstance(source, ShardSource):
            parser.error(f"the config's source is a {type(source).__name__}, not a ShardSource")
        patterns = [p for p in (source.train, source.val, source.test) if p]
        urls = [url for pattern in patterns for url in expand(pattern)]
        inline = [source.fields, *source.text_members]
    console = Console(soft_wrap=True)
    failed = 0
    index = partial(_index_one, inline=own.inline or inline)
    if own.workers > 1:
        with ProcessPoolExecutor(own.workers) as pool:
            results = list(pool.map(index, urls))
    else:
        results = [index(url) for url in urls]
    for url, (samples, error) in zip(urls, results, strict=True):
        if error:
            failed += 1
            console.print(f"[bold red]not indexed[/bold red] {escape(url)}: {escape(error)}")
        else:
            console.print(f"{escape(url + SUFFIX)}: {samples} samples")
    console.print(f"[bold]{len(urls) - failed} of {len(urls)} shards indexed[/bold]")
    return 1 if failed else 0


def _index_one(url: str, inline: list[str]) -> tuple[int, str]:
    """(samples indexed, "") or (0, why the shard could not be indexed)."""
    try:
        return write_index(url, inline), ""
    except (OSError, tarfile.TarError, ValueError) as e:
        return 0, str(e)
