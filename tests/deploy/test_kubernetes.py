"""deploy/k8s, rendered by kustomize and held to the Kubernetes schemas and to the code:
every service's Deployment runs its real console script, listens and is probed where its
settings and its app say, outlasts its own shutdown; the migration Job runs every
migration; autoscalers, disruption budgets, Service and Ingress point at what exists."""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml

from zc_common.settings import MigrationSettings

from tests.deploy.codebase import (
    ROOT,
    SERVICES,
    default_port,
    migration_commands,
    rejection,
    resolve_settings,
    serves,
    setting_names,
    shutdown_seconds,
)

K8S = ROOT / "deploy" / "k8s"
OVERLAY = "overlays/example"
# A recent release the installed kubernetes-validate ships schemas for.
KUBERNETES_VERSION = "1.35.0"

Manifest = dict[str, Any]


def render(folder: str) -> list[Manifest]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed (`make tools` installs it from the distribution)")
    result = subprocess.run(
        [binary, "kustomize", str(K8S / folder)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {folder: render(folder) for folder in ("base", OVERLAY)}


@pytest.fixture(scope="module", params=["base", OVERLAY])
def manifests(request: pytest.FixtureRequest, rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered[request.param]


@pytest.fixture(scope="module")
def overlay(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    """The example overlay with the credentials an operator generated."""
    return with_credentials(rendered[OVERLAY], OPERATOR_CREDENTIALS)


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def deployment(manifests: list[Manifest], service: str) -> Manifest:
    found = [
        m for m in of_kind(manifests, "Deployment").values()
        if m["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == service
    ]
    assert len(found) == 1, f"{len(found)} Deployments for the {service}"
    return found[0]


def container(manifest: Manifest) -> Manifest:
    containers = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def all_containers(manifest: Manifest) -> Iterator[Manifest]:
    spec = manifest["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def pod_templates(manifests: list[Manifest]) -> Iterator[Manifest]:
    return (m for m in manifests if m["kind"] in ("Deployment", "Job"))


def environment(manifests: list[Manifest], pod_container: Manifest) -> dict[str, str | None]:
    """What the container's envFrom gives it, from the rendered ConfigMaps and Secrets."""
    maps, secrets = of_kind(manifests, "ConfigMap"), of_kind(manifests, "Secret")
    values: dict[str, str | None] = {}
    for source in pod_container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(maps[source["configMapRef"]["name"]]["data"])
        else:
            secret = secrets[source["secretRef"]["name"]]
            values.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
            values.update(secret.get("stringData", {}))
    for variable in pod_container.get("env", []):
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference is None:
            values[variable["name"]] = variable.get("value")
        elif reference["name"] in secrets:
            data = secrets[reference["name"]].get("data", {})
            values[variable["name"]] = base64.b64decode(data[reference["key"]]).decode() if reference["key"] in data else None
    return values


def _encoded(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


# Secrets the overlay ships as placeholders, which no service starts with.
ISSUED_SECRETS = ("ZC_GITHUB_CLIENT_SECRET", "ZC_SMTP_PASSWORD")


def with_credentials(manifests: list[Manifest], credentials: dict[str, str]) -> list[Manifest]:
    """The manifests as an operator fills them in: the Secret zerocloud-credentials holding
    ``credentials``, and real values for the secrets GitHub and the mail relay issue."""
    filled = []
    for m in manifests:
        if m["kind"] == "Secret" and m["metadata"]["name"].startswith("zerocloud-credentials"):
            m = {**m, "data": {key: _encoded(value) for key, value in credentials.items()}}
        elif m["kind"] == "Secret" and m["metadata"]["name"].startswith("zerocloud-secrets"):
            issued = {key: _encoded(secrets.token_hex(20)) for key in ISSUED_SECRETS if key in m.get("data", {})}
            m = {**m, "data": {**m["data"], **issued}}
        filled.append(m)
    return filled


OPERATOR_CREDENTIALS = {service: secrets.token_hex(32) for service in ("ingestor", "notifier", "reaper")}


def port_number(pod_container: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in pod_container["ports"] if p.get("name") == port]
    return int(number)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- schemas -------------------------------------------------------------------------


def test_every_object_is_valid_kubernetes(manifests: list[Manifest]) -> None:
    errors = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message} at {list(error.path)}")
    assert not errors, "\n".join(errors)


def test_base_is_namespace_agnostic_and_the_overlay_sets_one(rendered: dict[str, list[Manifest]]) -> None:
    assert not [m for m in rendered["base"] if "namespace" in m["metadata"]]
    (namespace,) = of_kind(rendered[OVERLAY], "Namespace")
    assert {m["metadata"].get("namespace") for m in rendered[OVERLAY] if m["kind"] != "Namespace"} == {namespace}


# --- the services --------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_runs_the_service_console_script(manifests: list[Manifest], service: str) -> None:
    command = container(deployment(manifests, service))["command"]

    assert command[0] == f"zerocloud-{service}"
    assert rejection(command) is None, rejection(command)


@pytest.mark.parametrize("service", SERVICES)
def test_port_and_probes_match_the_settings_and_the_routes(manifests: list[Manifest], service: str) -> None:
    pod = deployment(manifests, service)
    main = container(pod)
    config = {k: v for m in of_kind(manifests, "ConfigMap").values() for k, v in m["data"].items()}
    settings = SERVICES[service].model_construct(http_port=default_port(service))
    assert "ZC_HTTP_PORT" not in config, "one ConfigMap for five services: each keeps its own port"

    port = main["ports"][0]
    assert port["containerPort"] == default_port(service)
    assert [p["containerPort"] for p in main["ports"][1:]] == ([8010] if service == "api" else [])
    probes = {kind: main[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert port_number(main, probe["port"]) == default_port(service)
        assert serves(service, settings, probe["path"]), f"the {service} has no {probe['path']}"


@pytest.mark.parametrize("service", SERVICES)
def test_overlay_settings_load_and_keep_the_port(overlay: list[Manifest], service: str) -> None:
    main = container(deployment(overlay, service))

    settings = resolve_settings(service, environment(overlay, main))

    assert settings.http_port == main["ports"][0]["containerPort"]


def test_every_configured_variable_is_a_setting(manifests: list[Manifest]) -> None:
    names = {f"ZC_{name.upper()}" for name in setting_names()}
    for config in [*of_kind(manifests, "ConfigMap").values(), *of_kind(manifests, "Secret").values()]:
        keys = set(config.get("data", {})) | set(config.get("stringData", {}))
        # A misspelt variable would be ignored without a word (extra="ignore").
        assert {k for k in keys if k.startswith("ZC_")} <= names, keys - names


@pytest.mark.parametrize("service", SERVICES)
def test_prometheus_scrapes_the_service_metrics(manifests: list[Manifest], service: str) -> None:
    pod = deployment(manifests, service)
    annotations = pod["spec"]["template"]["metadata"]["annotations"]
    settings = SERVICES[service].model_construct(http_port=default_port(service))
    # The api's /metrics (every tenant's lease counts) is on its internal listener only.
    metrics_port = int(SERVICES["api"].model_fields["internal_port"].default) if service == "api" else None

    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == (metrics_port or default_port(service))
    assert serves(service, settings, annotations["prometheus.io/path"], internal=service == "api"), (
        f"the {service} has no {annotations['prometheus.io/path']}"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_grace_period_outlasts_the_service_shutdown(manifests: list[Manifest], service: str) -> None:
    pod = deployment(manifests, service)
    grace = pod["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # A preStop hook runs before SIGTERM and counts against the same grace period.
    pre_stop = container(pod).get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    waits = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0

    assert grace > shutdown_seconds() + waits


def test_pods_run_one_image_as_non_root_read_only_with_resources(manifests: list[Manifest]) -> None:
    images = set()
    for pod in pod_templates(manifests):
        spec = pod["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for each in all_containers(pod):
            images.add(each["image"])
            context = each["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(each["resources"]["requests"])
            assert "memory" in each["resources"]["limits"]
            assert {source_kind for source in each["envFrom"] for source_kind in source} == {
                "configMapRef", "secretRef"
            }
    assert len(images) == 1, images


def test_overlay_image_comes_from_its_one_images_entry(overlay: list[Manifest]) -> None:
    kustomization = yaml.safe_load((K8S / OVERLAY / "kustomization.yaml").read_text())
    (entry,) = kustomization["images"]

    expected = f"{entry['newName']}:{entry['newTag']}"
    assert {c["image"] for pod in pod_templates(overlay) for c in all_containers(pod)} == {expected}


def test_every_pod_finds_its_config_map_and_secret(overlay: list[Manifest]) -> None:
    maps, secrets = of_kind(overlay, "ConfigMap"), of_kind(overlay, "Secret")
    for pod in pod_templates(overlay):
        for each in all_containers(pod):
            for source in each["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in maps
                else:
                    assert source["secretRef"]["name"] in secrets


# --- migrations, scaling, routing -------------------------------------------------------


def test_migration_job_runs_every_migration_once(manifests: list[Manifest]) -> None:
    (job,) = of_kind(manifests, "Job").values()
    commands = [tuple(each["command"]) for each in all_containers(job)]

    for command in commands:
        assert rejection(command) is None, rejection(command)
    assert set(commands) == migration_commands() and len(commands) == len(set(commands))
    # Init containers run one after the other, never two migrations at once.
    assert len(job["spec"]["template"]["spec"]["containers"]) == 1
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"].get("parallelism", 1) == 1


def test_overlay_migrations_read_the_services_database(overlay: list[Manifest]) -> None:
    (job,) = of_kind(overlay, "Job").values()
    for each in all_containers(job):
        service = each["command"][0].removeprefix("zerocloud-")
        with pytest.MonkeyPatch.context() as patch:
            # `zerocloud-api migrate` reads only the database: the Job holds no credential.
            patch.setitem(SERVICES, "api", MigrationSettings)
            migrating = resolve_settings(service, environment(overlay, each))
        serving = resolve_settings(service, environment(overlay, container(deployment(overlay, service))))
        assert migrating.database_url == serving.database_url


def test_scheduler_runs_two_replicas(manifests: list[Manifest]) -> None:
    assert deployment(manifests, "scheduler")["spec"]["replicas"] == 2


@pytest.mark.parametrize("service", ["ingestor", "notifier"])
def test_autoscaler_targets_the_service_deployment(manifests: list[Manifest], service: str) -> None:
    pod = deployment(manifests, service)
    scalers = [
        h for h in of_kind(manifests, "HorizontalPodAutoscaler").values()
        if h["spec"]["scaleTargetRef"]["name"] == pod["metadata"]["name"]
    ]

    assert len(scalers) == 1 and scalers[0]["apiVersion"] == "autoscaling/v2"
    assert scalers[0]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert "replicas" not in pod["spec"], "the autoscaler owns the replica count"
    assert "cpu" in container(pod)["resources"]["requests"], "CPU utilisation needs a CPU request"


def test_every_autoscaler_targets_a_deployment(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    for scaler in of_kind(manifests, "HorizontalPodAutoscaler").values():
        assert scaler["spec"]["scaleTargetRef"]["name"] in deployments


@pytest.mark.parametrize("service", ["api", "scheduler"])
def test_disruption_budget_keeps_the_service_up_and_lets_nodes_drain(manifests: list[Manifest], service: str) -> None:
    pod = deployment(manifests, service)
    labels = pod["spec"]["template"]["metadata"]["labels"]
    budgets = [
        b for b in of_kind(manifests, "PodDisruptionBudget").values()
        if matches(b["spec"]["selector"]["matchLabels"], labels)
    ]

    assert len(budgets) == 1
    assert 1 <= budgets[0]["spec"]["minAvailable"] < pod["spec"]["replicas"]


def test_api_service_and_ingress_reach_the_api_pods(manifests: list[Manifest]) -> None:
    api = deployment(manifests, "api")
    services = of_kind(manifests, "Service")
    (ingress,) = of_kind(manifests, "Ingress").values()

    backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert backends
    for backend in backends:
        service = services[backend["name"]]
        assert matches(service["spec"]["selector"], api["spec"]["template"]["metadata"]["labels"])
        (port,) = [p for p in service["spec"]["ports"] if p.get("name") == backend["port"].get("name")]
        assert port_number(container(api), port["targetPort"]) == default_port("api")


def test_other_services_find_the_api_internal_listener_with_their_own_credential(overlay: list[Manifest]) -> None:
    (service,) = [s for s in of_kind(overlay, "Service").values() if s["metadata"]["name"] == "zerocloud-api-internal"]
    api = container(deployment(overlay, "api"))
    api_settings = resolve_settings("api", environment(overlay, api))
    [port] = service["spec"]["ports"]
    assert port_number(api, port["targetPort"]) == api_settings.internal_port
    for name in ("ingestor", "notifier", "reaper"):
        pod = container(deployment(overlay, name))
        settings = resolve_settings(name, environment(overlay, pod))
        assert settings.api_url == f"http://{service['metadata']['name']}:{port['port']}"
        assert settings.service_token == OPERATOR_CREDENTIALS[name] == getattr(api_settings, f"{name}_token")
        others = {value for key, value in OPERATOR_CREDENTIALS.items() if key != name}
        assert not others & set(environment(overlay, pod).values()), f"the {name} holds another's credential"


def test_no_ingress_reaches_the_internal_listener(manifests: list[Manifest]) -> None:
    api = container(deployment(manifests, "api"))
    services = of_kind(manifests, "Service")
    for ingress in of_kind(manifests, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                (port,) = [p for p in services[backend["name"]]["spec"]["ports"] if p["name"] == backend["port"]["name"]]
                assert port_number(api, port["targetPort"]) == default_port("api")


def test_only_the_calling_services_may_reach_the_internal_listener(manifests: list[Manifest]) -> None:
    (policy,) = of_kind(manifests, "NetworkPolicy").values()
    api = deployment(manifests, "api")
    assert matches(policy["spec"]["podSelector"]["matchLabels"], api["spec"]["template"]["metadata"]["labels"])
    rules = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
    assert rules["http"] is None, "the public listener is open"
    [source] = rules["internal"]
    [expression] = source["podSelector"]["matchExpressions"]
    assert (expression["operator"], sorted(expression["values"])) == ("In", ["ingestor", "notifier", "reaper"])


def test_the_shipped_example_credentials_start_nothing(rendered: dict[str, list[Manifest]]) -> None:
    shipped = rendered[OVERLAY]
    for name in ("api", "ingestor", "notifier", "reaper"):
        with pytest.raises(AssertionError, match="would not start.*(placeholder|guessable)"):
            resolve_settings(name, environment(shipped, container(deployment(shipped, name))))


def test_overlay_ingress_serves_the_public_url(overlay: list[Manifest]) -> None:
    (ingress,) = of_kind(overlay, "Ingress").values()
    settings = resolve_settings("api", environment(overlay, container(deployment(overlay, "api"))))

    hosts = {rule.get("host") for rule in ingress["spec"]["rules"]}
    assert hosts == {settings.public_url.split("://", 1)[1].split("/")[0]}
    assert settings.public_url.startswith("https://") and ingress["spec"]["tls"]


# --- the upgrade procedure (docs/operator-guide.md) -----------------------------------

# What the guide applies first: everything but the five services' own objects.
BEFORE_THE_SERVICES = "app.kubernetes.io/component notin (api,ingestor,scheduler,notifier,reaper)"


def selected(selector: str, manifest: Manifest) -> bool:
    """kubectl's set-based `key notin (a,b)`: also true where the label is missing."""
    match = re.fullmatch(r"([\w./-]+) notin \(([\w,-]+)\)", selector)
    assert match, f"only `key notin (...)` is understood here: {selector}"
    key, values = match.group(1), match.group(2).split(",")
    return manifest["metadata"].get("labels", {}).get(key) not in values


def test_upgrade_applies_the_migration_job_and_what_it_reads_before_the_services(overlay: list[Manifest]) -> None:
    guide = (ROOT / "docs" / "operator-guide.md").read_text()
    assert f"-l '{BEFORE_THE_SERVICES}'" in guide
    first = {(m["kind"], m["metadata"]["name"]) for m in overlay if selected(BEFORE_THE_SERVICES, m)}

    (job,) = of_kind(overlay, "Job").values()
    spec = job["spec"]["template"]["spec"]
    needs = {("Job", job["metadata"]["name"]), ("ServiceAccount", spec["serviceAccountName"])}
    needs |= {("Namespace", job["metadata"]["namespace"])}
    for each in all_containers(job):
        for source in each["envFrom"]:
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            needs.add((kind, source[kind[0].lower() + kind[1:] + "Ref"]["name"]))
    assert needs <= first, needs - first
    for service in SERVICES:
        assert ("Deployment", deployment(overlay, service)["metadata"]["name"]) not in first
    assert not {kind for kind, _ in first} & {"Deployment", "HorizontalPodAutoscaler", "Service", "Ingress"}
