"""The status page's pure parts: what a service's section resolves to, the visibility
guard on a page made by hand, and the indicator."""

from __future__ import annotations

import pytest

from backout.errors import UsageError
from backout.spec.models import StatusPage
from backout.statuspage import Move, Section, publish
from backout.statuspage.page import Component, Incident, PageState, Update
from backout.statuspage.states import default_component, worse_impact, worst_status
from backout.statuspage.summary import indicator, summary


def test_a_service_without_a_section_is_its_own_component() -> None:
    assert default_component("shop") == "shop"
    assert default_component("shop@production") == "shop (production)"
    assert Section.of("shop@staging", None) == Section("shop@staging", "shop (staging)")
    declared = Section.of("shop", StatusPage(component="Checkout", quiet="5m", internal=True))
    assert (declared.component, declared.quiet_s, declared.internal) == ("Checkout", 300.0, True)


def test_a_section_that_cannot_be_read_is_kept_internal() -> None:
    doc = {"plan": {"status_page": {"component": "X", "colour": "red"}}}
    assert Section.of_plan_doc("shop", doc).internal
    assert not Section.of_plan_doc("shop", {"plan": {}}).internal  # from before the section


def test_states_order_by_how_bad_they_are() -> None:
    assert worst_status(["operational", "major_outage", "degraded_performance"]) == "major_outage"
    assert worst_status([]) == "operational"
    assert worse_impact("minor", "critical", "none") == "critical"
    with pytest.raises(UsageError, match="unknown component status"):
        Move("identified", "down", "x")


def component(key: str, status: str = "operational", internal: bool = False) -> Component:
    return Component(key, key.title(), None, None, internal, status, 1.0, (key,))


def incident(
    number: int, key: str, updates: list[Update], internal: bool = False, status: str = "identified"
) -> Incident:
    return Incident(
        number, key, key, key.title(), f"{key} trouble", status, "major", internal, 1.0, 9.0, None,
        tuple(updates),
    )  # fmt: skip


def update(number: int, message: str, internal: bool = False) -> Update:
    return Update(number, "identified", "partial_outage", message, "alice", float(number), internal)


def test_the_guard_drops_everything_internal_in_one_place() -> None:
    state = PageState(
        components=(component("shop", "partial_outage"), component("ledger", "major_outage", True)),
        incidents=(
            incident(1, "shop", [update(1, "public one"), update(2, "NOTE", internal=True)]),
            incident(2, "ledger", [update(3, "LEDGER")]),
            incident(3, "shop", [update(4, "DRAFT", internal=True)], internal=True),
        ),
        at=10.0,
    )
    page, withheld = publish(state, "Acme")
    assert [p.component.id for p in page.components] == ["shop"]
    assert [i.id for i in page.incidents] == [1]
    [shown] = page.incidents
    assert [u.message for u in shown.updates] == ["public one"]
    assert shown.updates[0].actor == ""  # who posted it is not published
    assert shown.updated_at == 1.0  # the note's time (2.0) and the row's (9.0) are not shown
    assert (withheld.components, withheld.incidents, withheld.updates) == (1, 2, 1)
    assert indicator(page) == "major"  # the ledger's major outage is not the public's
    assert "LEDGER" not in str(summary(page))
