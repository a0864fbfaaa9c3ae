"""The configuration file: found from the working directory upwards (backout.toml, or
pyproject.toml with [tool.backout]), below options and environment variables in
precedence, every mistake a clear usage error naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from backout.errors import PlanError, UsageError
from backout.plans import notify_defaults
from backout.settings import Settings, find_config


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BACKOUT_DATABASE_URL", "BACKOUT_ACTOR", "BACKOUT_LEASE_TTL", "BACKOUT_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_the_nearest_file_upwards_is_found(tmp_path: Path) -> None:
    (tmp_path / "backout.toml").write_text('actor = "top"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep) == tmp_path / "backout.toml"
    (tmp_path / "a" / "pyproject.toml").write_text('[tool.backout]\nactor = "project"\n')
    assert find_config(deep) == tmp_path / "a" / "pyproject.toml"
    assert Settings.load(cwd=deep).actor == "project"
    (tmp_path / "a" / "b" / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    assert find_config(deep) == tmp_path / "a" / "pyproject.toml"  # no [tool.backout]: skipped


def test_option_beats_environment_beats_file_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "backout.toml").write_text(
        'database_url = "sqlite:////file.db"\nactor = "file"\nlease_ttl = "30s"\n'
    )
    settings = Settings.load(cwd=tmp_path)
    assert (settings.database_url, settings.actor, settings.lease_ttl) == (
        "sqlite:////file.db",
        "file",
        30.0,
    )
    assert settings.sources["actor"] == str(tmp_path / "backout.toml")
    monkeypatch.setenv("BACKOUT_ACTOR", "env")
    monkeypatch.setenv("BACKOUT_LEASE_TTL", "9")
    settings = Settings.load(cwd=tmp_path)
    assert (settings.actor, settings.lease_ttl) == ("env", 9.0)
    assert settings.sources["actor"] == "env BACKOUT_ACTOR"
    settings = Settings.load(actor="option", cwd=tmp_path)
    assert settings.actor == "option"
    assert settings.sources["actor"] == "option"
    assert Settings.load(cwd=tmp_path / "..").sources.get("notify") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n", "colour: Extra inputs are not permitted"),
        ('lease_ttl = "soon"\n', "lease_ttl: 'soon' is not a duration"),
        ("lease_ttl = -1\n", "lease_ttl: Input should be greater than 0"),
        ("actor = [\n", "not valid TOML"),
    ],
)
def test_bad_files_are_usage_errors_naming_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "backout.toml").write_text(text)
    with pytest.raises(UsageError) as caught:
        Settings.load(cwd=tmp_path)
    assert expected in caught.value.message
    assert str(tmp_path / "backout.toml") in caught.value.message


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read configuration file"):
        Settings.load(config=str(tmp_path / "nope.toml"))


def test_notify_defaults_are_validated_like_a_plan_section() -> None:
    good = notify_defaults(
        {
            "channels": {"ops": {"slack": {"webhook_url": "{{ env.SLACK_URL }}"}}},
            "routes": [{"events": ["*"], "to": ["ops"]}],
        },
        "backout.toml",
    )
    assert good.channels["ops"].kind == "slack"
    with pytest.raises(PlanError) as caught:
        notify_defaults({"channels": {"ops": {"slak": {}}}, "routes": []}, "backout.toml")
    assert str(caught.value.issues[0]).startswith("backout.toml: notify.channels.ops.slak: ")
    with pytest.raises(PlanError, match="no channel named 'nope'"):
        notify_defaults({"routes": [{"events": ["*"], "to": ["nope"]}]}, "backout.toml")


def test_backout_config_hides_the_store_password_and_shows_the_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from backout.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKOUT_CONFIG", raising=False)
    monkeypatch.setenv(
        "BACKOUT_DATABASE_URL", "postgresql://deployer:s3cr3t-pw@db.internal/backout"
    )
    monkeypatch.setenv("BACKOUT_HEARTBEAT", "2")
    text = CliRunner().invoke(cli, ["config"])
    shown = CliRunner().invoke(cli, ["config", "--json"])
    assert text.exit_code == 0, text.output
    assert shown.exit_code == 0, shown.output
    assert "s3cr3t-pw" not in text.output + shown.output
    assert "postgresql://deployer:***@db.internal/backout" in text.output
    data = json.loads(shown.output)
    assert data["database_url"] == "postgresql://deployer:***@db.internal/backout"
    assert data["heartbeat"] == 2.0
    assert "heartbeat     2.0  (env BACKOUT_HEARTBEAT)" in text.output
