"""A real `wispbill serve` process on loopback, for HTTP and browser tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import SECRET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wispbill_env(db_url: str, data_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WISPBILL_")}
    env.update({"WISPBILL_DATABASE_URL": db_url, "WISPBILL_DATA_DIR": str(data_dir), "WISPBILL_SECRET_KEY": SECRET})
    return env


class LiveServer:
    """A running server: ``url`` is its base address, ``health`` the first /healthz answer."""

    def __init__(self, process, url, health, server_header):
        self.process, self.url, self.health, self.server_header = process, url, health, server_header


@pytest.fixture
def live_server(db, db_url, tmp_path):
    db.close()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--port", str(port)],
                               env=wispbill_env(db_url, tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                    server = LiveServer(process, url, json.loads(response.read()), response.headers.get("Server", ""))
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        process.wait(10)


STAFF_PASSWORD = "staff password 1"


def sign_in(client, username: str, password: str = STAFF_PASSWORD):
    """Sign ``client`` in to the console; returns it."""
    from tests.conftest import csrf_token_from

    token = csrf_token_from(client.get("/auth/login"))
    response = client.post("/auth/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def staff_client(app, db):
    """``staff_client("billing")``: a new test client signed in as a new user with that role."""
    from core import users

    made = {}

    def make(role: str):
        if role not in made:
            users.create(f"staff-{role}", STAFF_PASSWORD, role=role)
            made[role] = True
        db.close()
        return sign_in(app.test_client(), f"staff-{role}")
    return make


def form_token(client, path: str) -> str:
    """The CSRF token of the page at ``path``, as ``client`` sees it."""
    from tests.conftest import csrf_token_from

    return csrf_token_from(client.get(path))
