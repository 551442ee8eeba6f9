"""deploy/docker-compose.yml, run as `docker compose --profile monitoring up` would run
it (compose_run.py: network namespaces instead of containers, this machine's binaries
instead of the images), then used as its opening comment says: /start on one
coordinator, /progress through the other, a commit, and the data checked on the
destination cluster. Also: every healthcheck turns healthy (including
`c2c-grpc-health`, the image's gRPC health script), Prometheus (Debian's, with
deploy/prometheus/) scrapes every c2c process by its service name, and every service
stops by itself on its `stop_signal` within its `stop_grace_period`.

Not covered here: the image build (Dockerfile), Grafana and Jaeger (no packages on this
machine), published ports, and the image's user.
"""

import os
import pathlib
import shutil

import grpc
import pymongo
import pytest

from compose_run import Project
from conftest import BINARY, C2C
from migration_flow import (assert_same_data, load_source, post_ok, progress, rest,
                            wait_can_commit, wait_committed, wait_for)
from test_grpc import Migration

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
DOCUMENTS = 2000


def needs():
    if os.geteuid() != 0:
        pytest.fail("runs the compose services in network namespaces, which needs root: "
                    "./scripts/test.sh runs this test with sudo")
    missing = [tool for tool in ["ip", "etcd", "etcdctl", "prometheus", "curl", "bash"] if not shutil.which(tool)]
    if missing:
        pytest.fail(f"missing {missing}: run ./scripts/test.sh (it installs them)")


def binaries():
    return {
        "c2c": pathlib.Path(C2C).resolve(),
        "c2c-testbed": pathlib.Path(BINARY).resolve(),
        "c2c-grpc-health": ROOT / "deploy" / "docker" / "c2c-grpc-health",
        "etcd": shutil.which("etcd"),
        "etcdctl": shutil.which("etcdctl"),
        "prometheus": shutil.which("prometheus"),
        "bash": shutil.which("bash"),
    }


def test_compose_demo_runs_a_migration_end_to_end():
    needs()
    project = Project(COMPOSE, binaries(), profiles=["monitoring"], environment={})
    # The monitoring profile's images that have no stand-in here.
    for name in ["grafana", "jaeger"]:
        project.services.pop(name)
    healthy = {}
    try:
        healthy = project.up()
        assert set(healthy) >= {"etcd", "cluster0", "cluster1", "coordinator-1", "coordinator-2",
                                "worker-1", "worker-2", "worker-3"}, healthy
        services = project.services
        coordinator = f"{services['coordinator-1'].address}:27182"
        other = f"{services['coordinator-2'].address}:27182"

        # The demo clusters: reachable as the file says (directConnection, since the
        # testbed bound to 0.0.0.0 advertises that address).
        source = pymongo.MongoClient(
            f"mongodb://{services['cluster0'].address}:27017/?directConnection=true",
            serverSelectionTimeoutMS=10000,
        )
        destination = pymongo.MongoClient(
            f"mongodb://{services['cluster1'].address}:27017/?directConnection=true",
            serverSelectionTimeoutMS=10000,
        )
        load_source(source, DOCUMENTS)

        # Every worker registered before /start ("start them all before /start").
        wait_for("three workers in /progress",
                 lambda: len((progress(other) or {}).get("workers") or []) == 3, timeout=30)
        post_ok(coordinator, "/api/v1/start", {"source": "cluster0", "destination": "cluster1"})
        # Writes during the sync arrive through the change stream.
        source["shop"]["orders"].update_many({"n": 0}, {"$set": {"n": 100}})
        source["shop"]["orders"].insert_one({"_id": DOCUMENTS, "n": -1})

        ready = wait_can_commit(other)
        # Every worker took part: the leader reached it at its advertised name and gave
        # it a share (partitions to copy, change-stream shards to apply, or both).
        workers = {w["workerId"]: w for w in ready["workers"]}
        assert set(workers) == {"worker-1", "worker-2", "worker-3"}, workers
        for worker in workers.values():
            took_part = worker["partitionsAssigned"] > 0 or worker["streamShards"]
            assert worker["status"] == "live" and took_part, ready["workers"]
        # The follower forwards: both report the same leader, each its own id.
        leader_view = progress(coordinator)
        assert leader_view["coordinatorID"] == ready["coordinatorID"]
        assert {leader_view["mongosyncID"], ready["mongosyncID"]} == {"coordinator-1", "coordinator-2"}

        post_ok(other, "/api/v1/commit", {})
        assert wait_committed(coordinator)["canWrite"] is True
        assert_same_data(source, destination)

        # Prometheus with deploy/prometheus/prometheus.yml scrapes every c2c process by its
        # service name (its first scrape comes within the 15 s interval).
        prometheus = f"{services['prometheus'].address}:9090"

        def all_targets_up():
            _, reply = rest(prometheus, "/api/v1/targets")
            targets = reply["data"]["activeTargets"]
            return len(targets) == 5 and all(t["health"] == "up" for t in targets) and targets

        targets = wait_for("every scrape target up", all_targets_up, timeout=60)
        assert {t["labels"]["instance"] for t in targets} == {
            "coordinator-1:27182", "coordinator-2:27182",
            "worker-1:27190", "worker-2:27190", "worker-3:27190",
        }
        source.close()
        destination.close()
        # A client watching progress through each coordinator (the follower forwards the
        # stream from the leader) while they stop: the streams must not hold them up.
        channels = [grpc.insecure_channel(address) for address in (coordinator, other)]
        watches = [Migration(channel).stream("WatchProgress") for channel in channels]
        for watch in watches:
            assert next(watch).state == "COMMITTED"
    finally:
        stopped = project.down()
        print(f"healthy after (s): {healthy}\nstopped after (s): {stopped}")
        print(f"logs in {project.scratch}")
    killed = [name for name, seconds in stopped.items() if seconds is None]
    assert not killed, f"did not stop within their stop_grace_period: {killed}\n{project.logs()}"
    # c2c closes its streams when it stops: a process that waits out its server's 5 s
    # shutdown grace kept a connection (and its etcd registration) open.
    slow = {name: seconds for name, seconds in stopped.items()
            if name.startswith(("coordinator", "worker")) and seconds > 3}
    assert not slow, f"c2c processes slow to stop: {slow}\n{project.logs()}"
    project.clean()
