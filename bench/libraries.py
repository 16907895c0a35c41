"""Like for like: the CLI on mediad's libmediainfo, and mediad on the CLI's, when they
write the same documents."""

from __future__ import annotations

import subprocess
from typing import Any

from bench import cli_lib
from bench.common import say
from bench.context import Context
from mediad.extract.options import ExtractOptions

# environment[key]: what was compared, and whether the documents were the same.
Environment = dict[str, Any]


def _same_tracks(
    ctx: Context,
    options: ExtractOptions,
    environment: Environment,
    key: str,
    env: dict[str, str] | None,
    library_file: str | None,
) -> bool:
    """Does the CLI (run with `env`) write, for every corpus original, the tracks that
    mediad's reader on `library_file` returns? Recorded under environment[key]."""
    from mediad.extract.mediainfo import read_json

    originals = ctx.paths[: len(environment["corpus_originals"])]
    try:
        same, why = cli_lib.same_tracks(
            ctx.args.mediainfo,
            env,
            originals,
            lambda path: read_json(
                path,
                library_file=library_file,
                parse_speed=options.parse_speed,
                full=options.full_document,
            ),
        )
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
        same, why = False, f"could not compare documents: {exc}"
    environment[key]["files_compared"] = len(originals)
    if not same:
        _skipped(environment, key, why)
        return False
    environment[key].update(documents_identical=True, why_not="")
    return True


def _skipped(environment: Environment, key: str, why: str) -> None:
    environment[key].update(documents_identical=False, why_not=why)
    say(f"{key}: skipped ({why})")


def cli_on_mediads_library(
    ctx: Context, options: ExtractOptions, environment: Environment
) -> cli_lib.CliOnLibrary | None:
    """The CLI on mediad's libmediainfo, when it runs there and writes the same documents."""
    if not ctx.args.mediainfo:
        return None
    found = cli_lib.prepare(ctx.args.mediainfo, options.library_file, ctx.work / "cli-lib")
    key = "mediainfo_cli_same_library"
    environment[key] = {"library": found.library, "version": found.version}
    if found.env is None:
        _skipped(environment, key, found.why)
        return None
    same = _same_tracks(ctx, options, environment, key, found.env, options.library_file)
    return found if same else None


def mediad_on_the_clis_library(
    ctx: Context, options: ExtractOptions, environment: Environment
) -> str | None:
    """The libmediainfo the CLI links, when mediad's reader on it writes the CLI's
    documents: then mediad runs on it too, the other like-for-like comparison."""
    if not ctx.args.mediainfo:
        return None
    library = cli_lib.linked_library(ctx.args.mediainfo)
    key = "mediad_on_cli_library"
    environment[key] = {"library": library}
    if library is None:
        _skipped(environment, key, "the CLI links no libmediainfo (statically linked?)")
        return None
    return library if _same_tracks(ctx, options, environment, key, None, library) else None
