"""c2c's gRPC API from a client that shares no code with it: Python grpcio, with the
message classes built at run time from server reflection (as grpcurl does), against
the real `c2c run` binary syncing two c2c-testbed processes. Also checks that REST
answers on the same port."""

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

# The module, not the class: a class named Test* in this module would be collected.
import conftest


@pytest.fixture
def c2c():
    with conftest.running_c2c() as server:
        yield server


class Migration:
    """c2c.v1.Migration with classes from reflection: nothing generated ahead of time."""

    def __init__(self, channel):
        self.channel = channel
        self.database = ProtoReflectionDescriptorDatabase(channel)
        self.pool = descriptor_pool.DescriptorPool(self.database)
        self.service = self.pool.FindServiceByName("c2c.v1.Migration")

    def _classes(self, method):
        descriptor = self.service.FindMethodByName(method)
        return (message_factory.GetMessageClass(descriptor.input_type),
                message_factory.GetMessageClass(descriptor.output_type))

    def call(self, method, **fields):
        request, reply = self._classes(method)
        rpc = self.channel.unary_unary(
            f"/c2c.v1.Migration/{method}",
            request_serializer=request.SerializeToString,
            response_deserializer=reply.FromString,
        )
        return rpc(request(**fields), timeout=10)

    def stream(self, method, **fields):
        request, reply = self._classes(method)
        rpc = self.channel.unary_stream(
            f"/c2c.v1.Migration/{method}",
            request_serializer=request.SerializeToString,
            response_deserializer=reply.FromString,
        )
        return rpc(request(**fields), timeout=30)


def test_reflection_lists_the_served_services(c2c):
    services = set(ProtoReflectionDescriptorDatabase(c2c.channel).get_services())
    assert {"c2c.v1.Migration", "grpc.health.v1.Health"} <= services
    methods = {m.name for m in Migration(c2c.channel).service.methods}
    assert {"Start", "Progress", "WatchProgress", "Pause", "Resume", "Commit",
            "Reverse", "ListWorkers"} <= methods


def test_health_reports_migration_serving(c2c):
    health = health_pb2_grpc.HealthStub(c2c.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="c2c.v1.Migration"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_progress_start_and_errors_through_reflected_messages(c2c):
    migration = Migration(c2c.channel)
    assert migration.call("Progress").state == "IDLE"

    with pytest.raises(grpc.RpcError) as refused:
        migration.call("Start", source="cluster0", destination="cluster0")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "different clusters" in refused.value.details()
    assert ("c2c-error", "InvalidRequest") in tuple(refused.value.trailing_metadata())

    with pytest.raises(grpc.RpcError) as wrong_state:
        migration.call("Pause")
    assert wrong_state.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    migration.call("Start", source="cluster0", destination="cluster1")
    reply = migration.call("Progress")
    assert reply.state == "RUNNING"
    assert reply.direction_source.startswith("cluster0: ")
    # The same migration over REST, on the same port.
    status, body = c2c.rest("/api/v1/progress")
    assert status == 200 and body["progress"]["state"] == "RUNNING"

    stream = migration.stream("WatchProgress", interval_ms=100)
    states = [next(stream).state for _ in range(2)]
    stream.cancel()
    assert states == ["RUNNING", "RUNNING"]

    workers = migration.call("ListWorkers").workers
    assert [(w.worker_id, w.status) for w in workers] == [("local", "live")]
