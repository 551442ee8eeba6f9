"""Starts c2c-testbed processes for the pymongo conformance tests (a second,
independent client: pymongo's handshake, OP_MSG framing and monitoring differ from
the Rust driver's)."""

import contextlib
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request

import grpc
import pymongo
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

BINARY = os.environ.get(
    "C2C_TESTBED_BIN",
    os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "c2c-testbed"),
)

C2C = os.environ.get(
    "C2C_BIN",
    os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "c2c"),
)


class Testbed:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [BINARY, "--port", "0", "--idle-noop-ms", "100", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+) \((\S+)\)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"testbed did not start: {line!r}")
        self.host, self.uri = match.group(1), match.group(2)

    def client(self, **kwargs):
        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000, **kwargs)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class C2c:
    """`c2c run` on a free port; ready once the health service answers SERVING. Its
    output goes to a temporary file (`log()`), so a test can show a panic's message."""

    def __init__(self, source, destination):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [C2C, "run", "--cluster0", source.uri, "--cluster1", destination.uri,
             "--port", str(self.port), "--verbosity", "WARN"],
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        self.channel = grpc.insecure_channel(self.address)
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"c2c exited with {self.proc.returncode}: {self.log()}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("c2c did not become SERVING")
            time.sleep(0.1)

    def rest(self, path):
        with urllib.request.urlopen(f"http://{self.address}{path}", timeout=10) as response:
            return response.status, json.load(response)

    def log(self, limit=4000):
        """The last `limit` characters c2c wrote (stdout and stderr)."""
        self.output.seek(0)
        return self.output.read().decode(errors="replace")[-limit:]

    def stop(self):
        self.channel.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.output.close()


@contextlib.contextmanager
def running_c2c():
    """Two testbeds (cluster0, cluster1) and `c2c run` between them."""
    source, destination = Testbed(), Testbed()
    server = None
    try:
        server = C2c(source, destination)
        yield server
    finally:
        if server is not None:
            server.stop()
        source.stop()
        destination.stop()


@pytest.fixture
def testbed():
    server = Testbed()
    yield server
    server.stop()


@pytest.fixture
def auth_testbed():
    users = [
        {"user": "c2c", "pwd": "sync-secret", "db": "admin", "roles": ["root"]},
        {"user": "app", "pwd": "app-secret", "db": "admin", "roles": ["readWriteAnyDatabase"]},
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(users, handle)
        path = handle.name
    server = Testbed("--auth", path)
    yield server
    server.stop()
    os.unlink(path)
