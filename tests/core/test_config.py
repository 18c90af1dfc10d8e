"""Configuration from defaults, a TOML file and the environment; bad values refused by name."""

import os
import stat

import pytest

from core.config import load_config
from core.errors import ConfigError


def test_defaults_put_sqlite_in_the_data_dir(tmp_path):
    config = load_config(env={"WISPBILL_DATA_DIR": str(tmp_path)})
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'wispbill.db'}"
    assert config.backend == "sqlite"
    assert config.disable_plugins == ()


def test_secret_key_is_generated_once_and_private(tmp_path):
    first = load_config(env={"WISPBILL_DATA_DIR": str(tmp_path)}).secret_key
    second = load_config(env={"WISPBILL_DATA_DIR": str(tmp_path)}).secret_key
    assert first == second and len(first) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600


def test_environment_overrides_file(tmp_path):
    conf = tmp_path / "wispbill.toml"
    conf.write_text('database_url = "sqlite:////srv/a.db"\nlog_level = "debug"\ndisable_plugins = ["x"]\n')
    config = load_config(env={"WISPBILL_CONFIG": str(conf), "WISPBILL_DATA_DIR": str(tmp_path),
                              "WISPBILL_DATABASE_URL": "postgresql://u@127.0.0.1/db"})
    assert config.database_url == "postgresql://u@127.0.0.1/db"
    assert config.backend == "postgresql"
    assert config.log_level == "DEBUG"
    assert config.disable_plugins == ("x",)


@pytest.mark.parametrize("env, message", [
    ({"WISPBILL_DATABASE_URL": "mysql://x/y"}, "unsupported scheme 'mysql'"),
    ({"WISPBILL_DATABASE_URL": "postgresql://127.0.0.1"}, "no database name"),
    ({"WISPBILL_DATABASE_URL": "sqlite://"}, "no file path"),
    ({"WISPBILL_LOG_LEVEL": "loud"}, "WISPBILL_LOG_LEVEL"),
    ({"WISPBILL_SESSION_COOKIE_SECURE": "maybe"}, "expected true or false"),
    ({"WISPBILL_SECRET_KEY": "short"}, "at least 16"),
    ({"WISPBILL_CONFIG": "/nonexistent/wispbill.toml"}, "file not found"),
    ({"WISPBILL_TRUSTED_PROXIES": "-1"}, "WISPBILL_TRUSTED_PROXIES"),
    ({"WISPBILL_TRUSTED_PROXIES": "9"}, "from 0 to 5"),
])
def test_bad_values_are_refused_by_name(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env={"WISPBILL_DATA_DIR": str(tmp_path), **env})


def test_bad_toml_is_refused(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text("database_url = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(env={"WISPBILL_CONFIG": str(conf), "WISPBILL_DATA_DIR": str(tmp_path)})


def test_unwritable_data_dir_is_a_config_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores the mode: use a path under a file instead
            target = tmp_path / "a-file"
            target.write_text("")
            locked = target / "data"
        with pytest.raises(ConfigError, match="cannot keep the secret key"):
            load_config(env={"WISPBILL_DATA_DIR": str(locked)})
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_processes_starting_together_share_one_secret_key(tmp_path):
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(4) as pool:
        keys = set(pool.map(_key_for, [str(tmp_path)] * 8))
    assert len(keys) == 1
    assert keys == {(tmp_path / "secret_key").read_text().strip()}
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left


def _key_for(data_dir):
    return load_config(env={"WISPBILL_DATA_DIR": data_dir}).secret_key


@pytest.mark.parametrize("url, shown", [
    ("postgresql://billing:s3cr@t@db.local:5432/wb", "postgresql://billing:***@db.local:5432/wb"),
    ("postgresql://billing@db.local/wb", "postgresql://billing@db.local/wb"),
    ("postgresql://b:p@h/wb?sslmode=require", "postgresql://b:***@h/wb?sslmode=require"),
    ("postgresql://b:pa/ss@h/wb", "postgresql://b:***@h/wb"),
    ("postgresql://b:p?a#s@h:5432/wb", "postgresql://b:***@h:5432/wb"),
])
def test_redact_hides_the_whole_password(url, shown):
    from core.config import redact

    assert redact(url) == shown


def test_config_errors_do_not_print_the_password(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(env={"WISPBILL_DATA_DIR": str(tmp_path), "WISPBILL_DATABASE_URL": "mysql://u:hunter2@h/db"})
    assert "hunter2" not in str(info.value) and "u:***@h" in str(info.value)
