"""The `mediainfo` CLI run on the libmediainfo that mediad loads, for a like-for-like ratio.

Debian's `mediainfo` links its own libmediainfo (23.04 on this host); mediad loads the one
in pymediainfo's wheel (24.12). The two differ in what they parse (24.12 reports the slice
count of H.264 streams, for one) and 24.12 takes about 10 % more CPU per file on the
benchmark's corpus (`python -m bench.libcost`). A ratio against the system CLI therefore
measures two MediaInfo releases as well as mediad. The CLI links the
library by its soname, so pointing LD_LIBRARY_PATH at a directory holding mediad's library
runs the same binary on the same parser; `same_tracks` checks that it then writes
exactly the documents mediad stores. The other way round, mediad can load the library
the CLI links (`linked_library`).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SONAME = "libmediainfo.so.0"


@dataclass
class CliOnLibrary:
    """How to run the CLI on `library`; `env` is None when it cannot be done (`why`)."""

    library: str
    version: str = ""
    env: dict[str, str] | None = None
    why: str = ""


def mediad_library(library_file: str | None) -> tuple[str, str]:
    """The path and version of the libmediainfo that mediad's workers load."""
    from pymediainfo import MediaInfo

    lib, _handle, _text, version = MediaInfo._get_library(library_file)
    return str(lib._name), ".".join(str(v) for v in version)


def _cli_version(binary: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [binary, "--Version"], capture_output=True, text=True, timeout=30, env=env
    )
    return result.stdout.split()[-1].lstrip("v") if result.stdout.split() else ""


def prepare(binary: str, library_file: str | None, directory: Path) -> CliOnLibrary:
    """`directory` (new) gets a link to mediad's library under the CLI's soname."""
    path, version = mediad_library(library_file)
    found = CliOnLibrary(path, version)
    directory.mkdir(parents=True)
    os.symlink(os.path.realpath(path), os.path.join(directory, SONAME))
    env = {**os.environ, "LD_LIBRARY_PATH": str(directory)}
    cli_version = _cli_version(binary, env)
    if cli_version != version:
        found.why = (
            f"the CLI reports MediaInfoLib {cli_version or 'unknown'} with {path}, not {version}"
            " (statically linked, or another soname)"
        )
        return found
    found.env = env
    return found


def _tracks(document: Any) -> list[Any]:
    return document["media"]["track"] if isinstance(document, dict) else []


def same_tracks(
    binary: str, env: dict[str, str] | None, files: list[str], read_json: Any
) -> tuple[bool, str]:
    """Does the CLI (run with `env`) write, file for file, the tracks that `read_json`
    (mediad's reader, on some library) returns?"""
    result = subprocess.run(
        [binary, "--Output=JSON", *files], capture_output=True, timeout=120, env=env
    )
    documents = json.loads(result.stdout)
    if not isinstance(documents, list):
        documents = [documents]
    by_path = {d["media"]["@ref"]: d for d in documents if isinstance(d, dict) and d.get("media")}
    for path in files:
        mine = json.loads(read_json(path))
        if _tracks(by_path.get(path)) != _tracks(mine):
            return False, f"{Path(path).name}: the CLI's tracks differ from mediad's"
    return True, ""


def linked_library(binary: str) -> str | None:
    """The libmediainfo that the CLI binary links, if it links one (ldd)."""
    result = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        if "libmediainfo" in line and "=>" in line:
            return line.split("=>")[1].split("(")[0].strip() or None
    return None
