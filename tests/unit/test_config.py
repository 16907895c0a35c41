"""Configuration parsing and validation: pure, no database."""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from mediad.config import SECTIONS, Config, as_display_dict, load, mask_dsn
from mediad.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "mediad.toml"


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
    block = text[text.index('# [attach."public.media_files"]') :].split("\n\n")[0]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    data = tomllib.loads(uncommented)["attach"]["public.media_files"]
    assert set(data) == set(ATTACH_KEYS) == {f.name for f in fields(AttachConfig)} - {"table"}
    assert data["skip_existing"] == AttachConfig().skip_existing
    path = tmp_path / "c.toml"
    path.write_text(uncommented)
    assert load(str(path), environ={}).attach[0].summary_prefix == "media_"


# --- mounts ------------------------------------------------------------------------------


def test_mount_settings_default() -> None:
    config = load(None, environ={})
    assert config.daemon.mount_stall_timeouts == 3
    assert config.daemon.mount_stall_window_seconds == 120.0
    assert config.daemon.mount_probe_seconds == 15.0
    assert config.daemon.max_stuck_workers == 0
    assert config.effective_max_stuck() == config.effective_workers()
    assert config.mounts == ()
    assert config.mount_overrides() == {}


def test_mount_settings_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[daemon]\nworkers = 6\nmount_stall_timeouts = 5\nmax_stuck_workers = 2\n"
        '[mounts."/mnt/nas"]\nmax_workers = 4\n'
        '[mounts."/mnt/My Films/"]\nmax_workers = 1\n'
    )
    env = {"MEDIAD_DAEMON_MOUNT_PROBE_SECONDS": "2.5"}
    config = load(str(path), environ=env)
    assert config.daemon.mount_stall_timeouts == 5
    assert config.daemon.mount_probe_seconds == 2.5
    assert config.effective_max_stuck() == 2
    # The point is written as the mount table shows it: no trailing slash.
    assert config.mount_overrides() == {"/mnt/nas": 4, "/mnt/My Films": 1}


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[daemon]\nmount_stall_timeouts = 0\n", "daemon.mount_stall_timeouts", "greater"),
        ("[daemon]\nmount_stall_timeouts = 2.5\n", "daemon.mount_stall_timeouts", "whole"),
        ("[daemon]\nmount_stall_window_seconds = 0\n", "daemon.mount_stall_window_seconds", ""),
        ("[daemon]\nmount_probe_seconds = -1\n", "daemon.mount_probe_seconds", "greater"),
        ("[daemon]\nmax_stuck_workers = -1\n", "daemon.max_stuck_workers", "0 or more"),
        ('[mounts."mnt/nas"]\nmax_workers = 2\n', 'mounts."mnt/nas"', "absolute"),
        ('[mounts."/mnt/nas"]\nmax_workers = 0\n', 'mounts."/mnt/nas".max_workers', "1 or more"),
        ('[mounts."/mnt/nas"]\nmax_workers = "two"\n', 'mounts."/mnt/nas".max_workers', "whole"),
        ('[mounts."/mnt/nas"]\n', 'mounts."/mnt/nas".max_workers', "required"),
        ('[mounts."/mnt/nas"]\nmax_worker = 2\n', 'mounts."/mnt/nas".max_worker', "unknown key"),
        ('[mounts]\n"/mnt/nas" = 2\n', 'mounts."/mnt/nas"', "must be a table"),
        (
            '[mounts."/mnt/nas"]\nmax_workers = 2\n[mounts."/mnt/nas/"]\nmax_workers = 3\n',
            'mounts."/mnt/nas/"',
            "again",
        ),
    ],
)
def test_bad_mount_settings_name_the_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(path), environ={})
    assert info.value.key == key
    assert reason in str(info.value)


def test_mount_tables_have_no_environment_variables() -> None:
    with pytest.raises(ConfigError, match="does not name a setting"):
        load(None, environ={"MEDIAD_MOUNTS_MAX_WORKERS": "2"})


def test_documented_mounts_example_loads(tmp_path: Path) -> None:
    """[mounts."POINT"] is commented out in the example (no override by default)."""
    from mediad.config import MOUNT_KEYS, MountConfig

    text = EXAMPLE.read_text()
    block = text[text.index('# [mounts."/mnt/nas"]') :].split("\n\n")[0]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    data = tomllib.loads(uncommented)["mounts"]["/mnt/nas"]
    assert set(data) == set(MOUNT_KEYS) == {f.name for f in fields(MountConfig)} - {"point"}
    path = tmp_path / "c.toml"
    path.write_text(uncommented)
    assert load(str(path), environ={}).mount_overrides() == {"/mnt/nas": 4}
