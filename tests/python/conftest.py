"""Starts c2c-testbed processes for the pymongo conformance tests (a second,
independent client: pymongo's handshake, OP_MSG framing and monitoring differ from
the Rust driver's)."""

import json
import os
import re
import subprocess
import tempfile

import pymongo
import pytest

BINARY = os.environ.get(
    "C2C_TESTBED_BIN",
    os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "c2c-testbed"),
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
