"""The MikroTik enforcer's settings, and the per-router options that override them.

Global settings (``wispbill settings set``): ``mikrotik.suspend_list`` and
``mikrotik.timeout_seconds``. A router's ``options`` JSON may override either
(``suspend_list``, ``timeout_seconds``) and adds ``ppp_profile`` (attributes every
managed PPP profile gets, such as ``local-address`` and ``remote-address``),
``tls_verify`` and ``tls_ca_file``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core import settings as core_settings
from core.hooktypes import SettingSpec
from plugins.mikrotik.mapping import Layout

SUSPEND_LIST = "mikrotik.suspend_list"
TIMEOUT = "mikrotik.timeout_seconds"

DEFAULT_SUSPEND_LIST = "wispbill-suspended"
DEFAULT_TIMEOUT = 5.0
API_PORT, API_SSL_PORT = 8728, 8729

_LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PROFILE_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9-]*$")
# Attributes of a managed profile that the enforcer sets itself.
_OWN_PROFILE_ATTRIBUTES = {"name", "comment", "rate-limit", "address-list"}


def parse_list_name(text) -> str:
    """An address-list name: letters, digits, ``.``, ``_`` and ``-``, up to 63."""
    value = str(text).strip()
    if not _LIST_NAME.match(value):
        raise ValueError("an address-list name is letters, digits, '.', '_' and '-' (up to 63), "
                         "like wispbill-suspended")
    return value


parse_timeout = core_settings.seconds_parser(0.1, 120)  # seconds to wait for the router


def specs() -> list[SettingSpec]:
    """The settings this enforcer declares."""
    return [
        SettingSpec(SUSPEND_LIST, "MikroTik suspend address list", default=DEFAULT_SUSPEND_LIST,
                    parse=parse_list_name,
                    help="Firewall address list of suspended subscribers; the setup script redirects it "
                         "to the payment page. A router's options may name another (suspend_list)."),
        SettingSpec(TIMEOUT, "MikroTik API timeout (seconds)", default=DEFAULT_TIMEOUT, parse=parse_timeout,
                    help="How long to wait for a router to connect or answer before giving up; "
                         "the change stays pending and is retried."),
    ]


@dataclass(frozen=True)
class RouterConfig:
    """Everything the enforcer needs to know about one router, read once per hook call."""

    label: str
    host: str
    port: int
    username: str
    password: str
    use_tls: bool
    tls_verify: bool
    tls_ca_file: str | None
    timeout: float
    layout: Layout

    @property
    def identity(self) -> tuple:
        """What a kept connection must still match to be reused."""
        return (self.host, self.port, self.username, self.password, self.use_tls, self.tls_verify,
                self.tls_ca_file, self.timeout)


def _setting(key: str, default):
    value = core_settings.get_or(key, default)
    return default if value in (None, "") else value


def _profile_base(value, label: str) -> tuple[tuple[str, str], ...]:
    """``ppp_profile`` as a mapping, or as text ``local-address=10.255.0.1;dns-server=1.1.1.1,8.8.8.8``."""
    if value in (None, {}, ""):
        return ()
    if isinstance(value, str):
        pairs = [part.partition("=") for part in value.split(";") if part.strip()]
        if not all(sep for _name, sep, _value in pairs):
            raise ValueError(f"router {label}: options.ppp_profile is attribute=value pairs separated by ';'")
        value = {name.strip(): attr.strip() for name, _sep, attr in pairs}
    if not isinstance(value, dict):
        raise ValueError(f"router {label}: options.ppp_profile must be a mapping of attribute to value")
    out = []
    for name, attr in sorted(value.items()):
        if not isinstance(name, str) or not _PROFILE_ATTRIBUTE.match(name) or name in _OWN_PROFILE_ATTRIBUTES:
            raise ValueError(f"router {label}: options.ppp_profile cannot set {name!r}")
        out.append((name, str(attr)))
    return tuple(out)


def _flag(value, name: str, label: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"router {label}: options.{name} must be true or false, not {value!r}")


def router_config(router) -> RouterConfig:
    """The connection details and names for ``router`` (a ``Router`` row); its options win over settings.

    Raises ``ValueError`` for options that make no sense.
    """
    options = router.options or {}
    label = router.name or router.host
    suspend_list = options.get("suspend_list")
    suspend_list = parse_list_name(suspend_list) if suspend_list else parse_list_name(
        _setting(SUSPEND_LIST, DEFAULT_SUSPEND_LIST))
    timeout = options.get("timeout_seconds")
    timeout = parse_timeout(timeout if timeout is not None else _setting(TIMEOUT, DEFAULT_TIMEOUT))
    use_tls = bool(router.use_tls)
    ca_file = options.get("tls_ca_file") or None
    return RouterConfig(
        label=label, host=router.host, port=int(router.port or (API_SSL_PORT if use_tls else API_PORT)),
        username=router.username or "admin", password=router.secret or "", use_tls=use_tls,
        tls_verify=_flag(options.get("tls_verify", False), "tls_verify", label) or ca_file is not None,
        tls_ca_file=ca_file,
        timeout=timeout,
        layout=Layout(suspend_list=suspend_list, profile_base=_profile_base(options.get("ppp_profile"), label)),
    )
