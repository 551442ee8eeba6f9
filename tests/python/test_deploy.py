"""The deploy files, checked by the tools that read them where they are deployed.

`coordinator/src/deploy_tests` parses every c2c command line in them with c2c's own CLI;
these check everything around those lines: the compose file against the Compose
Specification's schema (dclint, which carries it), the Kubernetes manifests against the
API server's OpenAPI schemas in strict mode (an unknown or misspelt field fails, as it
does with `kubectl apply --validate=strict`), and the systemd units with
`systemd-analyze verify`, systemd's own parser. Each validator is first shown a file
with one mistake, so a validator that accepts anything fails the test instead of
passing it.
"""

import os
import pathlib
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from conftest import C2C

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
# Resources only: kustomization.yaml is kustomize's input, not an API object.
K8S_RESOURCES = ["etcd.yaml", "coordinator.yaml", "worker.yaml", "secret.example.yaml"]
# kustomization.yaml asks for 1.24+ (gRPC probes); 1.25 is the oldest schema the
# validator carries.
K8S_VERSIONS = ["1.25.0", kubernetes_validate.utils.latest_version()]
UNITS = {
    "c2c-coordinator@.service": "coord-a",
    "c2c-worker@.service": "worker-a",
}


def dclint():
    path = os.environ.get("C2C_DCLINT") or shutil.which("dclint")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            "dclint not found: run ./scripts/test.sh (it installs dclint under .tools/npm) "
            "or set C2C_DCLINT to its path"
        )
    return path


def run_dclint(path):
    return subprocess.run(
        [dclint(), "--quiet", "--color=false", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_validator_rejects_a_misspelt_key(tmp_path):
    text = COMPOSE.read_text()
    assert "      interval: 2s\n" in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("      interval: 2s\n", "      intervall: 2s\n", 1))
    checked = run_dclint(broken)
    assert checked.returncode != 0, checked.stdout
    assert "invalid-schema" in checked.stdout, checked.stdout


def test_compose_file_follows_the_compose_specification():
    checked = run_dclint(COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def k8s_resources():
    for name in K8S_RESOURCES:
        for resource in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()):
            if resource:
                yield name, resource


def test_kubernetes_validator_rejects_a_misspelt_field():
    _, deployment = next(
        (name, r) for name, r in k8s_resources() if r["kind"] == "Deployment"
    )
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_api_schemas(version):
    kinds = []
    for name, resource in k8s_resources():
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {resource['kind']} {resource['metadata']['name']}: {error}")
        kinds.append(resource["kind"])
    # Every manifest was read: the files hold these objects (and the test must notice
    # if one went missing).
    for kind in ["StatefulSet", "Deployment", "Service", "Secret", "PodDisruptionBudget", "NetworkPolicy"]:
        assert kind in kinds, kinds


def verify_unit(path):
    """`systemd-analyze verify`'s findings on one unit file (empty: none)."""
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze not found: run ./scripts/test.sh (it installs systemd)")
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (checked.returncode, (checked.stdout + checked.stderr).strip())


def instance(template, name, directory, extra=""):
    """The template as systemd loads instance `name`, with ExecStart on the c2c binary
    these tests run (verify checks that the command exists and is executable)."""
    binary = pathlib.Path(C2C).resolve()
    assert binary.is_file(), f"{binary} not built: run cargo test (or ./scripts/test.sh) first"
    text = (DEPLOY / "systemd" / template).read_text()
    assert "ExecStart=/usr/local/bin/c2c " in text
    text = text.replace("ExecStart=/usr/local/bin/c2c ", f"ExecStart={binary} ")
    text = text.replace("[Install]", extra + "[Install]")
    path = directory / template.replace("@.", f"@{name}.")
    path.write_text(text)
    return path


def test_unit_verifier_reports_an_unknown_key(tmp_path):
    path = instance("c2c-worker@.service", "worker-a", tmp_path, extra="RestartSecs=2s\n\n")
    _, findings = verify_unit(path)
    assert "RestartSecs" in findings, findings


@pytest.mark.parametrize("template", sorted(UNITS))
def test_systemd_units_verify_cleanly(tmp_path, template):
    path = instance(template, UNITS[template], tmp_path)
    code, findings = verify_unit(path)
    assert code == 0 and findings == "", findings
