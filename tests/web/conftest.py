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
