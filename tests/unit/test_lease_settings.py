"""The lease and heartbeat settings: a 5 s lease renewed every second by default, each from
an environment variable or the configuration file, and a heartbeat never slower than a
third of the lease."""

from __future__ import annotations

from pathlib import Path

import pytest

from backout.engine.lease import Heartbeat
from backout.errors import UsageError
from backout.settings import Settings
from backout.store.db import Store
from backout.store.leases import Fence


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BACKOUT_LEASE_TTL", "BACKOUT_HEARTBEAT", "BACKOUT_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_a_5s_lease_and_a_1s_heartbeat(tmp_path: Path) -> None:
    settings = Settings.load(cwd=tmp_path)
    assert (settings.lease_ttl, settings.heartbeat) == (5.0, 1.0)
    assert settings.sources["heartbeat"] == "default"


def test_the_file_and_the_environment_set_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "backout.toml").write_text('lease_ttl = "8s"\nheartbeat = "500ms"\n')
    settings = Settings.load(cwd=tmp_path)
    assert (settings.lease_ttl, settings.heartbeat) == (8.0, 0.5)
    monkeypatch.setenv("BACKOUT_HEARTBEAT", "2")
    settings = Settings.load(cwd=tmp_path)
    assert settings.heartbeat == 2.0
    assert settings.sources["heartbeat"] == "env BACKOUT_HEARTBEAT"


@pytest.mark.parametrize(
    ("text", "says"),
    [('heartbeat = "often"\n', "heartbeat: 'often' is not a duration"), ("heartbeat = 0\n", "")],
)
def test_a_bad_heartbeat_in_the_file_is_a_usage_error(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "backout.toml").write_text(text)
    with pytest.raises(UsageError, match="heartbeat") as caught:
        Settings.load(cwd=tmp_path)
    assert says in caught.value.message


def test_a_bad_heartbeat_in_the_environment_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKOUT_HEARTBEAT", "soon")
    with pytest.raises(UsageError, match="BACKOUT_HEARTBEAT='soon' is not a number of seconds"):
        Settings.load(cwd=tmp_path)


def test_the_heartbeat_beats_at_least_three_times_a_lease(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'backout.db'}")
    fence = Fence("svc", "run-1", "me", 1)
    assert Heartbeat(store, fence, ttl=5.0, every=1.0).every == 1.0
    assert Heartbeat(store, fence, ttl=1.0, every=1.0).every == pytest.approx(1 / 3)
    store.dispose()
