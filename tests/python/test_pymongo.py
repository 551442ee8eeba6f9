"""Conformance through pymongo, a second client independent of the Rust driver."""

import time

import bson
import pymongo
import pytest
from bson import Decimal128, Int64, MaxKey, MinKey, ObjectId, Timestamp
from pymongo.errors import DuplicateKeyError, OperationFailure, WriteError


def test_handshake_as_replica_set_primary(testbed):
    client = testbed.client()
    hello = client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert hello["setName"] == "rs0"
    assert hello["hosts"] == [testbed.host]
    assert "$clusterTime" in hello and "operationTime" in hello
    assert client.topology_description.topology_type_name == "ReplicaSetWithPrimary"


def test_unknown_command_is_command_not_found(testbed):
    with pytest.raises(OperationFailure) as error:
        testbed.client().admin.command("frobnicate")
    assert error.value.code == 59


def test_canonical_sort_order_across_types(testbed):
    coll = testbed.client().d.mixed
    values = [MaxKey(), True, ObjectId("000000000000000000000001"), {"a": 1}, "10", "9",
              Int64(9), 9.5, 10, None, MinKey(), Timestamp(1, 1), Decimal128("9.75")]
    for i, value in enumerate(values):
        coll.insert_one({"_id": value, "i": i})
    ids = [d["_id"] for d in coll.find().sort("_id", 1)]
    assert ids[0] == MinKey() and ids[1] is None
    assert ids[2:6] == [9, 9.5, Decimal128("9.75"), 10]
    assert ids[6:8] == ["10", "9"]
    assert ids[-1] == MaxKey()


def test_type_bracketing_and_numeric_equality(testbed):
    coll = testbed.client().d.br
    coll.insert_many([{"_id": 1, "v": 1}, {"_id": 2, "v": "1"}, {"_id": 3, "v": Decimal128("1.0")},
                      {"_id": 4, "v": 2.5}, {"_id": 5}])
    assert coll.count_documents({"v": {"$gte": 1}}) == 3
    assert coll.count_documents({"v": 1}) == 2
    assert coll.count_documents({"v": None}) == 1
    assert coll.count_documents({"v": {"$ne": 1}}) == 3
    assert coll.count_documents({"$expr": {"$gt": ["$v", 100]}}) == 1


def test_duplicate_key_errors_and_unordered_inserts(testbed):
    coll = testbed.client().d.dup
    coll.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError) as error:
        coll.insert_one({"_id": Int64(1)})
    assert error.value.details["keyValue"] == {"_id": 1}
    with pytest.raises(pymongo.errors.BulkWriteError) as bulk:
        coll.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 1.0}, {"_id": 3}], ordered=False)
    assert bulk.value.details["nInserted"] == 2
    assert [e["index"] for e in bulk.value.details["writeErrors"]] == [0, 2]


def test_update_operators_and_field_order(testbed):
    coll = testbed.client().d.up
    coll.insert_one({"_id": 1, "z": 1, "a": [1, 2]})
    coll.update_one({"_id": 1}, {"$set": {"c": 1, "b": 2, "a.4": 9}, "$inc": {"z": 2 ** 31 - 1}})
    doc = coll.find_one({"_id": 1})
    assert list(doc.keys()) == ["_id", "z", "a", "b", "c"]
    assert doc["a"] == [1, 2, None, None, 9]
    assert isinstance(doc["z"], Int64) or doc["z"] == 2 ** 31
    result = coll.update_one({"_id": 1}, {"$set": {"b": 2}})
    assert (result.matched_count, result.modified_count) == (1, 0)


def test_change_stream_events_and_resume(testbed):
    client = testbed.client()
    coll = client.d.cs
    with client.watch(show_expanded_events=True) as stream:
        coll.insert_one({"_id": 1, "a": {"b": 1}})
        coll.update_one({"_id": 1}, {"$set": {"a.b": 2}})
        events = [stream.next() for _ in range(3)]
    assert [e["operationType"] for e in events] == ["create", "insert", "update"]
    assert events[2]["updateDescription"]["updatedFields"] == {"a.b": 2}
    assert events[1]["_id"]["_data"] < events[2]["_id"]["_data"]
    with client.watch(resume_after=events[1]["_id"]) as stream:
        assert stream.next()["operationType"] == "update"


def test_fail_command_and_wait_for_fail_point(testbed):
    client = testbed.client(retryWrites=False)
    client.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                         data={"failCommands": ["insert"], "errorCode": 11600})
    with pytest.raises(pymongo.errors.PyMongoError):
        client.d.fp.insert_one({"_id": 1})
    client.admin.command("waitForFailPoint", "failCommand", timesEntered=1, maxTimeMS=1000)
    client.d.fp.insert_one({"_id": 1})


def test_auth_and_write_blocking(auth_testbed):
    sync = auth_testbed.client(username="c2c", password="sync-secret", authSource="admin")
    app = auth_testbed.client(username="app", password="app-secret", authSource="admin")
    sync.admin.command("setUserWriteBlockMode", 1, **{"global": True})
    with pytest.raises(WriteError) as error:
        app.d.w.insert_one({"_id": 1})
    assert error.value.code == 371
    sync.d.w.insert_one({"_id": 1})
    sync.admin.command("setUserWriteBlockMode", 1, **{"global": False})
    app.d.w.insert_one({"_id": 2})
    with pytest.raises(pymongo.errors.OperationFailure) as error:
        auth_testbed.client(username="app", password="nope", authSource="admin").admin.command("ping")
    assert error.value.code == 18
    anonymous = auth_testbed.client()
    with pytest.raises(OperationFailure) as error:
        anonymous.d.w.find_one()
    assert error.value.code == 13


def test_unacknowledged_writes_use_more_to_come(testbed):
    client = testbed.client(w=0)
    client.d.w0.insert_one({"_id": 1})
    deadline = time.time() + 5
    checker = testbed.client()
    while checker.d.w0.count_documents({}) != 1 and time.time() < deadline:
        time.sleep(0.05)
    assert checker.d.w0.count_documents({}) == 1
    # The connection must still work: no reply was sent for the moreToCome request.
    assert client.admin.command("ping")["ok"] == 1.0


def test_change_stream_invalidation_and_history_lost(testbed):
    client = testbed.client()
    coll = client.d.inv
    coll.insert_one({"_id": 1})
    with coll.watch() as stream:
        coll.drop()
        assert stream.next()["operationType"] == "drop"
        assert stream.next()["operationType"] == "invalidate"
    start = client.admin.command("ping")["operationTime"]
    client.admin.command("testbedSetOplogRetention", 1, entries=3)
    for i in range(10):
        client.d.lost.insert_one({"_id": i})
    with pytest.raises(OperationFailure) as error:
        client.watch(start_at_operation_time=start).try_next()
    assert error.value.code == 286
    assert "NonResumableChangeStreamError" in (error.value.details or {}).get("errorLabels", [])


def test_update_descriptions_match_mongod_logging(testbed):
    client = testbed.client()
    coll = client.d.ud
    coll.insert_one({"_id": 1, "arr": [1, 2, 3], "sub": {"x": 1}, "n": 1})
    with coll.watch(show_expanded_events=True) as stream:
        coll.update_one({"_id": 1}, {"$push": {"arr": 4}})
        coll.update_one({"_id": 1}, {"$pull": {"arr": 2}})
        coll.update_one({"_id": 1}, {"$set": {"sub": {"x": 1, "y": 2}}})
        coll.update_one({"_id": 1}, {"$inc": {"n": 1}, "$unset": {"missing": ""}})
        coll.update_one({"_id": 1}, [{"$set": {"arr": {"$literal": [1]}, "sub.y": {"$literal": 3}}}])
        coll.update_one({"_id": 1}, {"$set": {"a.b": 1}})
        events = [stream.next() for _ in range(6)]
    descriptions = [e["updateDescription"] for e in events]
    assert descriptions[0]["updatedFields"] == {"arr.3": 4}
    assert descriptions[1]["updatedFields"] == {"arr": [1, 3, 4]}
    assert descriptions[2]["updatedFields"] == {"sub": {"x": 1, "y": 2}}
    assert descriptions[3]["updatedFields"] == {"n": 2} and descriptions[3]["removedFields"] == []
    # Pipeline updates are diffed; shrinking an array is a truncation or a whole-array
    # update, which mongod calls an implementation detail.
    assert descriptions[4]["truncatedArrays"] == [{"field": "arr", "newSize": 1}] \
        or descriptions[4]["updatedFields"].get("arr") == [1]
    assert descriptions[4]["updatedFields"].get("sub.y") == 3 \
        or descriptions[4]["updatedFields"].get("sub") == {"x": 1, "y": 3}
    assert descriptions[5]["updatedFields"] == {"a": {"b": 1}}
    assert all("disambiguatedPaths" in d for d in descriptions)
