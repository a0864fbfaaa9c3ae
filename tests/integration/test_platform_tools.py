"""The kubectl, helm, argocd and terraform/tofu actions and baseline sources, against
stand-in executables (tests/standins/): no cluster or cloud runs here. Each stand-in
records its argv and replays the tool's documented output from a state file the test
writes; the assertions read both — what the action ran, and the world it left."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backout.actions.argocd import ArgocdAction
from backout.actions.helm import HelmAction
from backout.actions.kubectl import KubectlAction
from backout.actions.terraform import TerraformAction, TofuAction
from backout.cli import cli
from backout.kernel.options import Context
from backout.probes import SOURCES
from backout.redact import Redactor

STANDINS = Path(__file__).resolve().parents[1] / "standins"
SECRET = "tf-s3cret-token"


class World:
    """The stand-ins' state file and argv log, with the stand-ins first on PATH."""

    def __init__(self, folder: Path) -> None:
        self.state_file = folder / "state.json"
        self.log_file = folder / "argv.log"

    def write(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state), encoding="utf-8")

    def read(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def calls(self) -> list[list[str]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def clear(self) -> None:
        self.log_file.unlink(missing_ok=True)

    def verbs(self) -> list[str]:
        return [" ".join(call[:3]) for call in self.calls()]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in [
        ("kubectl", "kubectl"),
        ("helm", "helm"),
        ("argocd", "argocd"),
        ("terraform", "terraform"),
        ("tofu", "terraform"),
    ]:
        (bin_dir / name).symlink_to(STANDINS / target)
    (bin_dir / "python3").symlink_to(sys.executable)  # the stand-ins' interpreter
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    found = World(tmp_path)
    monkeypatch.setenv("STANDIN_STATE", str(found.state_file))
    monkeypatch.setenv("STANDIN_LOG", str(found.log_file))
    return found


def ctx(folder: Path, timeout: float = 30.0) -> Context:
    return Context(folder, timeout, {}, Redactor([SECRET]))


def act(action: Any, options: dict[str, Any], folder: Path) -> Any:
    return action.execute(action.Options.model_validate(options), ctx(folder))


def read_source(kind: str, options: dict[str, Any], folder: Path) -> str:
    source = SOURCES.get(kind)
    return str(source.read(source.Options.model_validate(options), ctx(folder)))


# --- kubectl -------------------------------------------------------------------------------
def deployment(current: int = 3) -> dict[str, Any]:
    sets = {str(r): {"image": f"shop:v{r}", "history": []} for r in range(1, current + 1)}
    return {"name": "shop", "current": current, "sets": sets, "stuck": False}


def test_kubectl_undo_to_the_baseline_revision_then_waits(world: World, tmp_path: Path) -> None:
    world.write(deployment(current=3))
    assert read_source("kubectl", {"resource": "deployment/shop"}, tmp_path) == "3"
    state = world.read()
    state["sets"]["4"] = {"image": "shop:v4-bad", "history": []}
    state["current"] = 4
    world.write(state)

    outcome = act(KubectlAction(), {"resource": "deployment/shop", "to_revision": "3"}, tmp_path)

    assert outcome.ok, outcome
    assert outcome.summary.startswith("deployment/shop rolled back to revision 3 (now revision 5)")
    assert "successfully rolled out" in outcome.summary
    assert outcome.detail == {
        "resource": "deployment/shop",
        "from_revision": 4,
        "to_revision": 3,
        "revision": 5,
    }
    after = world.read()
    assert after["current"] == 5
    assert after["sets"]["5"]["image"] == "shop:v3"
    assert ["kubectl", "rollout", "undo", "deployment/shop", "--to-revision=3"] in world.calls()
    assert world.verbs()[-1] == "kubectl rollout status"


def test_kubectl_undo_run_twice_changes_nothing_the_second_time(
    world: World, tmp_path: Path
) -> None:
    world.write(deployment(current=4))
    options = {"resource": "deployment/shop", "to_revision": 3, "wait": False}
    assert act(KubectlAction(), options, tmp_path).ok
    undos = sum(1 for call in world.calls() if call[1:3] == ["rollout", "undo"])

    again = act(KubectlAction(), options, tmp_path)

    # revision 3 left the history (it is revision 5 now): found in revision-history
    assert again.ok, again
    assert "already runs revision 3's pod template (now revision 5)" in again.summary
    assert world.read()["current"] == 5
    assert sum(1 for call in world.calls() if call[1:3] == ["rollout", "undo"]) == undos + 1


def test_kubectl_reverse_rolls_forward_to_the_revision_it_left(
    world: World, tmp_path: Path
) -> None:
    world.write(deployment(current=4))
    action = KubectlAction()
    options = action.Options.model_validate({"resource": "deployment/shop", "to_revision": 2})
    done = action.execute(options, ctx(tmp_path))
    assert done.ok

    back = action.reverse(options, done.detail, ctx(tmp_path))

    assert back.ok, back
    assert world.read()["sets"][str(world.read()["current"])]["image"] == "shop:v4"


def test_kubectl_unknown_revision_and_a_stuck_rollout_fail_with_kubectls_words(
    world: World, tmp_path: Path
) -> None:
    world.write(deployment(current=3))
    missing = act(KubectlAction(), {"resource": "deployment/shop", "to_revision": 9}, tmp_path)
    assert not missing.ok
    assert "unable to find specified revision 9 in history" in missing.summary

    state = deployment(current=3)
    state["stuck"] = True
    world.write(state)
    stuck = act(KubectlAction(), {"resource": "deployment/shop", "action": "status"}, tmp_path)
    assert not stuck.ok
    assert "rollout not finished" in stuck.summary
    assert "timed out waiting for the condition" in stuck.summary


# --- helm ----------------------------------------------------------------------------------
def release(last_status: str = "deployed") -> dict[str, Any]:
    return {
        "name": "shop",
        "revisions": [
            {"version": 1, "status": "superseded", "chart": "shop-1.3.0", "description": "x"},
            {"version": 2, "status": "superseded", "chart": "shop-1.4.0", "description": "x"},
            {"version": 3, "status": last_status, "chart": "shop-1.5.0", "description": "x"},
        ],
    }


def test_helm_rolls_back_to_the_baseline_revision(world: World, tmp_path: Path) -> None:
    state = release()
    state["revisions"][2]["status"] = "superseded"
    state["revisions"].pop()
    state["revisions"][1]["status"] = "deployed"
    world.write(state)
    assert read_source("helm", {"release": "shop"}, tmp_path) == "2"
    world.write(release())

    outcome = act(HelmAction(), {"release": "shop", "revision": "2"}, tmp_path)

    assert outcome.ok, outcome
    assert outcome.summary == "release shop rolled back to revision 2 (now revision 4, deployed)"
    assert outcome.detail["from_revision"] == 3
    assert world.read()["revisions"][-1]["chart"] == "shop-1.4.0"
    rollback = next(call for call in world.calls() if call[1] == "rollback")
    assert rollback[:4] == ["helm", "rollback", "shop", "2"]
    assert "--wait" in rollback

    again = act(HelmAction(), {"release": "shop", "revision": 2}, tmp_path)
    assert again.ok
    assert "nothing to do" in again.summary
    assert len(world.read()["revisions"]) == 4


def test_helm_refuses_a_pending_release_unless_told_to_recover(
    world: World, tmp_path: Path
) -> None:
    world.write(release(last_status="pending-upgrade"))

    refused = act(HelmAction(), {"release": "shop", "revision": 2}, tmp_path)

    assert not refused.ok
    assert "stuck in pending-upgrade (revision 3)" in refused.summary
    assert "recover: true" in refused.summary
    assert not any(call[1] == "rollback" for call in world.calls())

    recovered = act(HelmAction(), {"release": "shop", "revision": 2, "recover": True}, tmp_path)
    assert recovered.ok, recovered
    assert "recovered from pending-upgrade" in recovered.summary


def test_helm_failed_rollback_says_where_the_release_is(world: World, tmp_path: Path) -> None:
    state = release()
    state["fail_rollback"] = True
    world.write(state)
    outcome = act(HelmAction(), {"release": "shop", "revision": 1}, tmp_path)
    assert not outcome.ok
    assert "context deadline exceeded" in outcome.summary
    assert "the release is failed at revision 4" in outcome.summary


def test_helm_baseline_refuses_a_release_that_is_not_deployed(world: World, tmp_path: Path) -> None:
    world.write(release(last_status="failed"))
    with pytest.raises(Exception, match="is failed \\(revision 3\\), not deployed"):
        read_source("helm", {"release": "shop"}, tmp_path)


# --- argocd --------------------------------------------------------------------------------
GOOD, BAD = "9f2c4e1d0b7a6c5e4d3f2a1b0c9d8e7f6a5b4c3d", "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


def application(automated: dict[str, Any] | None) -> dict[str, Any]:
    policy = {"automated": automated} if automated is not None else {}
    source = {
        "repoURL": "https://git.example.com/shop.git",
        "path": "k8s",
        "targetRevision": "HEAD",
    }
    return {
        "app": {
            "metadata": {"name": "shop", "namespace": "argocd"},
            "spec": {
                "project": "default",
                "source": source,
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
                "syncPolicy": {**policy, "syncOptions": ["CreateNamespace=true"]},
            },
            "status": {
                "sync": {"status": "Synced", "revision": BAD},
                "health": {"status": "Degraded"},
                "history": [
                    {"id": 4, "revision": GOOD, "deployedAt": "2024-05-01T09:00:00Z"},
                    {"id": 5, "revision": BAD, "deployedAt": "2024-05-03T10:00:00Z"},
                ],
            },
        }
    }


AUTOMATED = {"prune": True, "selfHeal": True}


def test_argocd_suspends_rolls_back_and_leaves_auto_sync_suspended(
    world: World, tmp_path: Path
) -> None:
    world.write(application(AUTOMATED))
    assert read_source("argocd", {"app": "shop"}, tmp_path) == BAD
    world.clear()

    outcome = act(ArgocdAction(), {"app": "shop", "revision": GOOD}, tmp_path)

    assert outcome.ok, outcome
    assert world.verbs() == [
        "argocd app get",
        "argocd app set",
        "argocd app rollback",
        "argocd app wait",
    ]
    assert world.calls()[2][:5] == ["argocd", "app", "rollback", "shop", "4"]
    app = world.read()["app"]
    assert app["status"]["history"][-1]["revision"] == GOOD
    assert "automated" not in app["spec"]["syncPolicy"]  # the bad commit is not re-synced
    assert outcome.detail["auto_sync"] == "suspended"
    assert outcome.detail["sync_policy"] == {"automated": AUTOMATED}
    assert "argocd app patch shop --type merge" in outcome.summary


def test_argocd_restores_the_policy_when_the_rollback_fails(world: World, tmp_path: Path) -> None:
    state = application(AUTOMATED)
    state["unhealthy"] = True
    world.write(state)

    outcome = act(ArgocdAction(), {"app": "shop", "revision": GOOD}, tmp_path)

    assert not outcome.ok
    assert "not healthy" in outcome.summary
    assert world.verbs()[-1] == "argocd app patch"
    assert world.read()["app"]["spec"]["syncPolicy"]["automated"] == AUTOMATED
    assert world.read()["app"]["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true"]
    assert outcome.detail["auto_sync"] == "restored"


def test_argocd_always_restores_and_a_failed_restore_names_the_command(
    world: World, tmp_path: Path
) -> None:
    world.write(application(AUTOMATED))
    restored = act(
        ArgocdAction(), {"app": "shop", "revision": GOOD[:8], "restore_sync": "always"}, tmp_path
    )
    assert restored.ok, restored
    assert restored.detail["auto_sync"] == "restored"
    assert world.read()["app"]["spec"]["syncPolicy"]["automated"] == AUTOMATED

    state = application(AUTOMATED)
    state["refuse_patch"] = True
    world.write(state)
    failed = act(
        ArgocdAction(), {"app": "shop", "revision": GOOD, "restore_sync": "always"}, tmp_path
    )
    assert not failed.ok
    assert "could not restore automated sync" in failed.summary
    assert "permission denied" in failed.summary
    assert "run `argocd app patch shop --type merge --patch" in failed.summary
    assert failed.detail["auto_sync"] == "suspended"


def test_argocd_without_auto_sync_and_with_an_unknown_revision(
    world: World, tmp_path: Path
) -> None:
    world.write(application(None))
    plain = act(ArgocdAction(), {"app": "shop", "revision": GOOD}, tmp_path)
    assert plain.ok, plain
    assert "argocd app set" not in world.verbs()
    assert plain.detail["auto_sync"] == "off"

    world.write(application(AUTOMATED))
    unknown = act(ArgocdAction(), {"app": "shop", "revision": "deadbeefcafe"}, tmp_path)
    assert not unknown.ok
    assert "not in the history of app shop" in unknown.summary
    assert "nothing was changed" in unknown.summary
    assert world.read()["app"]["spec"]["syncPolicy"]["automated"] == AUTOMATED


# --- terraform / tofu ----------------------------------------------------------------------
def infrastructure(pending: list[dict[str, Any]]) -> dict[str, Any]:
    return {"serial": 7, "outputs": {"image": "shop:v1"}, "pending": pending}


CHANGES = [
    {"address": "null_resource.config", "actions": ["update"]},
    {"address": "null_resource.canary", "actions": ["delete"]},
    {"address": "null_resource.web", "actions": ["delete", "create"]},
]


@pytest.mark.parametrize(
    ("action", "program"), [(TerraformAction(), "terraform"), (TofuAction(), "tofu")]
)
def test_terraform_applies_exactly_the_reviewed_plan(
    world: World, tmp_path: Path, action: Any, program: str
) -> None:
    (tmp_path / "infra").mkdir()
    world.write(infrastructure(CHANGES))
    assert read_source("terraform", {"dir": "infra", "program": program}, tmp_path) == "7"
    assert read_source("terraform", {"dir": "infra", "output": "image"}, tmp_path) == "shop:v1"

    outcome = act(action, {"dir": "infra", "vars": {"token": SECRET}}, tmp_path)

    assert outcome.ok, outcome
    assert outcome.summary == (
        "applied the reviewed plan: 0 to add, 1 to change, 1 to replace, 1 to destroy"
    )
    assert outcome.detail["changes"] == {
        "update": ["null_resource.config"],
        "replace": ["null_resource.web"],
        "delete": ["null_resource.canary"],
    }
    calls = world.calls()
    assert [call[:2] for call in calls[-4:]] == [
        [program, "init"],
        [program, "plan"],
        [program, "show"],
        [program, "apply"],
    ]
    planfile = next(a.split("=", 1)[1] for a in calls[-3] if a.startswith("-out="))
    assert calls[-1][-1] == planfile
    assert calls[-2][-1] == planfile
    assert not any(SECRET in arg for call in calls for arg in call)  # TF_VAR_, not argv
    state = world.read()
    assert state["vars_seen"] == {"TF_VAR_token": SECRET}
    assert state["serial"] == 8
    assert state["pending"] == []

    again = act(action, {"dir": "infra"}, tmp_path)
    assert again.ok
    assert again.summary.startswith("no changes")
    assert world.read()["applied"] == 1


def test_terraform_refuses_a_plan_that_destroys_too_much(world: World, tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    world.write(infrastructure(CHANGES))
    outcome = act(TerraformAction(), {"dir": "infra", "max_destroy": 1}, tmp_path)
    assert not outcome.ok
    assert "destroys 2 resource(s), more than max_destroy 1" in outcome.summary
    assert "nothing was applied" in outcome.summary
    assert "apply" not in [call[1] for call in world.calls()]
    assert world.read()["pending"] == CHANGES


def test_a_missing_tool_is_named_with_the_option_to_set(tmp_path: Path) -> None:
    outcome = act(
        HelmAction(), {"release": "shop", "revision": 2, "helm": "no-such-helm-here"}, tmp_path
    )
    assert not outcome.ok
    assert outcome.summary == "command not found: no-such-helm-here"


# --- through the engine -----------------------------------------------------------------------
def test_a_kubernetes_plan_snapshots_and_rolls_back_through_the_engine(
    world: World, tmp_path: Path, store_url: str
) -> None:
    world.write(deployment(current=3))
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        """plan: shop-k8s
baseline:
  revision: {kubectl: {resource: deployment/shop, namespace: shop}}
steps:
  - name: roll the deployment back to the recorded revision
    kubectl: {resource: deployment/shop, namespace: shop, to_revision: "{{ baseline.revision }}"}
    timeout: 30s
""",
        encoding="utf-8",
    )
    invoke: Callable[..., Any] = CliRunner().invoke
    snap = invoke(cli, ["--db", store_url, "snapshot", str(plan)], obj={})
    assert snap.exit_code == 0, snap.output
    state = world.read()
    state["sets"]["4"] = {"image": "shop:v4-bad", "history": []}
    state["current"] = 4
    world.write(state)

    result = invoke(cli, ["--db", store_url, "run", str(plan), "--json"], obj={})

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    assert world.read()["sets"][str(world.read()["current"])]["image"] == "shop:v3"
    undo = next(call for call in world.calls() if call[1:3] == ["rollout", "undo"])
    assert undo == [
        "kubectl",
        "rollout",
        "undo",
        "deployment/shop",
        "--to-revision=3",
        "--namespace",
        "shop",
    ]
