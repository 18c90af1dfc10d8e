"""Configuration: built-in defaults, then an optional TOML file, then the environment.

Every setting has an environment variable ``WISPBILL_<NAME>``; the file named by
``WISPBILL_CONFIG`` (for the appliance ``/etc/wispbill/wispbill.toml``) may hold the same
names in lower case. A bad value raises :class:`core.errors.ConfigError` naming the
setting, so the CLI and the web app can refuse to start with one clear line.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from core.errors import ConfigError

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgres")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    """The settings the core runs with; build it with :func:`load_config`."""

    data_dir: Path
    database_url: str
    secret_key: str
    disable_plugins: tuple[str, ...] = ()
    log_level: str = "INFO"
    session_cookie_secure: bool = False
    trusted_proxies: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"


def _read_file(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"WISPBILL_CONFIG: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"WISPBILL_CONFIG: {path} is not valid TOML: {exc}") from None
    return {str(k).lower(): v for k, v in data.items()}


def _as_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"WISPBILL_{name.upper()}: expected true or false, got {value!r}")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs.

    The user information ends at the last ``@``, so a password holding ``@``, ``/``,
    ``?`` or ``#`` is hidden whole.
    """
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)(.*)@([^@]*)$", url)
    return f"{match.group(1)}***@{match.group(3)}" if match else url


def validate_database_url(url: str) -> str:
    """Return ``url`` if it names a database wispbill can use, else raise ConfigError."""
    parsed = urlparse(url)
    shown = redact(url)
    if parsed.scheme not in SUPPORTED_SCHEMES:
        raise ConfigError(
            f"WISPBILL_DATABASE_URL: unsupported scheme {parsed.scheme!r} in {shown!r} "
            "(use sqlite:///path/to/file.db or postgresql://user@host:port/dbname)"
        )
    if parsed.scheme == "sqlite" and not parsed.path.strip("/") and ":memory:" not in url:
        raise ConfigError(f"WISPBILL_DATABASE_URL: no file path in {shown!r}")
    if parsed.scheme != "sqlite" and not parsed.path.strip("/"):
        raise ConfigError(f"WISPBILL_DATABASE_URL: no database name in {shown!r}")
    return url


def _secret_key(data_dir: Path) -> str:
    """Read the secret key kept in the data directory, creating it once if missing.

    Processes starting together on a new data directory all end up with the key that
    was written first: each writes a complete private temporary file, and only the
    first hard link to ``secret_key`` succeeds.
    """
    path = data_dir / "secret_key"
    try:
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".secret_key.")
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(48) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass  # another process won; use its key
            finally:
                os.unlink(tmp)
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"WISPBILL_DATA_DIR: cannot keep the secret key in {data_dir}: {exc.strerror or exc} "
            "(make the directory writable or set WISPBILL_SECRET_KEY)") from None
    if not key:
        raise ConfigError(f"WISPBILL_DATA_DIR: {path} is empty; delete it to have a new key made")
    return key


def load_config(env=None, overrides: dict | None = None) -> Config:
    """Build the configuration from defaults, the TOML file, ``env`` and ``overrides``."""
    env = os.environ if env is None else env
    values: dict = {}
    if env.get("WISPBILL_CONFIG"):
        values.update(_read_file(env["WISPBILL_CONFIG"]))
    for key, value in env.items():
        if key.startswith("WISPBILL_") and key != "WISPBILL_CONFIG":
            values[key[len("WISPBILL_"):].lower()] = value
    values.update({k.lower(): v for k, v in (overrides or {}).items()})

    data_dir = Path(values.pop("data_dir", None) or "./var").expanduser()
    database_url = values.pop("database_url", None) or f"sqlite:///{data_dir.resolve() / 'wispbill.db'}"
    validate_database_url(str(database_url))

    log_level = str(values.pop("log_level", "INFO")).upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"WISPBILL_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")

    disabled = values.pop("disable_plugins", ())
    if isinstance(disabled, str):
        disabled = [p.strip() for p in disabled.split(",")]
    secure = _as_bool("session_cookie_secure", values.pop("session_cookie_secure", False))
    proxies = str(values.pop("trusted_proxies", 0)).strip()
    if not proxies.isdigit() or int(proxies) > 5:
        raise ConfigError(f"WISPBILL_TRUSTED_PROXIES: expected a number of proxies from 0 to 5, got {proxies!r}")
    secret = values.pop("secret_key", None) or _secret_key(data_dir)
    if len(str(secret)) < 16:
        raise ConfigError("WISPBILL_SECRET_KEY: must be at least 16 characters")

    return Config(
        data_dir=data_dir,
        database_url=str(database_url),
        secret_key=str(secret),
        disable_plugins=tuple(p for p in disabled if p),
        log_level=log_level,
        session_cookie_secure=secure,
        trusted_proxies=int(proxies),
        extra=values,
    )


def configure_logging(config: Config) -> None:
    """Send log records to stderr at the configured level."""
    logging.basicConfig(
        level=getattr(logging, config.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
