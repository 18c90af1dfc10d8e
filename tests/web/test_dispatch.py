"""A web request's events reach plugins as soon as it commits, once each."""

import threading

from core import events, hookimpl
from core.db import database
from core.models import Event
from core.web.auth import public


class Recorder:
    """A plugin that remembers which events it was handed."""

    def __init__(self, fail=False):
        self.seen = []
        self.fail = fail

    @hookimpl
    def handle_event(self, event):
        self.seen.append((event.id, event.name, threading.current_thread().name))
        if self.fail:
            raise RuntimeError("handler down")


def _emitting_app(app, roll_back=False):
    def emit():
        with database.atomic() as txn:
            events.emit("test.happened", {"n": 1})
            if roll_back:
                txn.rollback()
        return "done"

    app.add_url_rule("/emit", "emit", public(emit))
    return app.test_client()


def test_the_events_of_a_request_are_delivered_before_its_response(app, pm):
    recorder = Recorder()
    pm.register(recorder, "test-recorder")
    client = _emitting_app(app)
    assert client.get("/emit").status_code == 200
    [(event_id, name, thread)] = recorder.seen
    assert name == "test.happened" and thread == "wispbill-events"
    assert Event.get_by_id(event_id).dispatched_at is not None
    assert events.dispatch_pending(pm) == 0  # the dispatch job finds nothing left


def test_a_rolled_back_event_is_never_delivered(app, pm):
    recorder = Recorder()
    pm.register(recorder, "test-recorder")
    assert _emitting_app(app, roll_back=True).get("/emit").status_code == 200
    assert recorder.seen == [] and Event.select().count() == 0


def test_a_failing_handler_leaves_the_event_for_the_dispatch_job(app, pm):
    recorder = Recorder(fail=True)
    pm.register(recorder, "test-recorder")
    assert _emitting_app(app).get("/emit").status_code == 200  # the response does not fail
    [row] = Event.select()
    assert row.dispatched_at is None and row.attempts == 1 and "handler down" in row.last_error
    assert row.next_attempt_at is not None


def test_an_event_claimed_by_one_dispatcher_is_not_delivered_by_another(db, pm):
    recorder = Recorder()
    pm.register(recorder, "test-recorder")
    with database.atomic():
        first = events.emit("test.happened", {})
        second = events.emit("test.happened", {})
    from core.clock import utcnow

    assert events._claim(first.id, utcnow())  # another dispatcher is delivering it
    assert events.dispatch_pending(pm) == 1
    assert [seen[0] for seen in recorder.seen] == [second.id]
    assert events.dispatch_ids([first.id, second.id], pm) == 0
