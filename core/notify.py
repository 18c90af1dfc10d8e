"""Sending messages through notifier plugins, one channel at a time."""

from __future__ import annotations

from core.errors import NotFound, PluginError
from core.hooktypes import Delivery, Message
from core.plugins import get_manager


def send(message: Message, pm=None) -> Delivery:
    """Deliver ``message`` through the notifier for its channel.

    Raises :class:`NotFound` when no notifier takes the channel and
    :class:`PluginError` when the notifier failed.
    """
    pm = pm or get_manager()
    plugin, answer = pm.call_first("notify", message=message)
    if answer is None:
        raise NotFound(f"no notifier delivers the {message.channel!r} channel")
    if not isinstance(answer, Delivery):
        raise PluginError(plugin, "notify", f"expected Delivery, got {answer!r}")
    return answer
