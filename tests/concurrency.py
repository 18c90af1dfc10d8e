"""Racing threads in tests: the same work started at the same moment, each thread on its own connection."""

from __future__ import annotations

import threading

from core.db import database


def at_once(workers: int, work) -> list:
    """Run ``work()`` in ``workers`` threads released together; their results, any error re-raised."""
    start = threading.Barrier(workers)
    results, errors = [], []

    def run():
        try:
            database.connect(reuse_if_open=True)  # connected before the start, so that they really race
            start.wait(10)
            results.append(work())
        except Exception as exc:  # re-raised below
            errors.append(exc)
        finally:
            database.close()  # each thread has a connection of its own

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results
