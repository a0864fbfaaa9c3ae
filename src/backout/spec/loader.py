"""Load a plan file: YAML with positions kept, typed validation, precise errors.

Every problem becomes an :class:`~backout.errors.Issue` with file, line, column, field,
message and hint; the loader collects all of them and raises one :class:`PlanError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from backout.errors import Issue, PlanError
from backout.plugins import Registry
from backout.spec.kinds import Kinds
from backout.spec.models import (
    BaselineSource,
    DeployStep,
    FaultSpec,
    Plan,
    Signal,
    Step,
    Trigger,
    VerifyCheck,
)
from backout.spec.notify_models import Notify, NotifyChannel
from backout.spec.source_map import SourceMap
from backout.spec.yamlfile import (
    dotted,
    error_message,
    model_fields_at,
    read_yaml,
    to_plain,
    type_hint,
    unknown_key_hint,
)

INVALID_KIND = "<invalid>"  # stands in for a kind the loader already reported
# section -> (model of an item, label used in messages)
KINDED_SECTIONS: dict[str, tuple[type[BaseModel], str]] = {
    "steps": (Step, "action"),
    "verify": (VerifyCheck, "check"),
    "baseline": (BaselineSource, "source"),
    "telemetry": (Signal, "telemetry source"),
    "triggers": (Trigger, "trigger"),
    "deploy_steps": (DeployStep, "action"),
    "rehearsal_break": (DeployStep, "action"),
    "faults": (FaultSpec, "fault"),
    "notify_channels": (NotifyChannel, "channel"),
}
MAPPING_SECTIONS = frozenset({"baseline", "telemetry", "notify_channels"})


@dataclass(frozen=True)
class LoadedPlan:
    """A validated plan with where it came from."""

    plan: Plan
    path: Path  # resolved: what a run records, so a resume finds it from anywhere
    source: SourceMap
    raw: dict[str, Any]
    kinds: Kinds = field(repr=False, compare=False)  # what it was validated against
    given: str = ""  # the path as the user wrote it: what messages print

    @property
    def shown(self) -> str:
        """The plan file as messages name it: as given (relative stays relative)."""
        return self.given or str(self.path)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def version(self) -> str:
        """Hash of the normalized plan content: an edited plan has a new version."""
        text = json.dumps(self.plan.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def issue(
        self, path: tuple[str | int, ...], message: str, hint: str = "", severity: str = "error"
    ) -> Issue:
        line, col = self.source.where(path)
        field = dotted(path)
        return Issue(self.shown, line, col, field, message, hint, severity)


Path_ = tuple[str | int, ...]


def places(plain: dict[str, Any]) -> list[tuple[Path_, str]]:
    """Where kinded entries live: (path of the container, section name)."""
    found: list[tuple[Path_, str]] = [
        ((section,), section) for section in KINDED_SECTIONS if section in plain
    ]
    deploy = plain.get("deploy")
    stages = deploy.get("stages") if isinstance(deploy, dict) else None
    for index, stage in enumerate(stages if isinstance(stages, list) else []):
        if isinstance(stage, dict) and "steps" in stage:
            found.append((("deploy", "stages", index, "steps"), "deploy_steps"))
    rehearsal = plain.get("rehearsal")
    if isinstance(rehearsal, dict):
        if "break" in rehearsal:
            found.append((("rehearsal", "break"), "rehearsal_break"))
        if "faults" in rehearsal:
            found.append((("rehearsal", "faults"), "faults"))
    notify = plain.get("notify")
    if isinstance(notify, dict) and "channels" in notify:
        found.append((("notify", "channels"), "notify_channels"))
    return found


def _get(plain: Any, path: Path_) -> Any:
    node = plain
    for part in path:
        node = node[part]
    return node


def _set(plain: Any, path: Path_, value: Any) -> None:
    _get(plain, path[:-1])[path[-1]] = value


def load_plan(path: str | Path, kinds: Kinds) -> LoadedPlan:
    """Read, parse and validate one plan file against ``kinds``; raise :class:`PlanError`
    with every issue. Callers above the spec layer use :func:`backout.plans.load_plan`,
    which supplies the installed kinds."""
    file, given = Path(path), os.fspath(path)
    root = read_yaml(path)
    source = SourceMap(root)
    issues: list[Issue] = []

    def add(where: tuple[str | int, ...], message: str, hint: str = "") -> None:
        line, col = source.where(where)
        issues.append(Issue(given, line, col, dotted(where), message, hint))

    if not isinstance(root, dict):
        add((), "a plan must be a mapping of keys (plan:, steps: …)", "see `backout init`")
        raise PlanError(issues)
    plain = to_plain(root)
    for where, section in places(plain):
        split = _split_section(_get(plain, where), where, section, kinds.of(section), add)
        _set(plain, where, split)
    _validate_options(plain, kinds, add)
    plan = None
    try:
        plan = Plan.model_validate(plain)
    except ValidationError as exc:
        for error in exc.errors():
            _report(error, plain, kinds, add)
    if issues or plan is None:
        raise PlanError(sorted(issues, key=lambda issue: (issue.line, issue.col)))
    return LoadedPlan(
        plan=plan, path=file.resolve(), source=source, raw=plain, kinds=kinds, given=given
    )


def _split_section(
    value: Any, where: Path_, section: str, registry: Registry[Any], add: Any
) -> Any:
    """Turn ``{name: x, run: [...]}`` into ``{name: x, kind: run, options: [...]}``."""
    model, label = KINDED_SECTIONS[section]
    common = set(model.model_fields) - {"kind", "options"}
    if section in MAPPING_SECTIONS:
        if not isinstance(value, dict):
            return value
        return {
            key: _split_item(item, (*where, key), registry, common, label, add)
            for key, item in value.items()
        }
    if not isinstance(value, list):
        return value
    return [
        _split_item(item, (*where, i), registry, common, label, add) for i, item in enumerate(value)
    ]


def _split_item(
    item: Any,
    where: tuple[str | int, ...],
    registry: Registry[Any],
    common: set[str],
    label: str,
    add: Any,
) -> Any:
    if not isinstance(item, dict):
        return item
    found = [key for key in item if key in registry]
    if len(found) > 1:
        add(
            (*where, found[1]),
            f"more than one {label}: {', '.join(found)}",
            f"split it into separate entries, one {label} each",
        )
        return _without(item, found, common)
    if not found:
        unknown = [key for key in item if key not in common]
        hint = f"expected one of: {', '.join(registry.names())}"
        if unknown:
            import difflib  # only for a plan with an unknown kind

            guess = difflib.get_close_matches(unknown[0], registry.names(), n=1)
            add(
                (*where, unknown[0]),
                f"unknown {label} {unknown[0]!r}",
                f"did you mean {guess[0]!r}?" if guess else hint,
            )
        else:
            add(where, f"no {label} given", hint)
        return _without(item, unknown[:1], common)
    rest = {key: value for key, value in item.items() if key != found[0]}
    return {**rest, "kind": found[0], "options": item[found[0]]}


def _without(item: dict[str, Any], reported: list[str], common: set[str]) -> dict[str, Any]:
    """Keep validating the rest of an entry whose kind was already reported."""
    rest = {key: value for key, value in item.items() if key not in reported}
    return {**rest, "kind": INVALID_KIND, "options": None}


def _report(error: Any, plain: dict[str, Any], kinds: Kinds, add: Any) -> None:
    loc = _yaml_path(tuple(error["loc"]), plain)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], plain, kinds)
        add(loc, f"unknown key {loc[-1]!r}", unknown_key_hint(str(loc[-1]), allowed))
    elif error["type"] == "missing":
        add(loc, "is required", _missing_hint(loc))
    else:
        add(loc, error_message(error), type_hint(error))


def _yaml_path(loc: tuple[Any, ...], plain: dict[str, Any]) -> tuple[str | int, ...]:
    """Pydantic locations point at ``options``/``kind``; YAML has the kind key instead."""
    out: list[str | int] = []
    node: Any = plain
    for part in loc:
        if part in ("options", "kind") and isinstance(node, dict) and "kind" in node:
            out.append(node["kind"])
            node = node.get("options")
            continue
        out.append(part)
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (
                node[part]
                if isinstance(node, list) and isinstance(part, int) and part < len(node)
                else None
            )
        )
    return tuple(out)


def _allowed_keys(parent: Path_, plain: dict[str, Any], kinds: Kinds) -> list[str]:
    for where, section in places(plain):
        if parent[:-1] == where:
            model, _ = KINDED_SECTIONS[section]
            names = [name for name in model.model_fields if name not in ("kind", "options")]
            return names + kinds.of(section).names()
    return model_fields_at(Plan, parent)


def _missing_hint(loc: tuple[str | int, ...]) -> str:
    hints = {
        "plan": "name the plan, e.g. `plan: checkout`",
        "steps": "add at least one step under `steps:`",
        "name": "give every entry a `name:` that reads like a runbook line",
    }
    return hints.get(str(loc[-1]) if loc else "", "")


def _kinded_items(plain: dict[str, Any]) -> list[tuple[Path_, str, dict[str, Any]]]:
    items: list[tuple[Path_, str, dict[str, Any]]] = []
    for where, section in places(plain):
        value = _get(plain, where)
        pairs = (
            list(value.items())
            if isinstance(value, dict)
            else (list(enumerate(value)) if isinstance(value, list) else [])
        )
        items += [
            ((*where, key), section, item)
            for key, item in pairs
            if isinstance(item, dict) and item.get("kind") not in (None, INVALID_KIND)
        ]
    return items


def _check_options(
    model: type[BaseModel], options: Any, where: Path_, add: Any, templated: bool = False
) -> None:
    """Validate a kind's options. ``templated``: values may be templates rendered later
    (a channel's ``{{ secrets.x }}``), so a value holding one is not judged now."""
    try:
        model.model_validate(options)
    except ValidationError as exc:
        for error in exc.errors():
            if templated and isinstance(error.get("input"), str) and "{{" in error["input"]:
                continue
            at = (*where, *error["loc"])
            if error["type"] == "extra_forbidden":
                allowed = [field.alias or name for name, field in model.model_fields.items()]
                add(at, f"unknown key {at[-1]!r}", unknown_key_hint(str(at[-1]), allowed))
            else:
                add(at, error_message(error), type_hint(error))


def _validate_options(plain: dict[str, Any], kinds: Kinds, add: Any) -> None:
    for where, section, item in _kinded_items(plain):
        registry = kinds.of(section)
        if section == "notify_channels" and not getattr(registry.get(item["kind"]), "notices", 0):
            notices = [
                name for name in registry.names() if getattr(registry.get(name), "notices", 0)
            ]
            add(
                (*where, item["kind"]),
                f"channel {item['kind']!r} takes change records, not notifications",
                f"notification channels: {', '.join(notices)}",
            )
            continue
        _check_options(
            registry.get(item["kind"]).Options,
            item["options"],
            (*where, item["kind"]),
            add,
            templated=section == "notify_channels",
        )
        undo = item.get("undo")
        if section in ("deploy_steps", "rehearsal_break") and isinstance(undo, dict):
            _check_undo(undo, (*where, "undo"), registry, add)


def _check_undo(undo: dict[str, Any], where: Path_, registry: Registry[Any], add: Any) -> None:
    """``undo:`` is one action: ``{run: [...]}``."""
    if len(undo) != 1 or next(iter(undo)) not in registry:
        add(
            where,
            "undo: must be exactly one action, e.g. {run: [./bin/undo]}",
            f"actions: {', '.join(registry.names())}",
        )
        return
    kind, options = next(iter(undo.items()))
    _check_options(registry.get(kind).Options, options, (*where, kind), add)


def load_notify_defaults(raw: Any, file: str, kinds: Kinds) -> Notify:
    """The organisation-wide ``[notify]`` of a configuration file, validated as a plan's
    ``notify:`` section is (channel kinds and options included); problems name the file
    and the key (a TOML file keeps no line numbers)."""
    issues: list[Issue] = []

    def add(where: tuple[str | int, ...], message: str, hint: str = "") -> None:
        issues.append(Issue(file, 0, 0, dotted(where), message, hint))

    plain: dict[str, Any] = {"notify": raw}
    if not isinstance(raw, dict):
        add(("notify",), "[notify] must be a table", "see docs/configuration.md")
        raise PlanError(issues)
    for where, section in places(plain):
        _set(
            plain, where, _split_section(_get(plain, where), where, section, kinds.of(section), add)
        )
    _validate_options(plain, kinds, add)
    notify = None
    try:
        notify = Notify.model_validate(plain["notify"])
    except ValidationError as exc:
        for error in exc.errors():
            add(("notify", *error["loc"]), error_message(error), type_hint(error))
    if issues or notify is None:
        raise PlanError(issues)
    return notify
