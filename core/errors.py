"""Exceptions the core raises for bad input and unusable configuration.

Each carries a message meant for a person: the CLI prints it on one line and the
web app shows it with a 400 response.
"""


class WispbillError(Exception):
    """Base class of the errors the core raises on purpose."""


class ConfigError(WispbillError):
    """A configuration value (environment or instance file) is invalid."""


class ValidationError(WispbillError):
    """Input from a person or a plugin failed validation; nothing was written.

    ``field`` names the offending field when there is one.
    """

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


class NotFound(WispbillError):
    """The object asked for does not exist."""


class DatabaseUnavailable(WispbillError):
    """The database cannot be reached or opened."""


class SchemaOutOfDate(WispbillError):
    """The database schema is older than this code expects; run ``wispbill migrate``."""


class PluginError(WispbillError):
    """A plugin failed while handling a hook call. ``plugin`` names it."""

    def __init__(self, plugin, hook, error):
        super().__init__(f"plugin {plugin!r} failed in {hook}: {error}")
        self.plugin = plugin
        self.hook = hook
        self.error = error
