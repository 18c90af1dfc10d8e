"""`wispbill serve` answers over real HTTP on loopback with the production server."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_healthz_and_login(db, db_url, tmp_path):
    db.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WISPBILL_")}
    env.update({"WISPBILL_DATABASE_URL": db_url, "WISPBILL_DATA_DIR": str(tmp_path),
                "WISPBILL_SECRET_KEY": "s" * 32})
    server = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    body = json.loads(response.read())
                    server_header = response.headers.get("Server", "")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert body["status"] == "ok"
        assert "wispbill" in server_header  # waitress, identified as wispbill
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/login", timeout=5) as response:
            assert response.status == 200
            assert b'name="csrf_token"' in response.read()
    finally:
        server.terminate()
        server.wait(10)


def test_serve_refuses_to_start_on_an_old_schema(empty_db, db_url, tmp_path):
    empty_db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WISPBILL_")}
    env.update({"WISPBILL_DATABASE_URL": db_url, "WISPBILL_DATA_DIR": str(tmp_path)})
    result = subprocess.run([sys.executable, "-m", "core.cli", "serve", "--port", str(_free_port())],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "run 'wispbill migrate'" in result.stderr
