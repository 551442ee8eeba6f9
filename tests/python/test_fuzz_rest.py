"""Fuzzes c2c's REST API from its own OpenAPI document with schemathesis: every operation
of /api/v1/openapi.json, as served by a real `c2c run` between two c2c-testbed
processes, gets schema-valid and schema-invalid requests (coverage and fuzzing phases).
Each answer must be no 5xx and conform to the document (documented status, content type,
response schema and headers); a request the document calls invalid must be refused; an
undocumented method must get 405 with Allow. The process must survive it all.

Two rounds against one process:
  1. IDLE, invalid data only (and valid data for everything but /start): nothing may
     be accepted, so the state must still be IDLE afterwards. This is where a field the
     server accepts but the document forbids (or the reverse) shows up.
  2. From RUNNING (a reversible migration started by the fixture), valid and invalid
     data for every operation: accepted calls move the migration on (pause, resume,
     commit, reverse), so the calls are fuzzed in several states.

Bounded and deterministic: a fixed seed and max_examples per operation; the whole
module takes well under a minute on two cores.

Not checked: positive_data_acceptance. /start has constraints that the document states
in words, not in its schema (preExistingDestinationData needs a namespace filter,
reversible excludes one, a regex must compile, …), so a schema-valid body may rightly
be refused with 400."""

import json
import urllib.request

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

# The module, not the class: a class named Test* in this module would be collected.
import conftest

SEED = 20240601
MAX_EXAMPLES = 100

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "unsupported_method",
]


def config(mode):
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "request-timeout": 15,
        "generation": {
            "mode": mode,
            "max-examples": MAX_EXAMPLES,
            # No example database: every run starts from the seed alone.
            "database": "none",
        },
        "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    })


def post(server, path, body):
    request = urllib.request.Request(
        f"http://{server.address}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.load(response)


def state(server):
    status, body = server.rest("/api/v1/progress")
    assert status == 200
    return body["progress"]["state"]


def load(server, mode):
    return schemathesis.openapi.from_url(
        f"http://{server.address}/api/v1/openapi.json", config=config(mode))


@pytest.fixture(scope="module")
def server():
    with conftest.running_c2c() as server:
        yield server
        # Teardown: a panic's message helps more than "connection refused".
        if server.proc.poll() is not None:
            pytest.fail(f"c2c exited with {server.proc.returncode}:\n{server.log()}")


@pytest.fixture(scope="module")
def idle_invalid(server):
    assert state(server) == "IDLE"
    return load(server, "negative")


@pytest.fixture(scope="module")
def idle_valid(server):
    assert state(server) == "IDLE"
    return load(server, "positive")


@pytest.fixture(scope="module")
def running(server):
    current = state(server)
    if current == "IDLE":
        status, body = post(server, "/api/v1/start",
                            {"source": "cluster0", "destination": "cluster1",
                             "reversible": True})
        assert (status, body) == (200, {"success": True})
    return load(server, "all")


def call(case, server):
    try:
        case.call_and_validate()
    except Exception:
        if server.proc.poll() is not None:
            pytest.fail(f"c2c exited with {server.proc.returncode}:\n{server.log()}")
        raise


def valid_body(case):
    """Whether the case's body is schema-valid (its invalid part is elsewhere)."""
    components = case.meta.components if case.meta is not None else {}
    return any(getattr(location, "value", location) == "body"
               and info.mode == schemathesis.GenerationMode.POSITIVE
               for location, info in components.items())


# Round 1, IDLE. /start is left out of the valid-data run: a valid body would start.
# The GET operations take no input, so there is nothing invalid to send them.
@schemathesis.pytest.from_fixture("idle_invalid").exclude(method="GET").parametrize()
def test_idle_invalid_requests_are_refused(case, server):
    # A valid /start body whose only fault is its Content-Type is accepted on purpose
    # (mongosync's curl --data sends form-urlencoded; the document says Content-Type is
    # ignored): it would start the migration. Round 2 sends such requests.
    if case.path == "/api/v1/start" and valid_body(case):
        return
    call(case, server)


@schemathesis.pytest.from_fixture("idle_valid").exclude(path="/api/v1/start").parametrize()
def test_idle_valid_requests(case, server):
    call(case, server)


def test_idle_after_invalid_requests(server):
    assert state(server) == "IDLE"


# Round 2, from RUNNING: every operation, valid and invalid data.
@schemathesis.pytest.from_fixture("running").parametrize()
def test_running_requests(case, server):
    call(case, server)


def test_survives_the_fuzzing(server):
    assert server.proc.poll() is None, server.log()
    assert state(server) in {"RUNNING", "PAUSED", "COMMITTING", "COMMITTED", "REVERSING"}
    status, document = server.rest("/api/v1/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
