"""The gate's path resolution (mediad/extract/resolve.py): the C library's realpath(3) must give
the answers os.path.realpath gives, and fail with the same errno, on the paths a media
library holds, symbolic links of every kind included."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from mediad.extract import resolve
from mediad.extract.resolve import resolve_strict


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small library: real files, links to them and to folders, and broken links."""
    root = Path(os.path.realpath(tmp_path))
    (root / "shows" / "season 1").mkdir(parents=True)
    (root / "shows" / "season 1" / "e01.mkv").write_bytes(b"x")
    (root / "shows" / "caf\u00e9 \u2014 \u65e5\u672c.mp4").write_bytes(b"x")
    (root / os.fsdecode(b"latin1-\xe9.mp3")).write_bytes(b"x")
    (root / "relative.mkv").symlink_to("shows/season 1/e01.mkv")
    (root / "absolute.mkv").symlink_to(root / "shows" / "season 1" / "e01.mkv")
    (root / "chain.mkv").symlink_to("relative.mkv")
    (root / "folder").symlink_to("shows")
    (root / "up").symlink_to("..")
    (root / "loop-a").symlink_to("loop-b")
    (root / "loop-b").symlink_to("loop-a")
    (root / "dangling.mkv").symlink_to("nowhere.mkv")
    return root


RESOLVABLE = (
    "shows/season 1/e01.mkv",
    "shows/caf\u00e9 \u2014 \u65e5\u672c.mp4",
    os.fsdecode(b"latin1-\xe9.mp3"),
    "relative.mkv",
    "absolute.mkv",
    "chain.mkv",
    "folder/season 1/e01.mkv",
    "folder/../relative.mkv",
    "shows/./season 1/../season 1/e01.mkv",
    "shows",
    "shows/",
)


@pytest.mark.parametrize("name", RESOLVABLE)
def test_the_c_library_resolves_as_python_does(tree: Path, name: str) -> None:
    path = f"{tree}/{name}"
    assert resolve_strict(path) == os.path.realpath(path, strict=True)


def test_a_link_to_a_parent_resolves_to_that_parent(tree: Path) -> None:
    assert resolve_strict(f"{tree}/up/{tree.name}/chain.mkv") == f"{tree}/shows/season 1/e01.mkv"


@pytest.mark.parametrize(
    ("name", "code"),
    (
        ("missing.mkv", errno.ENOENT),
        ("dangling.mkv", errno.ENOENT),
        ("loop-a", errno.ELOOP),
        ("shows/season 1/e01.mkv/inside", errno.ENOTDIR),
        ("missing/e01.mkv", errno.ENOENT),
    ),
)
def test_what_cannot_be_resolved_fails_with_its_errno(tree: Path, name: str, code: int) -> None:
    path = f"{tree}/{name}"
    with pytest.raises(OSError) as raised:
        resolve_strict(path)
    assert raised.value.errno == code
    assert raised.value.filename == path
    with pytest.raises(OSError) as python:
        os.path.realpath(path, strict=True)
    assert python.value.errno == code


def test_a_nul_is_refused_not_cut_short(tree: Path) -> None:
    """C strings end at a NUL: "e01.mkv\0/../../etc" must not resolve as "e01.mkv"."""
    with pytest.raises(ValueError):
        resolve_strict(f"{tree}/relative.mkv\0/../x")
    with pytest.raises(ValueError):
        os.path.realpath(f"{tree}/relative.mkv\0/../x", strict=True)


NOBODY = 65534


def _resolved_by(uid: int, path: str) -> str:
    """resolve_strict(path) as `uid`, in a forked child (root searches every folder, so
    a permission error can only be seen without root): the answer, or "errno N"."""
    if os.geteuid() == uid:
        try:
            return resolve_strict(path)
        except OSError as exc:
            return f"errno {exc.errno}"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, resolve, report, leave without cleanup
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            try:
                answer = resolve_strict(path)
            except OSError as exc:
                answer = f"errno {exc.errno}"
            os.write(write, os.fsencode(answer))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = os.fsdecode(pipe.read())
    os.waitpid(pid, 0)
    return answer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to drop root")
def test_a_folder_that_cannot_be_searched_is_a_permission_error() -> None:
    uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    # Not under tmp_path: its parents are private to root, and nobody must reach the tree.
    root = Path(os.path.realpath(tempfile.mkdtemp(prefix="mediad-resolve-")))
    try:
        root.chmod(0o755)
        for name in ("open", "locked"):
            (root / name).mkdir(mode=0o755)
            (root / name / "e01.mkv").write_bytes(b"x")
        (root / "link.mkv").symlink_to("locked/e01.mkv")
        if os.geteuid() == 0:
            os.chown(root / "locked", 0, 0)
        (root / "locked").chmod(0o700 if os.geteuid() == 0 else 0)
        assert _resolved_by(uid, f"{root}/open/e01.mkv") == f"{root}/open/e01.mkv"
        assert _resolved_by(uid, f"{root}/locked/e01.mkv") == f"errno {errno.EACCES}"
        assert _resolved_by(uid, f"{root}/link.mkv") == f"errno {errno.EACCES}"
    finally:
        (root / "locked").chmod(0o755)
        shutil.rmtree(root)


def test_a_trailing_slash_after_a_file_is_refused_as_the_kernel_refuses_it(tree: Path) -> None:
    """Stricter than os.path.realpath, which drops the slash: open(2) says ENOTDIR, and
    so does realpath(3)."""
    for name in ("shows/season 1/e01.mkv/", "relative.mkv/", "relative.mkv/."):
        with pytest.raises(NotADirectoryError):
            resolve_strict(f"{tree}/{name}")
        with pytest.raises(NotADirectoryError):
            open(f"{tree}/{name}", "rb")  # noqa: SIM115 - it must fail to open


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the C library is glibc here")
def test_on_linux_the_c_library_does_the_work() -> None:
    """Falling back to Python silently would cost the gate 9 us per file."""
    assert resolve._resolve is not resolve._python_realpath


# --- opening a path that holds no symbolic link --------------------------------------------

needs_openat2 = pytest.mark.skipif(
    resolve.open_no_symlinks is None, reason="openat2(2) needs Linux 5.6"
)


@needs_openat2
def test_a_path_without_links_opens_as_itself(tree: Path) -> None:
    path = f"{tree}/shows/season 1/e01.mkv"
    assert resolve.open_no_symlinks is not None
    fd = resolve.open_no_symlinks(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == path
        assert os.read(fd, 10) == b"x"
    finally:
        os.close(fd)


@needs_openat2
@pytest.mark.parametrize(
    "name",
    (
        "relative.mkv",  # the last component is a link
        "chain.mkv",
        "folder/season 1/e01.mkv",  # a folder on the way is one
        "up/TREE/shows/season 1/e01.mkv",  # a link up, then down again
        "dangling.mkv",
        "loop-a",
    ),
)
def test_any_link_on_the_way_is_refused(tree: Path, name: str) -> None:
    path = f"{tree}/{name.replace('TREE', tree.name)}"
    assert resolve.open_no_symlinks is not None
    with pytest.raises(OSError) as raised:
        resolve.open_no_symlinks(path, os.O_RDONLY | os.O_CLOEXEC)
    assert raised.value.errno == errno.ELOOP


@needs_openat2
def test_a_descriptor_link_is_refused_too(tree: Path) -> None:
    """/proc/PID/fd/N is a "magic" link: it must not lead anywhere either."""
    assert resolve.open_no_symlinks is not None
    fd = os.open(tree / "shows" / "season 1" / "e01.mkv", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as raised:
            resolve.open_no_symlinks(f"/proc/{os.getpid()}/fd/{fd}", os.O_RDONLY)
        assert raised.value.errno == errno.ELOOP
    finally:
        os.close(fd)


@needs_openat2
def test_open_no_symlinks_refuses_a_nul(tree: Path) -> None:
    assert resolve.open_no_symlinks is not None
    with pytest.raises(ValueError):
        resolve.open_no_symlinks(f"{tree}/relative.mkv\0/../x", os.O_RDONLY)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="openat2 is Linux's")
def test_on_linux_the_kernel_refuses_the_links() -> None:
    """Without openat2 every path would take the full gate: about 10 us more per file.
    Linux 5.6 (2020) has it; a seccomp profile that refuses it would make this fail."""
    assert resolve.open_no_symlinks is not None
