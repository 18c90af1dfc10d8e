"""Gateway notifications: ``POST /hooks/<gateway>`` (and ``/hooks/<gateway>/<path>``).

The gateway plugin verifies and reads the notification; the core records what it says.
A notification the plugin refuses (bad signature, an old event replayed, a malformed
body) is answered 400, records nothing, and leaves a ``webhook.refused`` audit event. A
failure of ours (a plugin crash, the database) is answered 500 so that the gateway
delivers it again; recording is idempotent, so a repeat is harmless.
"""

from __future__ import annotations

import hashlib
import logging

from flask import Blueprint, Response, jsonify, request

from core import audit, gateways, payments
from core.web.auth import public
from core.db import database
from core.errors import NotFound, PluginError, ValidationError
from core.hooktypes import Notification, WebhookReply
from core.plugins import get_manager

log = logging.getLogger(__name__)

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


def shown_path(path: str) -> str:
    """``path`` as the audit trail keeps it: long segments, which may be a secret token, masked."""
    return "/".join(part if len(part) < 12 else "****" for part in path.split("/"))[:200]


def _log_refusal(gateway: str, path: str, body: bytes, error: str, action: str = "webhook.refused") -> None:
    """An audit event for a notification that recorded nothing; the body itself is not kept."""
    try:
        with database.atomic(), audit.acting_as(f"gateway:{gateway[:40]}"):
            audit.record(action, "webhook", gateway[:60], None, {
                "path": shown_path(path), "error": error[:500], "remote_addr": request.remote_addr,
                "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})
    except Exception:  # the answer must still go out when the audit cannot be written
        log.exception("could not audit a refused %s notification", gateway)


def _reply(pm, gateway: str, notification: Notification, notices, error: str | None, status: int, data: dict):
    try:
        _plugin, answer = pm.call_first("gateway_reply", gateway=gateway, notification=notification,
                                        notices=list(notices), error=error)
    except (PluginError, ValidationError) as exc:
        log.error("%s", exc)
        answer = None
    if isinstance(answer, WebhookReply):
        # A plugin may shape the body, but a refused notification is never answered as accepted.
        code = answer.status if error is None or answer.status >= 400 else status
        return Response(answer.body, status=code, content_type=answer.content_type)
    return jsonify(data), status


@bp.route("/<gateway>", methods=("POST",), defaults={"path": ""})
@bp.route("/<gateway>/<path:path>", methods=("POST",))
@public
def receive(gateway: str, path: str):
    """Verify, read and record one notification from ``gateway``."""
    pm = get_manager()
    info = gateways.available(pm).get(gateway)
    if info is None or not info.webhooks:
        return jsonify({"error": "Not found", "message": f"no payment gateway {gateway!r} takes notifications",
                        "status": 404}), 404
    body = request.get_data(cache=False)
    notification = Notification(gateway=gateway, body=body, headers=dict(request.headers),
                                query=request.args.to_dict(), remote_addr=request.remote_addr, path=path)
    try:
        notices = gateways.parse_notification(gateway, notification, pm=pm)
        for notice in notices:
            payments.check_notice(notice)
    except ValidationError as exc:
        _log_refusal(gateway, path, body, str(exc))
        return _reply(pm, gateway, notification, [], str(exc), 400,
                      {"error": "Bad request", "message": str(exc), "status": 400})
    except (PluginError, NotFound) as exc:
        _log_refusal(gateway, path, body, str(exc), "webhook.failed")
        return jsonify({"error": "Something went wrong", "message": "the notification could not be read; "
                        "it has been logged", "status": 500}), 500
    try:
        with audit.acting_as(f"gateway:{gateway}"):
            outcomes = payments.record(notices, pm=pm)
    except Exception as exc:  # nothing of this notice was committed; the gateway will deliver it again
        log.exception("recording a %s notification failed", gateway)
        _log_refusal(gateway, path, body, f"recording failed: {exc.__class__.__name__}", "webhook.failed")
        return jsonify({"error": "Something went wrong", "message": "the notification could not be recorded; "
                        "it has been logged", "status": 500}), 500
    counts = payments.outcome_counts(outcomes)
    return _reply(pm, gateway, notification, notices, None, 200, {"received": len(notices), **counts})
