"""`wispbill serve` answers over real HTTP on loopback with the production server."""

import subprocess
import sys
import urllib.request

from tests.web.conftest import free_port, wispbill_env


def test_serve_answers_healthz_and_login(live_server):
    assert live_server.health["status"] == "ok"
    assert "wispbill" in live_server.server_header  # waitress, identified as wispbill
    with urllib.request.urlopen(f"{live_server.url}/auth/login", timeout=5) as response:
        assert response.status == 200
        assert b'name="csrf_token"' in response.read()


def test_serve_refuses_to_start_on_an_old_schema(empty_db, db_url, tmp_path):
    empty_db.close()
    result = subprocess.run([sys.executable, "-m", "core.cli", "serve", "--port", str(free_port())],
                            env=wispbill_env(db_url, tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "run 'wispbill migrate'" in result.stderr
