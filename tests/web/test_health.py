"""/healthz reports the database and schema as JSON."""

from core import migrations
from tests.conftest import csrf_token_from


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["schema_version"] == migrations.latest_version()
    assert body["database"]["backend"] in ("sqlite", "postgresql")


def test_healthz_reports_an_unmigrated_database(empty_db, db_url, pm, tmp_path):
    from core.web import create_app

    empty_db.close()
    app = create_app({"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x" * 32,
                      "PLUGIN_MANAGER": pm})
    body = app.test_client().get("/healthz")
    assert body.status_code == 503
    assert body.get_json()["database"]["schema_version"] == 0
    assert "wispbill migrate" in body.get_json()["database"]["error"]


def test_healthz_reports_an_unreachable_database(pm, tmp_path):
    from core.web import create_app

    app = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "DATA_DIR": str(tmp_path),
                      "SECRET_KEY": "x" * 32, "PLUGIN_MANAGER": pm})
    client = app.test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error" and body["database"]["ok"] is False
    assert body["database"]["error"] == "database unreachable"
    assert "nobody" not in response.get_data(as_text=True)  # the database user stays in the log
    token = csrf_token_from(client.get("/auth/login"))
    page = client.post("/auth/login", data={"username": "a", "password": "b", "csrf_token": token})
    assert page.status_code == 503
    assert "database is not answering" in page.get_data(as_text=True)
