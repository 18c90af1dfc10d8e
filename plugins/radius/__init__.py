"""Enforcer for RADIUS NAS (router kind ``radius``), through FreeRADIUS's SQL tables.

FreeRADIUS reads ``radcheck``, ``radreply``, ``radusergroup`` and ``radgroupreply`` (rlm_sql)
from wispbill's database; this plugin writes them in the same transaction as the account
state they follow (:mod:`.tables`, :mod:`.mapping`), queues Disconnect and CoA requests
when live sessions must change (:mod:`.actions`) and sends them (:mod:`.sessions`), and
turns the accounting FreeRADIUS writes into usage (:mod:`.usage`). See
``docs/enforcers/radius.md``.
"""

from __future__ import annotations

from core import hookimpl
from core.db import database
from core.hooktypes import EnforcerInfo, Job, RouterCheck

KIND = "radius"


@hookimpl
def register_migrations():
    """The rlm_sql tables, the session-action queue and the usage state."""
    return "plugins.radius.migrations"


@hookimpl
def register_settings():
    """Suspension mode, walled-garden list and rate, and the Disconnect/CoA timeout."""
    from plugins.radius import settings

    return settings.specs()


@hookimpl
def register_jobs():
    """Send queued Disconnect/CoA requests twice a second."""
    from plugins.radius import sessions

    return [Job(id="radius.sessions", func=lambda: sessions.send_due(), trigger="interval",
                schedule={"seconds": 0.5}, description="send queued RADIUS Disconnect and CoA requests")]


@hookimpl
def register_commands(cli):
    """``wispbill radius ...`` and ``wispbill bench radius``."""
    from plugins.radius import commands

    commands.register(cli)


@hookimpl
def register_routes():
    """The console page of the Disconnect/CoA queue (``/plugins/radius/actions``)."""
    from plugins.radius import web

    return [web.bp]


@hookimpl
def console_links():
    """Link the routers and dunning pages to the queue."""
    return [("RADIUS session requests", "radius.actions_page")]


@hookimpl
def enforcer_describe():
    """Routers of kind ``radius``: each is one NAS; applying writes only to this database."""
    return EnforcerInfo(KIND, "RADIUS NAS (FreeRADIUS tables, Disconnect and CoA)", transactional=True)


@hookimpl
def enforcer_read_state(router):
    """The subscribers the tables hold for this NAS (rows changed by hand read as drift)."""
    if router.kind != KIND:
        return None
    from plugins.radius import settings, tables

    with database.atomic():
        tables.sync_nas(router)
        return tables.read_state(router, settings.policy())


@hookimpl
def enforcer_apply(router, changes):
    """Write the changes to the tables and queue the session actions they need."""
    if router.kind != KIND:
        return None
    from plugins.radius import settings, tables

    return tables.apply(router, list(changes), settings.policy())


@hookimpl
def enforcer_check(router):
    """The NAS's address, secret and CoA port as FreeRADIUS will know them, and its live sessions."""
    if router.kind != KIND:
        return None
    from plugins.radius import settings, tables

    nas = settings.nas_of(router)
    with database.atomic():
        tables.sync_nas(router)
    p = database.obj.param
    open_now = database.obj.execute_sql(
        f"SELECT COUNT(*) FROM radacct WHERE acctstoptime IS NULL AND nasipaddress = {p}", (nas.address,)).fetchone()[0]
    return RouterCheck(identity=router.name, version="RADIUS",
                       detail=f"NAS {nas.address}, CoA port {nas.coa_port}; {open_now} open session(s) in radacct. "
                              "FreeRADIUS reads its clients at start: restart it after adding a NAS.")


@hookimpl
def enforcer_setup_script(router, context):
    """RADIUS client, CoA listener and PPP/hotspot use of RADIUS, for a MikroTik NAS."""
    if router.kind != KIND:
        return None
    from plugins.radius import script, settings

    return script.render(router, settings.nas_of(router), settings.policy(), context,
                         (router.options or {}).get("radius_address"))


@hookimpl
def usage_collect(since):
    """Accounting FreeRADIUS logged since the last collection, as usage per service per day."""
    from plugins.radius import usage

    return usage.collect_samples()
