"""The plan's JSON Schema, for editor completion (yaml-language-server) and CI checks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from backout.plugins import Registry
from backout.spec.fields import DURATION_SCHEMA
from backout.spec.kinds import Kinds
from backout.spec.loader import KINDED_SECTIONS
from backout.spec.models import Plan

STRING_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
# short forms the option models accept besides the full mapping
SHORTHANDS: dict[tuple[str, str], dict[str, Any]] = {
    ("steps", "run"): STRING_LIST,
    ("steps", "shell"): {"type": "string"},
    ("steps", "wait"): DURATION_SCHEMA,
    ("verify", "http"): {"type": "string"},
    ("verify", "command"): STRING_LIST,
    ("baseline", "http"): {"type": "string"},
    ("baseline", "command"): STRING_LIST,
    ("baseline", "file_hash"): {"type": "string"},
    ("baseline", "readlink"): {"type": "string"},
}


def _options_schema(section: str, kind: str, model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    short = SHORTHANDS.get((section, kind))
    return {"anyOf": [schema, short]} if short else schema


def _kinded(section: str, kinds: Kinds) -> dict[str, Any]:
    model, _ = KINDED_SECTIONS[section]
    registry = kinds.of(section)
    common = model.model_json_schema()
    props = {k: v for k, v in common.get("properties", {}).items() if k not in ("kind", "options")}
    variants = []
    for kind in registry.names():
        variants.append(
            {
                "type": "object",
                "properties": {
                    **props,
                    kind: _options_schema(section, kind, registry.get(kind).Options),
                },
                "required": [kind] + (["name"] if "name" in props else []),
                "additionalProperties": False,
            }
        )
    return {"oneOf": variants}


def _hoist_defs(node: Any, defs: dict[str, Any]) -> None:
    """Move ``$defs`` of nested option models to the root, where their ``#/$defs/…`` refs
    point (an option model with a nested model, like ``wait``, brings its own)."""
    if isinstance(node, dict):
        defs.update(node.pop("$defs", {}))
        for value in node.values():
            _hoist_defs(value, defs)
    elif isinstance(node, list):
        for item in node:
            _hoist_defs(item, defs)


def _array(items: dict[str, Any], description: str, min_items: int = 0) -> dict[str, Any]:
    schema = {"type": "array", "items": items, "description": description}
    return {**schema, "minItems": min_items} if min_items else schema


def _mapping(values: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": values, "description": description}


def _undo_schema(registry: Registry[Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "description": "One action that reverses the step.",
        "properties": {
            kind: _options_schema("steps", kind, registry.get(kind).Options)
            for kind in registry.names()
        },
        "additionalProperties": False,
    }


def plan_schema(kinds: Kinds) -> dict[str, Any]:
    """The schema of a plan that may name ``kinds``."""
    schema = Plan.model_json_schema()
    props = schema["properties"]

    def described(name: str) -> str:
        return str(props[name].get("description", ""))

    props["steps"] = _array(_kinded("steps", kinds), described("steps"), 1)
    props["verify"] = _array(_kinded("verify", kinds), described("verify"))
    props["baseline"] = _mapping(_kinded("baseline", kinds), described("baseline"))
    props["telemetry"] = _mapping(_kinded("telemetry", kinds), described("telemetry"))
    props["triggers"] = _array(_kinded("triggers", kinds), described("triggers"))
    defs = {
        k: v
        for k, v in schema.get("$defs", {}).items()
        if k not in ("Step", "VerifyCheck", "BaselineSource", "Signal", "Trigger", "DeployStep")
        and k != "FaultSpec"
    }
    deploy_step = _kinded("deploy_steps", kinds)
    for variant in deploy_step["oneOf"]:
        variant["properties"]["undo"] = _undo_schema(kinds.of("deploy_steps"))
    defs["Stage"]["properties"]["steps"] = _array(deploy_step, "Forward steps.")
    rehearsal = defs["Rehearsal"]["properties"]
    rehearsal["break"] = _array(deploy_step, str(rehearsal["break"].get("description", "")))
    rehearsal["faults"] = _array(
        _kinded("faults", kinds), str(rehearsal["faults"].get("description", ""))
    )
    schema["$defs"] = defs
    for name in ("steps", "verify", "baseline", "telemetry", "triggers"):
        _hoist_defs(props[name], defs)
    _hoist_defs(defs["Stage"], defs)
    _hoist_defs(defs["Rehearsal"], defs)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "backout plan"
    return schema
