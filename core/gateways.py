"""The core's side of payment gateways: which exist, and calls routed to the right one.

The core never lets a gateway write money tables: gateways answer with value objects
(:mod:`core.hooktypes`) and the payments module records them.
"""

from __future__ import annotations

from core.errors import NotFound, PluginError, ValidationError
from core.hooktypes import GatewayInfo, Notification, PaymentNotice, PaymentRequest, PaymentStart, RefundResult
from core.plugins import get_manager


def available(pm=None) -> dict[str, GatewayInfo]:
    """Every gateway the plugins describe, by name (asked once per request: see ``settings.memo``)."""
    from core import settings

    pm = pm or get_manager()
    return dict(settings.memo(("gateways", id(pm)), lambda: pm.collect_named("gateway_describe", GatewayInfo,
                                                                             "name")))


def missing_settings(info: GatewayInfo, pm=None) -> list[str]:
    """The settings ``info`` says it needs that are still empty."""
    from core import settings

    missing = []
    for key in info.settings:
        try:
            value = settings.get(key, pm)
        except ValidationError:  # a key no plugin declares cannot be set either
            value = None
        if value in (None, "", [], {}):
            missing.append(key)
    return missing


def _require(name: str, pm) -> GatewayInfo:
    gateways = available(pm)
    if name not in gateways:
        raise NotFound(f"no payment gateway named {name!r}")
    return gateways[name]


def _answer(pm, hook, name, expected, **kwargs):
    plugin, answer = pm.call_first(hook, gateway=name, **kwargs)
    if answer is None:
        raise PluginError(name, hook, f"no plugin answered for gateway {name!r}")
    if not isinstance(answer, expected):
        raise PluginError(plugin, hook, f"expected {expected}, got {answer!r}")
    return plugin, answer


def start_payment(name: str, request: PaymentRequest, pm=None) -> PaymentStart:
    """Start a payment through gateway ``name``; refuses a currency it does not take."""
    pm = pm or get_manager()
    info = _require(name, pm)
    if info.currencies and request.amount.currency not in info.currencies:
        raise ValidationError(f"gateway {name!r} does not take {request.amount.currency}", "currency")
    return _answer(pm, "gateway_start_payment", name, PaymentStart, request=request)[1]


def parse_notification(name: str, notification: Notification, pm=None) -> list[PaymentNotice]:
    """Verify and read a notification for gateway ``name`` into payment notices."""
    pm = pm or get_manager()
    _require(name, pm)
    plugin, notices = _answer(pm, "gateway_parse_notification", name, (list, tuple), notification=notification)
    for notice in notices:
        if not isinstance(notice, PaymentNotice) or notice.gateway != name:
            raise PluginError(plugin, "gateway_parse_notification", f"bad notice {notice!r}")
    return list(notices)


def refund(name: str, payment, amount, reason: str = "", pm=None) -> RefundResult:
    """Ask gateway ``name`` to refund ``amount`` of ``payment``."""
    pm = pm or get_manager()
    info = _require(name, pm)
    if not info.can_refund:
        raise ValidationError(f"gateway {name!r} cannot refund", "gateway")
    return _answer(pm, "gateway_refund", name, RefundResult, payment=payment, amount=amount, reason=reason)[1]
