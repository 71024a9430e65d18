"""deploy/kubernetes/: validated offline against the Kubernetes API schemas (kubernetes-validate, strict: an unknown
or misspelt field fails) of the oldest and newest versions we support, then checked for what the deployment
promises: probes, sizing, draining, non-root on a read-only root filesystem, no secret in a manifest."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # the manifests use nothing newer than 1.30 (autoscaling/v2, policy/v1)
RESOURCES = ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", RESOURCES)
def test_manifest_is_valid_for_kubernetes(name: str, version: str) -> None:
    kubernetes_validate.validate(_load(name), version, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    deployment = _load("deployment.yaml")
    broken = copy.deepcopy(deployment)
    _container(broken)["readinesProbe"] = _container(broken).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _load("kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(RESOURCES)
    assert sorted(p.name for p in DEPLOY.glob("*.yaml")) == sorted([*RESOURCES, "kustomization.yaml"])


def test_deployment_probes_sizing_and_draining() -> None:
    deployment = _load("deployment.yaml")
    spec, container = deployment["spec"]["template"]["spec"], _container(deployment)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]  # Guaranteed QoS
    env = _env(container)
    assert int(env["RLSHIP_WORKERS"]["value"]) == int(resources["limits"]["cpu"])  # one worker per core
    # SIGKILL only after the drain and the slowest request
    drain, timeout = float(env["RLSHIP_DRAIN_SECONDS"]["value"]), float(env["RLSHIP_TIMEOUT"]["value"])
    assert spec["terminationGracePeriodSeconds"] > drain + timeout
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1
    # every RLSHIP_ variable set here is one the service reads
    sources = "".join(p.read_text() for p in (ROOT / "src" / "rlship" / "serving").glob("*.py"))
    for name in env:
        if name.startswith("RLSHIP_"):
            assert f'"{name}"' in sources, f"{name} is read nowhere in rlship.serving"
    # the same command as the image's
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"CMD {container['args']}".replace("'", '"') in dockerfile


def test_non_root_read_only_root_and_writable_paths() -> None:
    deployment = _load("deployment.yaml")
    spec, container = deployment["spec"]["template"]["spec"], _container(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"USER {spec['securityContext']['runAsUser']}" in dockerfile
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = [m["mountPath"] for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]]]
    # what rlship serve writes: BentoML's home (from the image's ENV), /tmp, the Hub cache under $HOME
    image_env = dict(re.findall(r"\b(HOME|BENTOML_HOME)=(\S+)", dockerfile))
    for path in (image_env["BENTOML_HOME"], "/tmp", f"{image_env['HOME']}/.cache/huggingface"):
        assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts), f"{path} is not writable"


def test_hub_token_comes_from_a_secret_and_no_manifest_holds_one() -> None:
    token = _env(_container(_load("deployment.yaml")))["HF_TOKEN"]
    assert "value" not in token and token["valueFrom"]["secretKeyRef"]["key"] == "token"
    for path in DEPLOY.iterdir():
        text = path.read_text()
        assert not re.search(r"hf_[A-Za-z0-9]{20,}", text), f"{path.name} holds what looks like a Hub token"
        assert "kind: Secret" not in text


def test_service_hpa_and_pdb_select_the_deployment() -> None:
    deployment = _load("deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service, hpa, pdb = _load("service.yaml"), _load("hpa.yaml"), _load("pdb.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == _container(deployment)["ports"][0]["name"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    # the PDB leaves a pod serving during a node drain at the HPA's smallest size
    assert hpa["spec"]["minReplicas"] - pdb["spec"]["maxUnavailable"] >= 1
