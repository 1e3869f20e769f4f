"""Server settings: the environment, or a TOML config file ($HWLUT_CONFIG, else $HWLUT_HOME/server.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lut_store import Store
from server import Settings, create_app
from server.settings import ConfigError

ENV = ("HWLUT_CONFIG", "HWLUT_ADMIN_TOKEN", "HWLUT_READ_TOKEN", "HWLUT_DATABASE_URL", "HWLUT_MAX_BODY_BYTES")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hwlut home and no hwlut settings in the environment."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HWLUT_HOME", str(tmp_path))
    return tmp_path


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_admin_token_from_server_toml_in_the_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().admin_token is None
    _write(home / "server.toml", 'admin_token = "from-file"\nread_token = "r"\nmax_body_bytes = 4096\n')
    settings = Settings.from_env()
    assert (settings.admin_token, settings.read_token, settings.max_body_bytes) == ("from-file", "r", 4096)
    assert "from-file" not in repr(settings)
    monkeypatch.setenv("HWLUT_ADMIN_TOKEN", "from-env")  # the environment wins
    assert Settings.from_env().admin_token == "from-env"


def test_config_named_by_hwlut_config(home: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    elsewhere = _write(tmp_path_factory.mktemp("etc") / "hwlut.toml", 'admin_token = "named"\n')
    _write(home / "server.toml", 'admin_token = "home"\n')
    monkeypatch.setenv("HWLUT_CONFIG", str(elsewhere))
    assert Settings.from_env().admin_token == "named"
    monkeypatch.setenv("HWLUT_CONFIG", str(elsewhere) + ".missing")
    with pytest.raises(ConfigError, match="no such file"):
        Settings.from_env()


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ('admin_token = "x"\n', 0o644, "chmod 600"),
        ('admin_tokn = "x"\n', 0o600, "unknown setting.*admin_tokn"),
        ("max_body_bytes = 'big'\n", 0o600, "max_body_bytes: expected int"),
        ("max_body_bytes = -1\n", 0o600, "must not be negative"),
        ("admin_token = 3\n", 0o600, "admin_token: expected str"),
        ("admin_token = \n", 0o600, "server.toml"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_key(home: Path, text: str, mode: int, message: str) -> None:
    _write(home / "server.toml", text, mode)
    with pytest.raises(ConfigError, match=message):
        Settings.from_env()


def test_the_server_takes_writes_with_the_file_token(home: Path) -> None:
    _write(home / "server.toml", f'admin_token = "file-admin"\ndatabase_url = "sqlite:///{home / "db.sqlite"}"\n')
    settings = Settings.from_env()
    store = Store(settings.database_url)
    store.upgrade()
    with TestClient(create_app(settings, store=store)) as c:
        assert c.post("/v1/devices", json={"name": "x"}, headers={"Authorization": "Bearer nope"}).status_code == 403
        r = c.post("/v1/devices", json={"name": "x"}, headers={"Authorization": "Bearer file-admin"})
        assert r.status_code == 201, r.text
    store.dispose()
