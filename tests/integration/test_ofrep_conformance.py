"""``backout flags serve`` against the published OFREP protocol, from the outside.

- schemathesis (Python API; positive data, bounded and derandomized) generates requests
  from OFREP's OpenAPI document — a copy in tests/data/ofrep, nothing fetched at run time —
  and validates every answer of the real app on a real socket against it, with the known
  defects of the document listed in tests/data/ofrep/README.md patched, and nothing else;
- explicit cases cover every value type, a code default, a disabled flag, a split, a
  missing flag, a bad context and a 304;
- the official OpenFeature Python SDK with its OFREP provider evaluates flags over a real
  socket, with the right token and with a wrong one.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode

from backout.commands import flags as service
from backout.flags import FlagChange
from backout.settings import Settings
from tests.callers import caller
from tests.integration.flag_server import flag_server

DATA = Path(__file__).parent.parent / "data" / "ofrep"
PUBLISHED_SHA256 = "e5f560c5194ce5f0c077685a734ecbf5d4baa3311cf862c69b636938e1fdd056"
TOKEN = "conformance-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES_PER_OPERATION = 40
TIMEOUT_S = 30.0

# key -> (variants, on, percentage); served with {"targetingKey": "user-7"} unless said
FLAGS: dict[str, tuple[dict[str, Any], bool, int]] = {
    "discount-banner": ({"on": True, "off": False}, True, 100),  # the document's example key
    "theme-color": ({"on": "blue", "off": "red"}, True, 100),
    "max-items": ({"on": 3, "off": 0}, True, 100),
    "ratio": ({"on": 0.5, "off": 1.5}, True, 100),
    "layout": ({"on": {"columns": 2, "tags": ["a"]}, "off": {}}, True, 100),
    "dark-mode": ({"on": True, "off": False}, False, 100),
    "new-checkout": ({"on": True, "off": False}, True, 25),
}
LEGACY_NULL = "legacy-null"  # stored before null was refused: served as the code default


def load_document() -> dict[str, Any]:
    return yaml.safe_load((DATA / "openapi.yaml").read_text())  # type: ignore[no-any-return]


def patch_known_defects(document: dict[str, Any]) -> dict[str, Any]:
    """The document with defects 1-3 of tests/data/ofrep/README.md patched, nothing else."""
    fixed = copy.deepcopy(document)
    schemas = fixed["components"]["schemas"]
    schemas["floatFlag"]["properties"]["value"]["not"] = {"type": "integer"}  # 1
    schemas["codeDefaultFlag"]["not"] = {"required": ["value"]}  # 2
    schemas["evaluationSuccess"]["allOf"][0]["properties"]["reason"]["enum"].append("DEFAULT")
    return fixed


@dataclass
class Served:
    url: str
    store_url: str


@pytest.fixture
def served(store_url: str) -> Iterator[Served]:
    settings_ = Settings(database_url=store_url, actor="conformance")
    for key, (variants, on, percentage) in FLAGS.items():
        change = FlagChange(enabled=on, variants=variants, percentage=percentage)
        service.set_flag(caller(settings_), key, change)
    # as if written before null was refused: model_construct skips the validation
    legacy = FlagChange.model_construct(enabled=True, variants={"on": None, "off": False})
    service.set_flag(caller(settings_), LEGACY_NULL, legacy)
    with flag_server(store_url, token=TOKEN) as running:
        yield Served(running.url, store_url)


def ofrep_schema() -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(patch_known_defects(load_document()))

    @schema.auth()
    class Bearer:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            return TOKEN

        def set(
            self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext
        ) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


# --- the document ---------------------------------------------------------------------------
def test_the_copy_is_the_published_document() -> None:
    digest = hashlib.sha256((DATA / "openapi.yaml").read_bytes()).hexdigest()
    assert digest == PUBLISHED_SHA256
    assert PUBLISHED_SHA256 in (DATA / "README.md").read_text()


def validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:ofrep", resource)
    return Draft202012Validator(
        {"$ref": f"urn:ofrep#/components/schemas/{name}"}, registry=registry
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"key": "f", "value": True, "variant": "on", "reason": "STATIC"},  # defect 2
        {"key": "f", "value": 3, "variant": "on", "reason": "STATIC", "metadata": {}},  # 1, 2
        {"key": "f", "variant": "on", "reason": "DEFAULT"},  # defect 3
    ],
)
def test_each_patched_defect_is_still_in_the_document(answer: dict[str, Any]) -> None:
    """When a newer document fixes one of them, this fails: drop its patch then."""
    assert not validator(load_document(), "evaluationSuccess").is_valid(answer)
    assert validator(patch_known_defects(load_document()), "evaluationSuccess").is_valid(answer)


# --- schemathesis ---------------------------------------------------------------------------
def test_generated_requests_get_conforming_answers(served: Served) -> None:
    schema = ofrep_schema()
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy(GenerationMode.POSITIVE))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_conform(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=served.url, timeout=TIMEOUT_S)

        answers_conform()
    assert sorted(labels) == [
        "POST /ofrep/v1/evaluate/flags",
        "POST /ofrep/v1/evaluate/flags/{key}",
    ]


def explicit_cases(schema: schemathesis.BaseSchema) -> Iterator[tuple[str, schemathesis.Case]]:
    single = schema["/ofrep/v1/evaluate/flags/{key}"]["POST"]
    bulk = schema["/ofrep/v1/evaluate/flags"]["POST"]
    user = {"context": {"targetingKey": "user-7"}}
    for key in [*FLAGS, LEGACY_NULL]:
        yield key, single.Case(path_parameters={"key": key}, body=user)
    no_key = {"context": {"plan": "free"}}
    yield "split without a key", single.Case(path_parameters={"key": "new-checkout"}, body=no_key)
    yield "missing", single.Case(path_parameters={"key": "no-such-flag"}, body=user)
    yield "slash", single.Case(path_parameters={"key": "a/b"}, body=user)
    bad = {"context": {"targetingKey": 42}}
    yield "bad context", single.Case(path_parameters={"key": "theme-color"}, body=bad)
    yield "bulk", bulk.Case(body=user)
    yield "bulk, bad context", bulk.Case(body=bad)


def test_every_kind_of_answer_conforms(served: Served) -> None:
    schema = ofrep_schema()
    statuses = {}
    for name, case in explicit_cases(schema):
        response = case.call(base_url=served.url, headers=AUTH, timeout=TIMEOUT_S)
        case.validate_response(response, headers=AUTH)
        statuses[name] = (response.status_code, response.json())
    assert {name: status for name, (status, _) in statuses.items()} == {
        **dict.fromkeys([*FLAGS, LEGACY_NULL], 200),
        "split without a key": 200,
        "missing": 404,
        "slash": 404,
        "bad context": 400,
        "bulk": 200,
        "bulk, bad context": 400,
    }
    code_default = statuses[LEGACY_NULL][1]
    assert code_default == {
        "key": LEGACY_NULL,
        "variant": "on",
        "reason": "DEFAULT",
        "metadata": {"version": 1, "percentage": 100},
    }  # no "value": the app uses its code default
    every = statuses["bulk"][1]["flags"]
    assert {flag["key"] for flag in every} == {*FLAGS, LEGACY_NULL}
    assert all("value" not in flag for flag in every if flag["key"] == LEGACY_NULL)


def test_a_matching_etag_answers_304_in_every_spelling(served: Served) -> None:
    body = {"context": {"targetingKey": "user-7"}}
    with httpx.Client(base_url=served.url, headers=AUTH, timeout=TIMEOUT_S) as http:
        first = http.post("/ofrep/v1/evaluate/flags", json=body)
        etag = first.headers["etag"]
        for sent in [etag, f"W/{etag}", f'"other", W/{etag}', f'W/"x",{etag}', "*"]:
            again = http.post(
                "/ofrep/v1/evaluate/flags", json=body, headers={"If-None-Match": sent}
            )
            assert (again.status_code, again.headers["etag"]) == (304, etag), sent
            assert again.content == b""
        for sent in ['"other"', f'W/{etag[:-2]}"', ""]:
            assert (
                http.post(
                    "/ofrep/v1/evaluate/flags", json=body, headers={"If-None-Match": sent}
                ).status_code
                == 200
            ), sent


# --- the OpenFeature SDK ----------------------------------------------------------------------
@pytest.fixture
def openfeature_client(served: Served) -> Iterator[Callable[[str], Any]]:
    """``client(token)``: an OpenFeature client whose OFREP provider sends that token."""
    domains: list[str] = []

    def client(token: str) -> Any:
        domain = f"backout-{len(domains)}"
        domains.append(domain)
        provider = OFREPProvider(
            served.url,
            headers_factory=lambda: {"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_S,
        )
        api.set_provider(provider, domain)
        return api.get_client(domain)

    yield client
    api.clear_providers()


def test_the_openfeature_sdk_evaluates_flags_over_ofrep(
    openfeature_client: Callable[[str], Any],
) -> None:
    client = openfeature_client(TOKEN)
    user = EvaluationContext(targeting_key="user-7", attributes={"plan": "free"})

    boolean = client.get_boolean_details("discount-banner", False, user)
    assert (boolean.value, boolean.variant, boolean.reason) == (True, "on", Reason.STATIC)
    assert boolean.flag_metadata == {"version": 1, "percentage": 100}
    assert client.get_string_value("theme-color", "default", user) == "blue"
    assert client.get_integer_value("max-items", 10, user) == 3
    assert client.get_float_value("ratio", 1.0, user) == 0.5
    assert client.get_object_value("layout", {}, user) == {"columns": 2, "tags": ["a"]}

    disabled = client.get_boolean_details("dark-mode", True, user)
    assert (disabled.value, disabled.variant, disabled.reason) == (False, "off", Reason.DISABLED)
    assert disabled.error_code is None

    split = client.get_boolean_details("new-checkout", False, user)
    assert split.reason == Reason.SPLIT
    assert split.value is (split.variant == "on")

    missing = client.get_boolean_details("no-such-flag", True, user)
    assert (missing.value, missing.error_code, missing.reason) == (
        True,
        ErrorCode.FLAG_NOT_FOUND,
        Reason.ERROR,
    )

    deferred = client.get_string_details(LEGACY_NULL, "from code", user)
    assert (deferred.value, deferred.reason, deferred.error_code) == (
        "from code",
        Reason.DEFAULT,
        None,
    )


def test_the_openfeature_sdk_with_a_wrong_token_gets_its_default(
    openfeature_client: Callable[[str], Any],
) -> None:
    client = openfeature_client("wrong-token-0123456789abcdef")
    refused = client.get_boolean_details("discount-banner", False)
    assert refused.value is False  # the code default
    assert refused.error_code == ErrorCode.GENERAL
    assert refused.error_message == "unauthorized"  # the provider's word for a 401
    assert refused.reason == Reason.ERROR
