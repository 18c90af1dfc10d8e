"""`wispbill serve` answers over real HTTP on loopback with the production server."""

import subprocess
import sys
import urllib.error
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


def test_the_portal_port_listens_on_its_own_address(db, db_url, tmp_path):
    """The app on one address, the portal port on another (the appliance: loopback, and the LAN)."""
    db.close()
    port, portal = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--portal-host", "127.0.0.2", "--portal-port", str(portal)],
                               env=wispbill_env(db_url, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        line = process.stdout.readline()
        assert f"(portal on 127.0.0.2:{portal})" in line, line + (process.stdout.read() if process.poll() else "")

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(f"http://127.0.0.2:{portal}/news", timeout=5)
            raise AssertionError("the portal port did not redirect")
        except urllib.error.HTTPError as answer:
            assert answer.code == 302 and answer.headers["Location"] == "/suspended"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        process.terminate()
        process.wait(10)
