"""The service an alert is stored for (``backout.commands.alerts.service_of``): a plan with
environments keys its runs ``service@environment``, so an alert labelled with its
environment reaches that environment's deploy or watch."""

from __future__ import annotations

import pytest

from backout.commands.alerts import service_of
from backout.errors import UsageError
from backout.triggers.alerts import Alert


def alert(**labels: str) -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": "HighErrorRate", **labels},
        startsAt="2026-11-30T21:58:00Z",
    )


def test_the_environment_label_keys_the_service_per_environment() -> None:
    assert service_of(alert(service="shop", environment="staging"), 0) == "shop@staging"


def test_without_an_environment_the_service_is_the_key() -> None:
    assert service_of(alert(service="shop"), 0) == "shop"
    assert service_of(alert(service="shop", environment=""), 0) == "shop"  # as if absent


def test_a_service_that_names_its_environment_is_kept_as_it_is() -> None:
    labelled = alert(service="shop@production", environment="staging")
    assert service_of(labelled, 0) == "shop@production"
    assert service_of(alert(), 0, service="shop@staging", environment="production") == (
        "shop@staging"
    )


def test_the_query_parameters_override_the_labels() -> None:
    labelled = alert(service="shop", environment="staging")
    assert service_of(labelled, 0, environment="production") == "shop@production"
    assert service_of(labelled, 0, service="cart") == "cart@staging"
    assert service_of(labelled, 0, service="cart", environment="qa") == "cart@qa"
    assert service_of(alert(), 0, service="cart", environment="qa") == "cart@qa"


def test_another_label_is_not_an_environment() -> None:
    assert service_of(alert(service="shop", env="staging"), 0) == "shop"


@pytest.mark.parametrize("bad", ["stag ing", "a@b", "-staging", "staging/eu", "x" * 201])
def test_a_malformed_environment_label_is_named(bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        service_of(alert(service="shop", environment=bad), 3)
    assert "alerts.3.labels.environment" in str(caught.value)
    assert caught.value.hint


def test_a_malformed_environment_parameter_is_named() -> None:
    with pytest.raises(UsageError) as caught:
        service_of(alert(service="shop"), 0, environment="no such thing")
    assert str(caught.value).startswith("environment:")


def test_the_key_is_no_longer_than_a_service_name() -> None:
    with pytest.raises(UsageError) as caught:
        service_of(alert(service="s" * 195, environment="staging"), 0)
    assert "200" in str(caught.value)


def test_an_alert_without_a_service_is_still_refused() -> None:
    with pytest.raises(UsageError) as caught:
        service_of(alert(environment="staging"), 1)
    assert "alerts.1.labels.service" in str(caught.value)
