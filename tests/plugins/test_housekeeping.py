"""The housekeeping plugin's daily clean-up: ended sessions and old sign-in failures go, recent ones stay."""

import datetime as dt

from core import login_throttle, portal_accounts, sessions
from core.clock import utcnow
from core.models import LoginFailure, PortalSession, StaffSession
from plugins.housekeeping import purge_ended, register_jobs
from tests.factories import make_customer


def test_the_daily_purge_removes_what_ended_long_ago(db, admin_user):
    long_ago = utcnow() - dt.timedelta(days=40)
    sessions.start(admin_user)
    old_staff = sessions.start(admin_user)
    sessions.revoke(old_staff)
    StaffSession.update(revoked_at=long_ago).where(StaffSession.revoked_at.is_null(False)).execute()
    customer = make_customer()
    portal_accounts.start_session(customer)
    old_portal = portal_accounts.start_session(customer)
    portal_accounts.revoke(old_portal)
    PortalSession.update(revoked_at=long_ago).where(PortalSession.revoked_at.is_null(False)).execute()
    login_throttle.failed("staff", "admin", "127.0.0.1", now=long_ago)
    login_throttle.failed("staff", "admin", "127.0.0.1")

    assert purge_ended() == {"staff_sessions": 1, "portal": 1, "login_failures": 1}
    assert StaffSession.select().count() == 1 and PortalSession.select().count() == 1
    assert LoginFailure.select().count() == 1
    assert purge_ended() == {"staff_sessions": 0, "portal": 0, "login_failures": 0}


def test_the_purge_is_a_daily_job():
    [job] = [j for j in register_jobs() if j.id == "housekeeping.purge_sessions"]
    assert job.func is purge_ended and job.trigger == "cron"
