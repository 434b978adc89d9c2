"""The deployment files hold before any cluster sees them (docs/deploying.md): every manifest of
deploy/k8s and every pod the Dagster chart makes of deploy/helm's values validates against
Kubernetes' own schemas (strict: an unknown field is an error), the chart's instance is a valid
Dagster instance with the local stack's run queue and monitoring, and the pod dagster-k8s would
start for an upload batch (pod-per-run mode) has the image, resources, settings and secrets."""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes_validate
import pytest
import yaml
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._serdes import ConfigurableClassData
from dagster_k8s.job import get_user_defined_k8s_config
from kubernetes.client import ApiClient
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import SecretStr

from deeplens.settings import Settings, env_name
from deeplens_dagster.sensors.uploads import max_runtime
from search_api.routes import health
from tests.deploy import chart

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
WARM = ROOT / "deploy" / "helm" / "dagster-values.yaml"
PODS = ROOT / "deploy" / "helm" / "dagster-values-pods.yaml"
# The oldest Kubernetes the manifests are for, and the newest the validator knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
IMAGE = "registry.example.com/deeplens:0.1.0"
PYTHON = "/opt/deeplens/bin/python"  # the image's virtualenv (Dockerfile)
CONFIG_MAP = "deeplens-config"
SECRETS = "deeplens-secrets"


def objects() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def named(kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def validate(obj: dict[str, Any]) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("obj", objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_manifest_is_a_valid_kubernetes_object(obj: dict[str, Any]) -> None:
    validate(obj)


def test_every_deeplens_container_is_locked_down_and_configured_alike() -> None:
    workloads = [o for o in objects() if o["kind"] in ("Deployment", "Job")]
    assert {o["metadata"]["name"] for o in workloads} == {
        "deeplens-api",
        "deeplens-relay",
        "deeplens-migrate",
    }
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        [container] = spec["containers"]
        assert container["image"] == IMAGE
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert {"/tmp"} <= {m["mountPath"] for m in container["volumeMounts"]}
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}
        assert container["envFrom"] == [
            {"configMapRef": {"name": CONFIG_MAP}},
            {"secretRef": {"name": SECRETS}},
        ]
    assert pod_spec(named("Deployment", "deeplens-relay"))["containers"][0]["args"] == [
        "deeplens",
        "relay",
    ]
    assert pod_spec(named("Job", "deeplens-migrate"))["containers"][0]["args"] == [
        "deeplens",
        "migrate",
    ]


def test_settings_come_from_the_config_map_and_secrets_from_secrets() -> None:
    """Every variable is a setting of deeplens/settings.py (a typo would be ignored silently),
    and none that `Settings` keeps secret is in the ConfigMap."""
    settings = {env_name(name): field for name, field in Settings.model_fields.items()}
    config = named("ConfigMap", CONFIG_MAP)["data"]
    secrets = named("Secret", SECRETS)["stringData"]
    assert set(config) <= set(settings), set(config) - set(settings)
    assert set(secrets) <= set(settings), set(secrets) - set(settings)
    assert not {n for n in config if SecretStr in getattr(settings[n].annotation, "__args__", ())}
    assert config["DEEPLENS_RELAY_IN_API"] == "false"  # deploy/k8s/relay.yaml runs it
    Settings.from_environ({**config, **secrets})  # every value parses


def test_the_api_is_probed_scaled_and_spread() -> None:
    api = named("Deployment", "deeplens-api")
    [container] = pod_spec(api)["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz"} <= {route.path for route in health.router.routes}
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env == {"DEEPLENS_ADMIN_KEY": {"name": "deeplens-admin", "key": "admin-key"}}
    assert set(named("Secret", "deeplens-admin")["stringData"]) == {"admin-key"}
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert named("Service", "deeplens-api")["spec"]["selector"].items() <= labels.items()
    hpa = named("HorizontalPodAutoscaler", "deeplens-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "deeplens-api",
    }
    for name in ("deeplens-api", "deeplens-relay"):
        deployment = named("Deployment", name)
        selector = named("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert deployment["spec"]["replicas"] >= 2  # a PDB of minAvailable 1 leaves one to evict
    policy = named("NetworkPolicy", "deeplens-api")["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= labels.items()


def test_every_dependency_of_the_project_is_pinned_for_the_image() -> None:
    """The image installs deploy/constraints.txt with --no-deps: a dependency of pyproject.toml
    missing there (or at another version) is missing from the image. To fix, run
    `.venv/bin/python scripts/image_constraints.py`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "deploy" / "constraints.txt").read_text().splitlines()
    pinned = {
        canonicalize_name(r.name): r.specifier
        for r in (Requirement(line) for line in lines if line and not line.startswith("#"))
    }
    for dependency in map(Requirement, project["dependencies"]):
        name = canonicalize_name(dependency.name)
        assert name in pinned, f"{name} is not in deploy/constraints.txt"
        assert pinned[name] == dependency.specifier, f"{name}: {pinned[name]} in the image"
    assert all(str(s).startswith("==") for s in pinned.values())


@pytest.mark.parametrize("files", [(WARM,), (WARM, PODS)], ids=["warm", "pods"])
def test_the_chart_values_use_only_keys_the_chart_has(files: tuple[Path, ...]) -> None:
    assert chart.check_keys(chart.values(*files)) == []


@pytest.mark.parametrize("files", [(WARM,), (WARM, PODS)], ids=["warm", "pods"])
def test_the_charts_instance_is_valid_and_queues_runs_as_the_local_stack_does(
    files: tuple[Path, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run queue and run monitoring of the chart's instance are dagster.yaml's, read from
    the same DEEPLENS_MAX_CONCURRENT_RUNS (set by the ConfigMap)."""
    instance = chart.instance(chart.values(*files))
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    for name, value in named("ConfigMap", CONFIG_MAP)["data"].items():
        monkeypatch.setenv(name, value)
    dagster_instance_config(str(tmp_path))
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    for section in ("run_coordinator", "run_monitoring", "sensors"):
        assert instance[section] == local[section], section
    assert instance["run_retries"].get("max_retries", 0) == local["run_retries"]["max_retries"]
    coordinator = ConfigurableClassData(
        instance["run_coordinator"]["module"],
        instance["run_coordinator"]["class"],
        yaml.safe_dump(instance["run_coordinator"]["config"]),
    ).rehydrate(QueuedRunCoordinator)
    assert coordinator.get_run_queue_config().max_concurrent_runs == int(
        named("ConfigMap", CONFIG_MAP)["data"]["DEEPLENS_MAX_CONCURRENT_RUNS"]
    )


def test_warm_mode_runs_on_the_code_locations_pod_sized_for_its_runs() -> None:
    """The DefaultRunLauncher starts every run as a subprocess of the code location's pod: the
    pod is valid, has the settings and the secrets, and room for the runs at once."""
    values = chart.values(WARM)
    assert chart.instance(values)["run_launcher"] == {
        "module": "dagster.core.launcher",
        "class": "DefaultRunLauncher",
        "config": {},
    }
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["replicaCount"] == 1
    assert f"{deployment['image']['repository']}:{deployment['image']['tag']}" == IMAGE
    pod = chart.code_location_pod(values)
    validate(pod)
    [container] = pod["spec"]["containers"]
    assert container["args"][-2:] == ["-m", "deeplens_dagster.definitions"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": CONFIG_MAP}},
        {"secretRef": {"name": SECRETS}},
    ]
    runs = int(named("ConfigMap", CONFIG_MAP)["data"]["DEEPLENS_MAX_CONCURRENT_RUNS"])
    memory_gib = float(container["resources"]["limits"]["memory"].removesuffix("Gi"))
    assert memory_gib >= 0.5 + runs, "a run worker peaks at about 0.85 GiB"
    assert float(container["resources"]["requests"]["cpu"]) >= runs


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def batch_run(tenant_id: str, images: int) -> dg.DagsterRun:
    """A run of an upload batch, with the tags `image_upload_sensor` gives it and the origin
    the code location reports (its image, from the chart's DAGSTER_CURRENT_IMAGE)."""
    tags = {
        "dagster/partition": tenant_id,
        "deeplens/tenant": tenant_id,
        "deeplens/offsets": "deeplens.images.uploaded:0:0-9",
        "deeplens/images": str(images),
        "dagster/max_runtime": max_runtime(images),
    }
    repository = RepositoryPythonOrigin(
        executable_path=PYTHON,
        code_pointer=ModuleCodePointer("deeplens_dagster.definitions", "defs", None),
        container_image=IMAGE,
    )
    return dg.DagsterRun(
        job_name="ingest",
        run_id=str(uuid.uuid4()),
        tags=tags,
        job_code_origin=JobPythonOrigin("ingest", repository),
    )


def test_pod_mode_runs_an_upload_batch_in_a_pod_with_the_runs_resources_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dagster-k8s' own K8sRunLauncher, configured as the chart configures it from the values,
    builds the Job of a batch run; the Job is valid and carries what a run worker needs."""
    values = chart.values(WARM, PODS)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    launcher_config = {
        **chart.k8s_run_launcher(values),
        # Outside a cluster: a kubeconfig that names no reachable server (nothing is sent).
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
    }
    run = batch_run("acme", images=10)
    assert (
        get_user_defined_k8s_config(run.tags).to_dict() == get_user_defined_k8s_config({}).to_dict()
    ), "the sensor sets no per-run Kubernetes config"
    created: list[tuple[str, Any]] = []
    launcher_ref = {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher_config}
    with dg.instance_for_test(overrides={"run_launcher": launcher_ref}) as instance:
        launcher = instance.run_launcher
        monkeypatch.setattr(
            launcher._api_client.batch_api,
            "create_namespaced_job",
            lambda body, namespace, **_: created.append((namespace, body)),
        )
        instance.add_run(run)
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    [(namespace, body)] = created
    job = ApiClient().sanitize_for_serialization(body)
    validate(job)

    assert namespace == chart.NAMESPACE
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    spec = job["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    [container] = spec["containers"]
    assert container["image"] == IMAGE
    # The code location's interpreter (the image's virtualenv) runs the run worker.
    assert container["args"][:5] == [PYTHON, "-m", "dagster", "api", "execute_run"]
    assert f"python -m venv {Path(PYTHON).parents[1]}\n" in (ROOT / "Dockerfile").read_text()
    run_launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert container["resources"] == run_launcher["resources"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"/tmp", chart.DAGSTER_HOME} <= {m["mountPath"] for m in container["volumeMounts"]}
    # The DEEPLENS_* settings and secrets of deploy/k8s, and Dagster's own database password.
    assert {"configMapRef": {"name": CONFIG_MAP}} in container["envFrom"]
    assert {"secretRef": {"name": SECRETS}} in container["envFrom"]
    named("ConfigMap", CONFIG_MAP)
    named("Secret", SECRETS)
    env = {e["name"]: e for e in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": values["global"]["postgresqlSecretName"],
        "key": "postgresql-password",
    }
    assert env["DAGSTER_HOME"]["value"] == chart.DAGSTER_HOME
