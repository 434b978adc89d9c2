"""What Dagster's Helm chart (1.13.27) makes of deploy/helm's values, where DeepLens depends on
it: a small stand-in for `helm template`, which these tests can't run.

- `values(*files)`: the files merged as `helm -f a -f b` merges them (maps deeply, anything
  else replaced);
- `check_keys(values)`: every key is one the chart's values schema has (for the sections these
  values use, as the chart's schema models define them);
- `instance(values)`: the instance yaml of the chart's configmap-instance.yaml;
- `k8s_run_launcher(values)`: the run launcher config of its `dagsterYaml.runLauncher.k8s`;
- `code_location_pod(values)`: the pod of its deployment-user.yaml, as far as the values set it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

RELEASE = "dagster"  # also the chart's full name, and its service account's name
NAMESPACE = "deeplens"
DAGSTER_HOME = "/opt/dagster/dagster_home"

_ANY = None  # a subtree the chart passes through (Kubernetes objects, free-form config)
_IMAGE = {"repository": _ANY, "tag": _ANY, "pullPolicy": _ANY}
_USER_DEPLOYMENT = {
    **dict.fromkeys(
        [
            "name",
            "dagsterApiGrpcArgs",
            "codeServerArgs",
            "deploymentNamespace",
            "port",
            "replicaCount",
            "env",
            "envConfigMaps",
            "envSecrets",
            "annotations",
            "nodeSelector",
            "affinity",
            "tolerations",
            "podSecurityContext",
            "securityContext",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "labels",
            "volumeMounts",
            "volumes",
            "schedulerName",
            "initContainers",
            "sidecarContainers",
            "deploymentStrategy",
        ],
        _ANY,
    ),
    "image": _IMAGE,
    "includeConfigInLaunchedRuns": {"enabled": _ANY},
}
_K8S_RUN_LAUNCHER = {
    **dict.fromkeys(
        [
            "image",
            "imagePullPolicy",
            "jobNamespace",
            "loadInclusterConfig",
            "kubeconfigFile",
            "envConfigMaps",
            "envSecrets",
            "envVars",
            "volumeMounts",
            "volumes",
            "labels",
            "failPodOnRunFailure",
            "resources",
            "schedulerName",
            "securityContext",
        ],
        _ANY,
    ),
    "runK8sConfig": dict.fromkeys(
        [
            "containerConfig",
            "podSpecConfig",
            "podTemplateSpecMetadata",
            "jobSpecConfig",
            "jobMetadata",
        ],
        _ANY,
    ),
}
_CONFIGURABLE_CLASS = {"module": _ANY, "class": _ANY, "config": _ANY}
_COMPONENT = dict.fromkeys(
    [
        "image",
        "env",
        "envConfigMaps",
        "envSecrets",
        "labels",
        "annotations",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "volumeMounts",
        "volumes",
        "schedulerName",
        "deploymentLabels",
        "enabled",
        "replicaCount",
        "service",
    ],
    _ANY,
)
CHART_KEYS: dict[str, Any] = {
    "global": dict.fromkeys(
        ["postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"],
        _ANY,
    ),
    "generatePostgresqlPasswordSecret": _ANY,
    "postgresql": dict.fromkeys(
        [
            "enabled",
            "image",
            "postgresqlHost",
            "postgresqlUsername",
            "postgresqlPassword",
            "postgresqlDatabase",
            "postgresqlParams",
            "postgresqlScheme",
            "service",
        ],
        _ANY,
    ),
    "dagsterWebserver": _COMPONENT,
    "dagsterDaemon": {
        **_COMPONENT,
        "heartbeatTolerance": _ANY,
        "runCoordinator": {
            "enabled": _ANY,
            "type": _ANY,
            "config": {
                "queuedRunCoordinator": _ANY,
                "customRunCoordinator": _CONFIGURABLE_CLASS,
            },
        },
        "runMonitoring": _ANY,
        "runRetries": {"enabled": _ANY, "maxRetries": _ANY},
        "sensors": dict.fromkeys(["useThreads", "numWorkers", "numSubmitWorkers"], _ANY),
        "schedules": dict.fromkeys(["useThreads", "numWorkers", "numSubmitWorkers"], _ANY),
    },
    "additionalInstanceConfig": _ANY,
    "runLauncher": {
        "type": _ANY,
        "config": {
            "k8sRunLauncher": _K8S_RUN_LAUNCHER,
            "customRunLauncher": _CONFIGURABLE_CLASS,
            "celeryK8sRunLauncher": _ANY,
        },
    },
    "computeLogManager": {"type": _ANY, "config": _ANY},
    "migrate": dict.fromkeys(["enabled", "extraContainers", "initContainers"], _ANY),
    "telemetry": {"enabled": _ANY},
    "dagster-user-deployments": {
        "enabled": _ANY,
        "enableSubchart": _ANY,
        "imagePullSecrets": _ANY,
        "deployments": [_USER_DEPLOYMENT],
    },
}


def values(*files: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for file in files:
        merged = _merge(merged, yaml.safe_load(file.read_text()))
    return merged


def _merge(onto: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(onto)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def check_keys(tree: Any, known: Any = CHART_KEYS, path: str = "") -> list[str]:
    """The paths of keys the chart doesn't know (empty: all known)."""
    if known is _ANY:
        return []
    if isinstance(known, list):
        return [
            p for i, item in enumerate(tree) for p in check_keys(item, known[0], f"{path}[{i}]")
        ]
    unknown: list[str] = []
    for key, value in tree.items():
        where = f"{path}.{key}" if path else key
        if key not in known:
            unknown.append(where)
        else:
            unknown.extend(check_keys(value, known[key], where))
    return unknown


def instance(v: dict[str, Any]) -> dict[str, Any]:
    """The chart's dagster.yaml for these values (the sections and types they use)."""
    pg = v["postgresql"]
    storage_config = {
        "postgres_db": {
            "username": pg["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"],
            "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"],
            "params": pg.get("postgresqlParams", {}),
        }
    }
    daemon = v["dagsterDaemon"]
    assert v["computeLogManager"]["type"] == "NoOpComputeLogManager"
    out: dict[str, Any] = {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        "run_launcher": run_launcher(v),
        "compute_logs": {
            "module": "dagster.core.storage.noop_compute_log_manager",
            "class": "NoOpComputeLogManager",
        },
        "telemetry": {"enabled": v["telemetry"]["enabled"]},
    }
    for name, module, cls in (
        ("schedule_storage", "dagster_postgres.schedule_storage", "PostgresScheduleStorage"),
        ("run_storage", "dagster_postgres.run_storage", "PostgresRunStorage"),
        ("event_log_storage", "dagster_postgres.event_log", "PostgresEventLogStorage"),
    ):
        out[name] = {"module": module, "class": cls, "config": storage_config}
    coordinator = daemon["runCoordinator"]
    if coordinator["enabled"]:
        assert coordinator["type"] == "CustomRunCoordinator"
        out["run_coordinator"] = coordinator["config"]["customRunCoordinator"]
    if daemon["runMonitoring"]["enabled"]:
        raise NotImplementedError("the chart's own run_monitoring (these values use their own)")
    if daemon["runRetries"]["enabled"]:
        out["run_retries"] = {"enabled": True}
        if daemon["runRetries"].get("maxRetries"):
            out["run_retries"]["max_retries"] = daemon["runRetries"]["maxRetries"]
    sensors = daemon["sensors"]
    if sensors["useThreads"]:
        out["sensors"] = {"use_threads": True, "num_workers": sensors["numWorkers"]}
    return {**out, **v.get("additionalInstanceConfig", {})}


def run_launcher(v: dict[str, Any]) -> dict[str, Any]:
    launcher = v["runLauncher"]
    if launcher["type"] == "CustomRunLauncher":
        return dict(launcher["config"]["customRunLauncher"])
    assert launcher["type"] == "K8sRunLauncher"
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": k8s_run_launcher(v)}


def k8s_run_launcher(v: dict[str, Any]) -> dict[str, Any]:
    c = v["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": c["loadInclusterConfig"],
        "job_namespace": c.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": c["imagePullPolicy"],
        "service_account_name": RELEASE,
        "dagster_home": DAGSTER_HOME,
        "instance_config_map": f"{RELEASE}-instance",
        "postgres_password_secret": v["global"]["postgresqlSecretName"],
    }
    optional = {
        "envConfigMaps": ("env_config_maps", lambda x: [m["name"] for m in x]),
        "envSecrets": ("env_secrets", lambda x: [s["name"] for s in x]),
        "envVars": ("env_vars", list),
        "volumeMounts": ("volume_mounts", list),
        "volumes": ("volumes", list),
        "labels": ("labels", dict),
        "resources": ("resources", dict),
        "securityContext": ("security_context", dict),
    }
    for key, (name, convert) in optional.items():
        if c.get(key):
            config[name] = convert(c[key])
    if c.get("runK8sConfig"):
        config["run_k8s_config"] = {
            _snake(key): value for key, value in c["runK8sConfig"].items() if value
        }
    return config


def code_location_pod(v: dict[str, Any]) -> dict[str, Any]:
    """The pod of the first user deployment, as deployment-user.yaml renders what is set."""
    d = v["dagster-user-deployments"]["deployments"][0]
    image = f"{d['image']['repository']}:{d['image']['tag']}"
    container: dict[str, Any] = {
        "name": "dagster-user-deployments",
        "image": image,
        "imagePullPolicy": d["image"]["pullPolicy"],
        "args": ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(d["port"])]
        + d["dagsterApiGrpcArgs"],
        "env": [
            {"name": "DAGSTER_CURRENT_IMAGE", "value": image},
            {
                "name": "DAGSTER_PG_PASSWORD",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": v["global"]["postgresqlSecretName"],
                        "key": "postgresql-password",
                    }
                },
            },
        ],
        "envFrom": [{"configMapRef": m} for m in d.get("envConfigMaps", [])]
        + [{"secretRef": s} for s in d.get("envSecrets", [])],
        "resources": d["resources"],
        "securityContext": d["securityContext"],
        "volumeMounts": d.get("volumeMounts", []),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{RELEASE}-{d['name']}", "labels": d.get("labels", {})},
        "spec": {
            "securityContext": d["podSecurityContext"],
            "containers": [container],
            "volumes": d.get("volumes", []),
        },
    }


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
