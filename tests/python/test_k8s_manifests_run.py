"""deploy/k8s, run as a cluster would run its pods (k8s_run.py: network namespaces as
pods, this machine's binaries as images): the 3-member etcd StatefulSet with its own
flags, the coordinator Deployment and the worker StatefulSet with their environment
from the kustomize ConfigMap, the example Secret's keys (values pointing at two test
clusters) and the downward API, until every c2c pod passes its readiness probe; then a
migration through the REST API of one coordinator pod and the other, the data checked,
and every pod deleted (SIGTERM) and gone well within its grace period.

Not covered: Debian's etcd is 3.4, older than the /readyz and /livez the etcd probes
ask for (3.5.11), so etcd's readiness is not waited for (c2c's pods' readiness needs a
working etcd anyway); the `c2c` Service's virtual address; the image; users, read-only
root file systems and NetworkPolicies.
"""

import os
import pathlib
import shutil

import pymongo
import pytest
import yaml

from compose_run import dockerfile_entrypoint
from conftest import BINARY, C2C
from k8s_run import Cluster
from migration_flow import assert_same_data, load_source, post_ok, wait_can_commit, wait_committed

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCUMENTS = 2000


def secret_file(directory):
    """secret.example.yaml with its keys kept and its URIs pointing at the test
    clusters (hosts named after the keys)."""
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert set(secret["stringData"]) == {"cluster0", "cluster1"}, secret["stringData"]
    for key in secret["stringData"]:
        secret["stringData"][key] = f"mongodb://{key}:27017/?directConnection=true"
    path = directory / "secret.yaml"
    path.write_text(yaml.safe_dump(secret))
    return path


def test_kubernetes_manifests_run_a_migration(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("runs the pods in network namespaces, which needs root: "
                    "./scripts/test.sh runs this test with sudo")
    if not shutil.which("etcd"):
        pytest.fail("etcd not found: run ./scripts/test.sh (it installs etcd-server)")
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = [K8S / name for name in kustomization["resources"]] + [secret_file(tmp_path)]
    images = {
        "c2c": ({"c2c": str(pathlib.Path(C2C).resolve())}, dockerfile_entrypoint(ROOT / "Dockerfile")),
        "quay.io/coreos/etcd": ({"etcd": shutil.which("etcd")}, []),
    }
    clusters = {
        f"cluster{n}": [str(pathlib.Path(BINARY).resolve()), "--port", "27017", "--bind", "0.0.0.0",
                        "--replSet", f"rs{n}"]
        for n in (0, 1)
    }
    cluster = Cluster(files, K8S / "kustomization.yaml", images, extra_hosts=clusters)
    assert sorted(p.name for p in cluster.pods) == [
        "c2c-coordinator-7d9c-a", "c2c-coordinator-7d9c-b",
        "c2c-etcd-0", "c2c-etcd-1", "c2c-etcd-2",
        "c2c-worker-0", "c2c-worker-1", "c2c-worker-2",
    ]
    # Every Service selects pods, and its target ports are ports they declare.
    for service in cluster.services:
        pods = cluster.selected(service)
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            for pod in pods:
                pod.port_number(port.get("targetPort", port["port"]))
    ready, stopped = {}, {}
    try:
        ready = cluster.up(ready_timeout=90, skip_readiness=("c2c-etcd",))
        first = f"{cluster.pod('c2c-coordinator-7d9c-a').address}:27182"
        second = f"{cluster.pod('c2c-coordinator-7d9c-b').address}:27182"
        source = pymongo.MongoClient(f"mongodb://{cluster.address('cluster0')}:27017/?directConnection=true")
        destination = pymongo.MongoClient(f"mongodb://{cluster.address('cluster1')}:27017/?directConnection=true")
        load_source(source, DOCUMENTS)

        post_ok(first, "/api/v1/start", {"source": "cluster0", "destination": "cluster1"})
        source["shop"]["orders"].update_many({"n": 0}, {"$set": {"n": 100}})

        ready = wait_can_commit(second)
        workers = {w["workerId"]: w for w in ready["workers"]}
        # Worker ids are the pod names; the leader reached each at its pod IP.
        assert set(workers) == {"c2c-worker-0", "c2c-worker-1", "c2c-worker-2"}, workers
        for worker in workers.values():
            assert worker["status"] == "live", worker
            assert worker["address"] == f"{cluster.pod(worker['workerId']).address}:27190", worker

        post_ok(first, "/api/v1/commit", {})
        assert wait_committed(second)["canWrite"] is True
        assert_same_data(source, destination)
        source.close()
        destination.close()
    finally:
        stopped = cluster.down()
        print(f"ready after (s): {ready}\nstopped after (s): {stopped}\nlogs in {cluster.scratch}")
    slow = {name: seconds for name, seconds in stopped.items()
            if name.startswith("c2c-") and not name.startswith("c2c-etcd") and (seconds is None or seconds > 3)}
    assert not slow, f"pods slow to stop after SIGTERM: {slow}\n{cluster.logs()}"
    cluster.clean()
