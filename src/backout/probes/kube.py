"""Kubernetes deploy tools, read: a Deployment's rollout revision (``kubectl``), a Helm
release's revision and status (``helm``), an Argo CD application's deployed revision and
sync policy (``argocd``). Each is a baseline source here, and the matching action reads
the same way before and after it acts.

The JSON read is each tool's documented output (``kubectl get -o json``, ``helm status -o
json``, ``argocd app get -o json``); docs/platform-actions.md names the versions checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator

from backout.errors import ActionError
from backout.kernel.options import Context, Options
from backout.probes.base import Source
from backout.probes.toolcli import dig, read_json, run_tool

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DEPLOYMENT_KINDS = ("deployment", "deployments", "deploy")


def _revision_number(value: int | str) -> int | str:
    """A revision number, or a template that renders to one (``{{ baseline.revision }}``):
    a plan is validated before its templates are rendered, a step's options after."""
    if isinstance(value, int) or "{{" in value:
        return value
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"{value!r} is not a revision number (1, 2, ...)")
    return int(value)


RevisionNumber = Annotated[int | str, AfterValidator(_revision_number)]


class KubeOptions(Options):
    namespace: str | None = Field(None, description="Kubernetes namespace (-n).")
    context: str | None = Field(None, description="kubeconfig context to use.")
    kubeconfig: str | None = Field(None, description="kubeconfig file, when not the default.")


# --- kubectl ---------------------------------------------------------------------------------
class KubectlTarget(KubeOptions):
    resource: str = Field(description="What to roll back: `deployment/NAME`.")
    kubectl: str = Field("kubectl", description="The kubectl program (a path, or on PATH).")

    @field_validator("resource")
    @classmethod
    def _kind_slash_name(cls, value: str) -> str:
        if value.count("/") != 1 or not all(value.split("/")):
            raise ValueError(f"{value!r}: write KIND/NAME, e.g. deployment/checkout")
        return value


def kubectl_argv(options: KubectlTarget, *args: str) -> list[str]:
    argv = [options.kubectl, *args]
    if options.namespace:
        argv += ["--namespace", options.namespace]
    if options.context:
        argv += ["--context", options.context]
    if options.kubeconfig:
        argv += ["--kubeconfig", options.kubeconfig]
    return argv


def is_deployment(resource: str) -> bool:
    return resource.split("/")[0].split(".")[0].lower() in DEPLOYMENT_KINDS


def kubectl_json(options: KubectlTarget, ctx: Context, timeout: float, *args: str) -> Any:
    result = run_tool(kubectl_argv(options, *args, "-o", "json"), ctx, timeout=timeout)
    return read_json(result, ctx)


def deployment_revision(data: Any, what: str) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation of a Deployment (or of one of
    its ReplicaSets) as read with ``-o json``."""
    value = dig(data, "metadata", "annotations", REVISION)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ActionError(
            f"{what} has no {REVISION} annotation: has it ever been rolled out?"
        ) from None


class KubectlSource(Source):
    """``kubectl:`` baseline source: a Deployment's current rollout revision."""

    kind = "kubectl"
    Options = KubectlTarget

    def read(self, options: KubectlTarget, ctx: Context) -> str:
        if not is_deployment(options.resource):
            raise ActionError(
                f"{options.resource}: the kubectl source reads a Deployment's revision",
                hint="for a DaemonSet or StatefulSet, read `kubectl rollout history` "
                "with a `command:` source",
            )
        data = kubectl_json(options, ctx, ctx.timeout, "get", options.resource)
        return str(deployment_revision(data, options.resource))

    def describe(self, options: KubectlTarget) -> str:
        return f"the rollout revision of {options.resource}"


# --- helm ------------------------------------------------------------------------------------
class HelmTarget(Options):
    release: str = Field(description="The Helm release name.")
    namespace: str | None = Field(None, description="Kubernetes namespace (-n).")
    kube_context: str | None = Field(None, description="kubeconfig context (--kube-context).")
    kubeconfig: str | None = Field(None, description="kubeconfig file, when not the default.")
    helm: str = Field("helm", description="The helm program (a path, or on PATH).")


@dataclass(frozen=True)
class Release:
    """What ``helm status -o json`` says of a release."""

    revision: int
    status: str
    description: str

    @property
    def pending(self) -> bool:
        return self.status.startswith("pending-")


def helm_argv(options: HelmTarget, *args: str) -> list[str]:
    argv = [options.helm, *args]
    if options.namespace:
        argv += ["--namespace", options.namespace]
    if options.kube_context:
        argv += ["--kube-context", options.kube_context]
    if options.kubeconfig:
        argv += ["--kubeconfig", options.kubeconfig]
    return argv


def helm_status(options: HelmTarget, ctx: Context, timeout: float) -> Release:
    result = run_tool(
        helm_argv(options, "status", options.release, "--output", "json"), ctx, timeout=timeout
    )
    data = read_json(result, ctx)
    revision, status = dig(data, "version"), dig(data, "info", "status")
    if not isinstance(revision, int) or not isinstance(status, str):
        raise ActionError(
            f"`helm status {options.release} -o json` has no version or info.status",
            hint="see docs/platform-actions.md for the helm versions known",
        )
    return Release(revision, status, str(dig(data, "info", "description") or ""))


class HelmSource(Source):
    """``helm:`` baseline source: the revision of a deployed release."""

    kind = "helm"
    Options = HelmTarget

    def read(self, options: HelmTarget, ctx: Context) -> str:
        release = helm_status(options, ctx, ctx.timeout)
        if release.status != "deployed":
            raise ActionError(
                f"release {options.release} is {release.status} (revision {release.revision}), "
                "not deployed: that is not a last known good state"
            )
        return str(release.revision)

    def describe(self, options: HelmTarget) -> str:
        return f"the deployed revision of helm release {options.release}"


# --- argocd ----------------------------------------------------------------------------------
class ArgocdTarget(Options):
    app: str = Field(description="The Argo CD application name.")
    app_namespace: str | None = Field(
        None, description="The application's namespace (--app-namespace), when not Argo CD's."
    )
    args: list[str] = Field(
        default_factory=list,
        description="Extra global arguments for every argocd call, e.g. [--grpc-web, "
        "--server, cd.example.com]; credentials belong in ARGOCD_AUTH_TOKEN.",
    )
    argocd: str = Field("argocd", description="The argocd program (a path, or on PATH).")


@dataclass(frozen=True)
class App:
    """What ``argocd app get -o json`` says of an application."""

    automated: dict[str, Any] | None  # spec.syncPolicy.automated; None: auto-sync is off
    history: list[dict[str, Any]]  # status.history, oldest first: {id, revision, deployedAt}
    sync_revision: str | None  # status.sync.revision

    @property
    def deployed(self) -> str | None:
        """The revision last deployed: the newest history entry's, else the synced one."""
        if self.history:
            return entry_revision(self.history[-1])
        return self.sync_revision


def entry_revision(entry: dict[str, Any]) -> str | None:
    """A history entry's revision (multi-source apps list ``revisions``: the first)."""
    revision = entry.get("revision")
    if isinstance(revision, str) and revision:
        return revision
    revisions = entry.get("revisions")
    return revisions[0] if isinstance(revisions, list) and revisions else None


def argocd_argv(options: ArgocdTarget, *args: str) -> list[str]:
    argv = [options.argocd, *args, *options.args]
    if options.app_namespace:
        argv += ["--app-namespace", options.app_namespace]
    return argv


def argocd_app(options: ArgocdTarget, ctx: Context, timeout: float) -> App:
    result = run_tool(
        argocd_argv(options, "app", "get", options.app, "--output", "json"), ctx, timeout=timeout
    )
    data = read_json(result, ctx)
    automated = dig(data, "spec", "syncPolicy", "automated")
    history = dig(data, "status", "history") or []
    revision = dig(data, "status", "sync", "revision")
    return App(
        automated if isinstance(automated, dict) else None,
        [entry for entry in history if isinstance(entry, dict)],
        revision if isinstance(revision, str) else None,
    )


class ArgocdSource(Source):
    """``argocd:`` baseline source: the revision an application last deployed."""

    kind = "argocd"
    Options = ArgocdTarget

    def read(self, options: ArgocdTarget, ctx: Context) -> str:
        found = argocd_app(options, ctx, ctx.timeout).deployed
        if not found:
            raise ActionError(f"application {options.app} has not deployed any revision yet")
        return found

    def describe(self, options: ArgocdTarget) -> str:
        return f"the revision argo cd application {options.app} last deployed"
