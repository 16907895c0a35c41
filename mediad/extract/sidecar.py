"""An XMP sidecar beside a file, opened through the gate (mediad/extract/gate.py): the
same confinement to `extract.roots`, the same refusal of what is not a regular file, the
same descriptor checks, so a sidecar that is a symbolic link out of the roots, a FIFO or
a device is never read. Photo managers write `name.ext.xmp` (darktable, digiKam) or
`name.xmp` (Lightroom); the first found is the sidecar."""

from __future__ import annotations

import os

from mediad.errors import FailureClass
from mediad.extract.gate import Opened, open_checked
from mediad.extract.options import ExtractOptions
from mediad.models import Failure
from mediad.walker import sidecar_names

# A sidecar is a few kilobytes of XML; a larger one is not read (XML parsers are an
# attack surface of their own).
MAX_SIDECAR_BYTES = 1 << 20


def candidates(resolved: str) -> tuple[str, ...]:
    """Where a sidecar of the file at `resolved` may be, best first: the names `scan`
    compares (mediad/walker.py), so the sidecar read is the one a scan sees change."""
    directory, name = os.path.split(resolved)
    return tuple(os.path.join(directory, candidate) for candidate in sidecar_names(name))


def open_sidecar(resolved: str, options: ExtractOptions) -> Opened | Failure | None:
    """The first sidecar that exists, opened; a Failure saying why it cannot be read; or
    None when there is none."""
    for name in candidates(resolved):
        try:
            os.lstat(name)  # most files have none: one system call to know it
        except OSError:
            continue
        opened = open_checked(name, options)
        if isinstance(opened, Failure):
            if opened.failure_class is FailureClass.NOT_FOUND:
                continue  # gone since, or a dangling link: as if there were none
            return opened
        fd, _, st = opened
        if st.st_size > MAX_SIDECAR_BYTES:
            os.close(fd)
            return Failure(
                FailureClass.TOO_LARGE,
                f"{name}: {st.st_size} bytes, over {MAX_SIDECAR_BYTES} for a sidecar",
                resolved_path=name,
            )
        return opened
    return None
