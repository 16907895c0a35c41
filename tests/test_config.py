"""Configuration parsing and validation: pure, no database."""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from mediad.config import SECTIONS, Config, as_display_dict, load, mask_dsn
from mediad.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "mediad.toml"


def test_documented_example_lists_every_key_with_its_default() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    defaults = Config()
    for section, cls in SECTIONS.items():
        assert set(data[section]) == {f.name for f in fields(cls)}, section
        for f in fields(cls):
            documented = data[section][f.name]
            actual = getattr(getattr(defaults, section), f.name)
            assert (list(actual) if isinstance(actual, tuple) else actual) == documented, (
                section,
                f.name,
            )


def test_example_file_loads(tmp_path: Path) -> None:
    config = load(str(EXAMPLE), environ={})
    assert config.database.schema == "mediad"
    assert config.source == str(EXAMPLE)


def test_stable_keys_exist() -> None:
    stable = {
        "database": {"dsn", "schema", "listen"},
        "daemon": {
            "workers",
            "batch_size",
            "poll_seconds",
            "lease_seconds",
            "shutdown_grace_seconds",
            "state_dir",
            "heartbeat_seconds",
        },
        "extract": {"roots", "timeout_seconds"},
        "retry": {"max_attempts"},
        "metrics": {"listen"},
        "log": {"level", "format"},
    }
    for section, keys in stable.items():
        assert keys <= {f.name for f in fields(SECTIONS[section])}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[daemon]\nworkers = -1\n", "daemon.workers"),
        ("[daemon]\nbatch_size = 0\n", "daemon.batch_size"),
        ("[daemon]\nbatch_size = 'ten'\n", "daemon.batch_size"),
        ("[database]\nschema = 'bad-name; drop'\n", "database.schema"),
        ("[database]\nlisten = 'yes'\n", "database.listen"),
        ("[extract]\nroots = ['relative/dir']\n", "extract.roots"),
        ("[extract]\nparse_speed = 2\n", "extract.parse_speed"),
        ("[metrics]\nlisten = 'nohostport'\n", "metrics.listen"),
        ("[log]\nlevel = 'loud'\n", "log.level"),
        ("[daemon]\nworkerz = 3\n", "daemon.workerz"),
        ("[nope]\nx = 1\n", "nope"),
        ("daemon = 3\n", "daemon"),
        ("[daemon]\nheartbeat_seconds = 0\n", "daemon.heartbeat_seconds"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(path), environ={})
    assert info.value.key == key
    assert info.value.exit_code == 2


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[daemon\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(str(path), environ={})
    with pytest.raises(ConfigError, match="no such file"):
        load(str(tmp_path / "missing.toml"), environ={})


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[daemon]\nworkers = 3\nbatch_size = 10\npoll_seconds = 1\n")
    env = {"MEDIAD_DAEMON_WORKERS": "5", "MEDIAD_DAEMON_BATCH_SIZE": "20"}
    config = load(str(path), environ=env, overrides={("daemon", "batch_size"): 30})
    assert (config.daemon.workers, config.daemon.batch_size, config.daemon.poll_seconds) == (
        5,
        30,
        1.0,
    )


def test_environment_types_and_unknown_names() -> None:
    config = load(
        None,
        environ={
            "MEDIAD_DATABASE_LISTEN": "off",
            "MEDIAD_EXTRACT_ROOTS": os.pathsep.join(["/srv/a", "/srv/b"]),
            "MEDIAD_RETRY_BACKOFF_BASE_SECONDS": "0.5",
            "MEDIAD_TEST_DSN": "ignored: not a setting",
        },
    )
    assert config.database.listen is False
    assert config.extract.roots == (os.path.realpath("/srv/a"), os.path.realpath("/srv/b"))
    assert config.retry.backoff_base_seconds == 0.5
    with pytest.raises(ConfigError) as info:
        load(None, environ={"MEDIAD_DAEMON_WORKRES": "2"})
    assert info.value.key == "daemon.workres"
    with pytest.raises(ConfigError, match="whole number"):
        load(None, environ={"MEDIAD_DAEMON_WORKERS": "two"})


def test_embedded_database_always_migrates() -> None:
    assert load(None, environ={}).database.auto_migrate is True
    external = load(None, environ={"MEDIAD_DATABASE_DSN": "postgresql://h/db"})
    assert external.database.auto_migrate is False


def test_password_file_needs_a_dsn() -> None:
    with pytest.raises(ConfigError) as info:
        load(None, environ={"MEDIAD_DATABASE_PASSWORD_FILE": "/run/secret"})
    assert info.value.key == "database.password_file"


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/media", "postgresql://app:***@db:5432/media"),
        (
            "postgresql://db/media?password=s3cret&sslmode=require",
            "postgresql://db/media?password=***&sslmode=require",
        ),
        ("host=db password=s3cret dbname=media", "host=db password=*** dbname=media"),
        ("host=db password='s3 cret' dbname=media", "host=db password=*** dbname=media"),
        ("postgresql://app@db/media", "postgresql://app@db/media"),
    ],
)
def test_dsn_password_is_masked(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_display_never_shows_the_password() -> None:
    config = load(None, environ={"MEDIAD_DATABASE_DSN": "postgresql://a:topsecret@h/d"})
    assert "topsecret" not in repr(as_display_dict(config))


def test_effective_workers_defaults_to_cores() -> None:
    assert Config().effective_workers() == (os.cpu_count() or 1)


def test_documented_attach_example_lists_every_key(tmp_path: Path) -> None:
    """[attach."TABLE"] is commented out in the example (no table exists by default)."""
    from mediad.config import ATTACH_KEYS, AttachConfig

    text = EXAMPLE.read_text()
    block = text[text.index('# [attach."public.media_files"]') :]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    data = tomllib.loads(uncommented)["attach"]["public.media_files"]
    assert set(data) == set(ATTACH_KEYS) == {f.name for f in fields(AttachConfig)} - {"table"}
    assert data["skip_existing"] == AttachConfig().skip_existing
    path = tmp_path / "c.toml"
    path.write_text(uncommented)
    assert load(str(path), environ={}).attach[0].summary_prefix == "media_"
