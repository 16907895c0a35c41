"""Logging: journald fields, JSON and console output, and secrets that never get out."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from mediad import journald, logs

SECRET = "s3cr3t-Pa55"


class FakeJournal:
    """Records what would have gone to sd_journal_send."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, message: str, **fields: Any) -> None:
        self.entries.append((message, fields))


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
    logs._secrets.clear()
    logs._warned_no_journal = False


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> FakeJournal:
    fake = FakeJournal()
    monkeypatch.setattr(journald, "journal_send", lambda: fake)
    monkeypatch.setattr(journald, "journal_present", lambda *a: True)
    return fake


def get_log() -> Any:
    return structlog.get_logger("mediad")


# --- journald -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("row_id", "ROW_ID"),
        ("path", "PATH"),
        ("error_class", "ERROR_CLASS"),
        ("worker_pid", "WORKER_PID"),
        ("files/s", "FILES_S"),
        ("retry-in.s", "RETRY_IN_S"),
        ("_hidden", "HIDDEN"),  # a leading _ is reserved for journald's trusted fields
        ("2nd", "FIELD_2ND"),
        ("message", "EVENT_MESSAGE"),  # never overwrites the real MESSAGE
        ("priority", "EVENT_PRIORITY"),
        ("é", "FIELD_"),
        ("x" * 80, "X" * 64),
    ],
)
def test_field_names_are_what_journald_accepts(key: str, field: str) -> None:
    assert journald.field_name(key) == field


def test_an_event_becomes_a_journal_entry_with_its_fields(
    journal: FakeJournal, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("debug", "journald")
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    get_log().warning(
        "file failed",
        path="/srv/a b.mkv",
        row_id=42,
        error_class="corrupt",
        error="no header",
        worker_pid=4242,
        attempt=2,
        retry_in_s=1.5,
        streams=["video", "audio"],
        truncated=False,
        missing=None,
    )
    assert len(journal.entries) == 1
    message, fields = journal.entries[0]
    assert message == "file failed"
    assert fields["PATH"] == "/srv/a b.mkv"
    assert fields["ROW_ID"] == "42"
    assert fields["ERROR_CLASS"] == "corrupt"
    assert fields["ERROR"] == "no header"
    assert fields["WORKER_PID"] == "4242"
    assert fields["ATTEMPT"] == "2"
    assert fields["RETRY_IN_S"] == "1.5"
    assert json.loads(fields["STREAMS"]) == ["video", "audio"]
    assert fields["TRUNCATED"] == "false"
    assert "MISSING" not in fields
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "mediad"
    assert fields["LEVEL"] == "warning"
    assert "TIMESTAMP" in fields
    # CODE_* name the line that logged, not the renderer.
    assert fields["CODE_FILE"] == __file__
    assert fields["CODE_LINE"] == line
    assert fields["CODE_FUNC"] == "test_an_event_becomes_a_journal_entry_with_its_fields"
    for name in fields:  # journald's rule for names an application may send
        assert re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", name), name
    assert capsys.readouterr().err == ""  # nothing printed besides


@pytest.mark.parametrize(
    ("method", "priority"),
    [
        ("debug", "7"),
        ("info", "6"),
        ("warning", "4"),
        ("error", "3"),
        ("critical", "2"),
        ("exception", "3"),
    ],
)
def test_priority_follows_the_level(journal: FakeJournal, method: str, priority: str) -> None:
    logs.configure("debug", "journald")
    getattr(get_log(), method)("something")
    assert [fields["PRIORITY"] for _, fields in journal.entries] == [priority]


def test_the_level_filters_before_the_journal(journal: FakeJournal) -> None:
    logs.configure("warning", "journald")
    get_log().info("chatty")
    get_log().error("bad")
    assert [message for message, _ in journal.entries] == ["bad"]


def test_fields_suit_the_real_systemd_journal_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd.journal.send formats the fields (CODE_LINE as an int, bytes, str): run it for
    real and capture what it would hand to sd_journal_sendv."""
    systemd_journal = pytest.importorskip("systemd.journal")
    sent: list[tuple[str, ...]] = []
    monkeypatch.setattr(systemd_journal, "sendv", lambda *lines: sent.append(lines))
    monkeypatch.setattr(journald, "journal_present", lambda *a: True)
    logs.configure("info", "journald")
    get_log().info("started", workers=2, owner="host:1", metrics=None)
    assert len(sent) == 1
    lines = sent[0]
    assert lines[0] == "MESSAGE=started"
    assert "WORKERS=2" in lines
    assert "OWNER=host:1" in lines
    assert "PRIORITY=6" in lines
    assert "SYSLOG_IDENTIFIER=mediad" in lines
    assert f"CODE_FILE={__file__}" in lines
    assert not any(line.startswith("METRICS=") for line in lines)


def test_a_refusing_journal_falls_back_to_json_lines() -> None:
    def refuse(message: str, **fields: Any) -> None:
        raise OSError(90, "Message too long")

    class Stream:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

    stream = Stream()
    renderer = journald.JournaldRenderer(refuse, stream)  # type: ignore[arg-type]
    for n in range(2):
        with pytest.raises(structlog.DropEvent):
            renderer(None, "info", {"event": "tick", "level": "info", "n": n})
    records = [json.loads(line) for line in stream.text.splitlines()]
    assert [r["event"] for r in records] == [
        "journal refused an event: writing JSON lines to stderr",
        "tick",
        "tick",
    ]
    assert [r.get("n") for r in records[1:]] == [0, 1]


@pytest.mark.parametrize(
    ("patch", "reason"),
    [("journal_send", "mediad[systemd]"), ("journal_present", "no journal listens")],
)
def test_without_the_journal_json_lines_and_one_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], patch: str, reason: str
) -> None:
    monkeypatch.setattr(journald, "journal_present", lambda *a: True)
    monkeypatch.setattr(journald, "journal_send", lambda: FakeJournal())
    monkeypatch.setattr(journald, patch, lambda *a: None if patch == "journal_send" else False)
    logs.configure("info", "journald")
    logs.configure("info", "journald")  # a reload: no second warning
    get_log().info("started", workers=3)
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    warnings = [r for r in records if r["level"] == "warning"]
    assert len(warnings) == 1
    assert reason in warnings[0]["event"]
    assert records[-1]["event"] == "started"
    assert records[-1]["workers"] == 3


# --- choosing the format --------------------------------------------------------------


def test_journal_stream_must_match_stderr(tmp_path: Path) -> None:
    target = tmp_path / "stream"
    other = tmp_path / "other"
    target.touch()
    other.touch()
    with open(target, "w") as handle:
        fd = handle.fileno()
        st = os.fstat(fd)
        st_other = os.stat(other)
        assert logs.stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, fd)
        assert not logs.stderr_is_journal(
            {"JOURNAL_STREAM": f"{st_other.st_dev}:{st_other.st_ino}"}, fd
        )
        assert not logs.stderr_is_journal({"JOURNAL_STREAM": "garbage"}, fd)
        assert not logs.stderr_is_journal({}, fd)


def choose_in_subprocess(env_stream: str | None, stderr: Any) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if env_stream is not None:
        env["JOURNAL_STREAM"] = env_stream
    code = "from mediad.logs import choose_format; print(choose_format('auto'))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_auto_picks_journald_only_when_stderr_is_that_stream(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    err.touch()
    st = os.stat(err)
    stream = f"{st.st_dev}:{st.st_ino}"
    with open(err, "w") as handle:
        assert choose_in_subprocess(stream, handle) == "journald"
        assert choose_in_subprocess(None, handle) == "json"
    # Inherited variable, but stderr redirected elsewhere (a pipe): not the journal.
    assert choose_in_subprocess(stream, subprocess.PIPE) == "json"


# --- JSON and console -----------------------------------------------------------------


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    get_log().info("started", workers=2, roots=["/srv/media"])
    get_log().debug("hidden")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "started"
    assert record["level"] == "info"
    assert record["workers"] == 2
    assert record["roots"] == ["/srv/media"]
    assert record["timestamp"].endswith("Z")


def test_console_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "console")
    get_log().warning("worker died", pid=77, how="SIGSEGV")
    err = capsys.readouterr().err
    assert "worker died" in err
    assert "pid=77" in err
    assert "how=SIGSEGV" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


# --- secrets --------------------------------------------------------------------------


def log_secrets_everywhere() -> None:
    log = get_log()
    log.info("url", dsn=f"postgresql://mediad:{SECRET}@db.example:5432/media")
    log.info("url in query", dsn=f"postgres://db.example/media?sslmode=require&password={SECRET}")
    log.info("libpq", dsn=f"host=db.example user=mediad password={SECRET} dbname=media")
    log.info("libpq quoted", dsn=f"host=db.example password='{SECRET} x' user=mediad")
    log.info("environment", env=f"PGPASSWORD={SECRET}")
    log.info("json text", body=f'{{"user": "mediad", "password": "{SECRET}"}}')
    log.info("by key", password=SECRET, db_password=SECRET)
    log.info(
        "nested",
        config={"database": {"dsn": f"postgresql://u:{SECRET}@db.example/x", "password": SECRET}},
        items=[f"password={SECRET}"],
    )
    log.info(f"in the event text postgresql://u:{SECRET}@db.example/x")
    log.warning("database unavailable: will retry", error=f"connection failed: {SECRET}")
    try:
        raise RuntimeError(f"cannot connect to postgresql://u:{SECRET}@db.example/x")
    except RuntimeError:
        log.exception("crashed")


@pytest.mark.parametrize("fmt", ["json", "console", "journald"])
def test_the_password_never_appears(
    fmt: str, journal: FakeJournal, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.register_secret(SECRET)  # as runtime.read_password would
    logs.configure("info", fmt)
    log_secrets_everywhere()
    out = capsys.readouterr()
    rendered = out.out + out.err + json.dumps(journal.entries, default=str)
    assert SECRET not in rendered
    # The events are there, and what is not secret survived the masking.
    assert rendered.count("db.example") >= 8
    assert "mediad" in rendered
    assert "RuntimeError" in rendered
    assert "***" in rendered


def test_masking_without_a_registered_secret() -> None:
    masked = logs.mask_secrets(
        None,
        "info",
        {
            "event": "x",
            "dsn": f"postgresql://mediad:{SECRET}@db.example/media",
            "libpq": f"host=h password={SECRET}",
            "text": f"password: {SECRET}",
            "fencing_token": 12345,
            "path": "/srv/password-protected/film.mkv",
        },
    )
    assert SECRET not in json.dumps(masked)
    assert masked["dsn"] == "postgresql://mediad:***@db.example/media"
    assert masked["libpq"] == "host=h password=***"
    assert masked["fencing_token"] == 12345
    assert masked["path"] == "/srv/password-protected/film.mkv"


def test_library_logging_comes_out_in_our_format_and_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from mediad import logs

    logs.configure("info", "json")
    logging.getLogger("psycopg.pool").warning(
        "error connecting in 'mediad': postgresql://app:hunter22@db/media refused"
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["logger"] == "psycopg.pool" and event["level"] == "warning"
    assert "hunter22" not in line and "error connecting" in event["event"]
