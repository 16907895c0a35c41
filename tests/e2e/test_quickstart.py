"""The README's two commands, from a clean clone, as a newcomer types them."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.media import make_corpus
from tests.support.processes import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the Quick start has a shell block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_quick_start_is_exactly_two_commands() -> None:
    assert quick_start_commands() == ["make run MEDIA=/path/to/your/media", "make test"]


@pytest.fixture
def clone() -> Iterator[Path]:
    if os.environ.get("MEDIAD_TEST_IN_QUICKSTART"):
        pytest.skip("already inside the quick-start test's own `make test`")
    # Outside pytest's 0700 tmp: the embedded server runs as its own user when we are root.
    base = Path(tempfile.mkdtemp(prefix="mediad-quickstart-"))
    target = base / "mediad"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    try:
        yield target
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_make_run_then_make_test_from_a_clean_clone(clone: Path) -> None:
    media = clone.parent / "media"
    media.mkdir()
    expected = make_corpus(media)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAD_", "VIRTUAL_ENV"))}
    env.update(
        XDG_STATE_HOME=str(clone.parent / "state"),
        MEDIAD_METRICS_LISTEN="127.0.0.1:0",
        MEDIAD_TEST_IN_QUICKSTART="1",
    )
    log_path = clone.parent / "run.log"
    with open(log_path, "w") as log:
        run = subprocess.Popen(
            ["make", "run", f"MEDIA={media}"],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def status() -> dict[str, int] | None:
            if not (clone / ".venv/.installed").exists():
                return None  # make is still installing
            result = subprocess.run(
                [str(clone / ".venv/bin/mediad"), "status", "--json"],
                cwd=clone,
                env=env,
                capture_output=True,
                text=True,
            )
            return json.loads(result.stdout)["counts"] if result.returncode == 0 else None

        def all_done() -> bool:
            counts = status()
            return counts is not None and counts["done"] == len(expected)

        wait_until(
            lambda: run.poll() is not None or all_done(),
            300,
            "make run to extract the scanned files",
        )
        assert run.poll() is None, log_path.read_text()
        # Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    output = log_path.read_text()
    assert '"draining"' in output and '"stopped"' in output, output
    assert "Traceback" not in output, output
    counts = status()
    assert counts == {"pending": 0, "running": 0, "done": len(expected), "failed": 0}

    # The second command, limited to the fast tests: the full suite is what runs this test.
    test = subprocess.run(
        ["make", "test", "PYTEST_ARGS=-q tests/unit/test_config.py"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert test.returncode == 0, test.stdout + test.stderr
    assert re.search(r"\d+ passed", test.stdout), test.stdout
