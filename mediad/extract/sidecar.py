"""An XMP sidecar beside a file, opened through the gate (mediad/extract/gate.py): the
same confinement to `extract.roots`, the same refusal of what is not a regular file, the
same descriptor checks, so a sidecar that is a symbolic link out of the roots, a FIFO or
a device is never read. Photo managers write `name.ext.xmp` (darktable, digiKam) or
`name.xmp` (Lightroom); the first found is the sidecar."""

from __future__ import annotations

import os
import stat

from mediad.errors import FailureClass
from mediad.extract.gate import Opened, fingerprint_of, open_checked
from mediad.extract.options import ExtractOptions
from mediad.models import Failure, Fingerprint
from mediad.walker import sidecar_names

# A sidecar is a few kilobytes of XML; a larger one is not read (XML parsers are an
# attack surface of their own).
MAX_SIDECAR_BYTES = 1 << 20


def candidates(path: str) -> tuple[str, ...]:
    """Where a sidecar of the file at `path` may be, best first: the names `scan`
    compares (mediad/walker.py), beside the path the scan listed (for a symbolic link,
    beside the link), so the sidecar read is the one a scan sees change."""
    directory, name = os.path.split(path)
    return tuple(os.path.join(directory, candidate) for candidate in sidecar_names(name))


def _seen(name: str) -> os.stat_result | None:
    """What a scan sees of a candidate: its stat, following a link, if it is a regular
    file; None (the scan passes it by) for none there, a dangling link, a directory, a
    FIFO..."""
    try:
        # Most files have none: access(2) says so without the exception a failed stat
        # raises (about 3 µs each, four names per file); it follows links as stat does.
        if not os.access(name, os.F_OK):
            return None
        st = os.stat(name)
    except (OSError, ValueError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def open_sidecar(path: str, options: ExtractOptions) -> tuple[Opened | Failure, Fingerprint] | None:
    """The sidecar of the file at `path`, as a scan picks it, opened, or a Failure saying
    why it cannot be read; with the fingerprint a scan compares, the same whether it can
    be read or not (else a sidecar refused here would look new to every scan, and queue
    its file again each time). None when there is none."""
    for name in candidates(path):
        seen = _seen(name)
        if seen is None:
            continue
        opened = open_checked(name, options)
        if isinstance(opened, Failure):
            if opened.failure_class is FailureClass.NOT_FOUND:
                continue  # gone since: as if there were none
            return opened, fingerprint_of(seen)
        fd, _, st = opened
        if st.st_size > MAX_SIDECAR_BYTES:
            os.close(fd)
            failure = Failure(
                FailureClass.TOO_LARGE,
                f"{name}: {st.st_size} bytes, over {MAX_SIDECAR_BYTES} for a sidecar",
                resolved_path=name,
            )
            return failure, fingerprint_of(st)
        return opened, fingerprint_of(st)
    return None
