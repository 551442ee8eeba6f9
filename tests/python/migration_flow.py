"""A migration driven as a user drives it, through mongosync's REST API, for the tests
that run the deploy files: load the source, /start, wait for canCommit, /commit, wait
for COMMITTED, compare the namespaces."""

import json
import time
import urllib.error
import urllib.request

NAMESPACES = [("shop", "orders"), ("crm", "customers"), ("logs", "events")]


def rest(address, path, body=None):
    """(HTTP status, JSON reply) of GET `path`, or POST with `body`."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{address}{path}", data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_for(what, probe, timeout):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def progress(address):
    status, reply = rest(address, "/api/v1/progress")
    return reply["progress"] if status == 200 else None


def load_source(source, documents):
    """`documents` in each of NAMESPACES: three of one size, so a plan over three
    workers gives each a share."""
    for db, collection in NAMESPACES:
        source[db][collection].insert_many([{"_id": i, "n": i % 11} for i in range(documents)])


def post_ok(address, path, body):
    status, reply = rest(address, path, body)
    assert (status, reply) == (200, {"success": True}), (path, status, reply)


def wait_can_commit(address):
    """/progress at `address` once canCommit is true."""
    return wait_for(
        f"canCommit at {address}",
        lambda: (found := progress(address)) and found.get("canCommit") and found,
        timeout=120,
    )


def wait_committed(address):
    return wait_for(
        f"COMMITTED at {address}",
        lambda: (found := progress(address)) and found["state"] == "COMMITTED" and found,
        timeout=120,
    )


def assert_same_data(source, destination):
    for db, collection in NAMESPACES:
        expected = list(source[db][collection].find().sort("_id"))
        found = list(destination[db][collection].find().sort("_id"))
        assert found == expected, f"{db}.{collection}"
