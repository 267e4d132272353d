"""deploy/k8s/institution-enhancement: parsed, complete, and consistent with the consumer and its image."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT

from institution_enhancement.flows.consumer import InstitutionConsumer

MANIFESTS = REPO_ROOT / "deploy" / "k8s" / "institution-enhancement"
SECRET = "institution-enhancement-secrets"
# KAFKA_SASL_MECHANISM as the KEDA kafka scaler spells it.
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


def documents() -> dict[str, dict[str, Any]]:
    """Every object of the manifests by ``Kind/name``."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= document.keys(), path.name
            objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


OBJECTS = documents()
DEPLOYMENT = OBJECTS["Deployment/institution-enhancement"]
CONFIG = OBJECTS["ConfigMap/institution-enhancement"]["data"]
SCALED = OBJECTS["ScaledObject/institution-enhancement"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert [image["name"] for image in kustomization["images"]] == [CONTAINER["image"]]


def test_the_config_map_matches_the_consumer_class() -> None:
    assert CONFIG["KAFKA_GROUP_ID"] == InstitutionConsumer.group_id
    assert CONFIG["KAFKA_TOPICS"].split(",") == list(InstitutionConsumer.topics)
    assert all(isinstance(value, str) for value in CONFIG.values()), "ConfigMap values must be strings"
    assert not {"KAFKA_SASL_PASSWORD", "DATABASE_URL"} & CONFIG.keys(), "secrets stay out of the ConfigMap"


@pytest.mark.parametrize(("probe", "path"), [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")])
def test_probes_hit_the_health_server_on_metrics_port(probe: str, path: str) -> None:
    get = CONTAINER[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
    assert get["path"] == path
    assert port == int(CONFIG["METRICS_PORT"]) == 8000
    assert DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_secrets_come_from_the_secret_never_as_literals() -> None:
    env = {item["name"]: item for item in CONTAINER["env"]}
    for name in ("KAFKA_SASL_USERNAME", "DATABASE_URL"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": name}
    assert "KAFKA_SASL_PASSWORD" not in env, "the password is a mounted file, not an environment variable"
    assert CONTAINER["envFrom"] == [{"configMapRef": {"name": "institution-enhancement"}}]


def test_the_sasl_password_is_read_from_the_mounted_secret_file() -> None:
    env = {item["name"]: item for item in CONTAINER["env"]}
    path = Path(env["KAFKA_SASL_PASSWORD_FILE"]["value"])
    (mount,) = [m for m in CONTAINER["volumeMounts"] if path.is_relative_to(m["mountPath"])]
    assert mount["readOnly"] is True
    (volume,) = [v for v in DEPLOYMENT["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == SECRET
    (item,) = volume["secret"]["items"]
    assert (item["key"], Path(mount["mountPath"]) / item["path"]) == ("KAFKA_SASL_PASSWORD", path)


def test_resources_are_requested_and_limited() -> None:
    resources = CONTAINER["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[kind].keys(), kind
    assert _mebibytes(resources["requests"]["memory"]) <= _mebibytes(resources["limits"]["memory"])


def test_the_pod_runs_as_the_image_user_and_outlives_the_shutdown_grace() -> None:
    dockerfile_user = re.search(r"^USER (\d+)", (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert dockerfile_user is not None
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert POD["securityContext"]["runAsUser"] == int(dockerfile_user.group(1))
    assert CONTAINER["securityContext"]["allowPrivilegeEscalation"] is False
    assert "command" not in CONTAINER, "the image's ENTRYPOINT starts the consumer"
    assert POD["terminationGracePeriodSeconds"] * 1000 > int(CONFIG["SHUTDOWN_GRACE_MS"])


def test_selector_matches_the_pod_template() -> None:
    selector = DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert selector.items() <= DEPLOYMENT["spec"]["template"]["metadata"]["labels"].items()
    assert "replicas" not in DEPLOYMENT["spec"], "KEDA owns the replica count"
    budget = OBJECTS["PodDisruptionBudget/institution-enhancement"]
    assert budget["spec"]["selector"]["matchLabels"] == selector


def test_keda_scales_the_deployment_on_the_consumer_group_lag() -> None:
    spec = SCALED["spec"]
    assert SCALED["apiVersion"].startswith("keda.sh/")
    assert spec["scaleTargetRef"]["name"] == DEPLOYMENT["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["consumerGroup"] == CONFIG["KAFKA_GROUP_ID"]
    assert metadata["topic"] == CONFIG["KAFKA_TOPICS"]
    assert metadata["bootstrapServers"] == CONFIG["KAFKA_BROKERS"]
    assert int(metadata["lagThreshold"]) > 0
    assert metadata["sasl"] == KEDA_SASL[CONFIG["KAFKA_SASL_MECHANISM"]]
    assert (metadata["tls"] == "enable") is CONFIG["KAFKA_SECURITY_PROTOCOL"].endswith("SSL")


def test_the_scaler_authenticates_with_the_consumer_credentials() -> None:
    reference = SCALED["spec"]["triggers"][0]["authenticationRef"]["name"]
    auth = OBJECTS[f"TriggerAuthentication/{reference}"]
    targets = {t["parameter"]: (t["name"], t["key"]) for t in auth["spec"]["secretTargetRef"]}
    assert targets == {
        "username": (SECRET, "KAFKA_SASL_USERNAME"),
        "password": (SECRET, "KAFKA_SASL_PASSWORD"),
    }


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]
