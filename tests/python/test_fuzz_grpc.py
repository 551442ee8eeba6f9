"""Malformed gRPC against a real `c2c run` (between two c2c-testbed processes): garbage,
truncated and mutated protobuf for every c2c.v1.Migration method (and health and
reflection), then broken gRPC framing and HTTP/2 sent with a raw HTTP/2 client (`h2`):
wrong content type and method, huge or lying length prefixes, bad compression flags,
streams reset or connections dropped mid-message, unknown services and methods.

Every call must end in a gRPC status (OK when the bytes happen to decode; otherwise an
error code such as INVALID_ARGUMENT, INTERNAL or UNIMPLEMENTED), never a dropped
connection or a hang; afterwards the process must be alive, REST /progress must answer
200 and health must report SERVING. Deterministic: a fixed seed for every payload."""

import random
import socket
import struct
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The module, not the class: a class named Test* in this module would be collected.
import conftest

SEED = 20240601
# Random payloads per method and phase; mutations of a valid message come on top.
PAYLOADS = 150
TIMEOUT = 10

MIGRATION = "/c2c.v1.Migration/"
UNARY = ["Start", "Progress", "Pause", "Resume", "Commit", "Reverse", "ListWorkers"]
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

# What a malformed or refused call may end with. UNKNOWN (a panic in a handler),
# UNAVAILABLE (connection lost), DEADLINE_EXCEEDED (a hang) and CANCELLED are failures.
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.NOT_FOUND,
}


# --- protobuf wire format, by hand: nothing here may depend on c2c's own encoder -------

def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number, wire_type):
    return varint(number << 3 | wire_type)


def length_delimited(number, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return tag(number, 2) + varint(len(payload)) + payload


def uint(number, value):
    return tag(number, 0) + varint(value)


# Valid messages to mutate. Start names one cluster twice, so only a mutation can make
# it a start that is accepted (which is allowed: the point is no crash).
FILTER = (length_delimited(1, "sales") + length_delimited(2, "accounts")
          + length_delimited(5, "^acc") + length_delimited(6, "i"))
VALID = {
    "Start": (length_delimited(1, "cluster0") + length_delimited(2, "cluster0")
              + length_delimited(3, FILTER) + length_delimited(4, FILTER)
              + length_delimited(5, "afterDataCopy") + uint(6, 0)
              + length_delimited(7, "destinationOnly") + uint(8, 1) + uint(9, 1) + uint(10, 0)),
    "WatchProgress": uint(1, 250),
    # The other requests are empty; unknown fields must be skipped.
    "default": uint(1, 7) + length_delimited(2, "x") + tag(3, 5) + b"\x00\x00\x80\x3f",
}

# Hand-picked malformed encodings, each aimed at a decoder path.
CRAFTED = {
    "varint overflow": b"\xff" * 11,
    "varint cut": b"\x08\x80",
    "length beyond end": b"\x0a\x05abc",
    "length 2^32": b"\x0a\x80\x80\x80\x80\x10",
    "string not UTF-8": b"\x0a\x02\xff\xfe",
    "wrong wire type": b"\x08" + b"\xff" * 9 + b"\x01",
    "start groups (recursion)": b"\x0b" * 200,
    "end group alone": b"\x0c",
    "wire type 6": b"\x0e\x00",
    "wire type 7": b"\x0f\x00",
    "field number 0": b"\x00\x00",
    "field number too large": varint(1 << 29 << 3) + b"\x00",
    "fixed32 cut": b"\x1d\x00\x00",
    "fixed64 cut": b"\x19\x00\x00\x00",
    "nested filter broken": b"\x1a\x04\x0a\x05ab",
    "nested filter not UTF-8": b"\x1a\x04\x0a\x02\xc3\x28",
    "repeated garbage": b"\x1a\x00" * 10000,
    "bool out of range": b"\x30" + b"\xff" * 9 + b"\x01",
    "interval_ms max": b"\x08\xff\xff\xff\xff\x0f",
    "interval_ms 64-bit": b"\x08" + b"\xff" * 9 + b"\x01",
    "zeros": b"\x00" * 64,
}


def mutations(message, rng, count):
    """Byte flips, truncations, insertions and length corruptions of `message`."""
    out = []
    for _ in range(count):
        data = bytearray(message)
        kind = rng.randrange(4)
        if kind == 0 and data:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1 and data:
            data = data[:rng.randrange(len(data))]
        elif kind == 2:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        elif data:
            data[rng.randrange(len(data))] = 0xFF
        out.append(bytes(data))
    return out


def payloads(method, phase):
    rng = random.Random(f"{SEED}/{method}/{phase}")
    valid = VALID.get(method, VALID["default"])
    random_bytes = [rng.randbytes(rng.randint(1, 300)) for _ in range(PAYLOADS)]
    return [b"", *CRAFTED.values(), *random_bytes, *mutations(valid, rng, PAYLOADS)]


# --- calls ---------------------------------------------------------------------------

def unary(channel, path, payload):
    """(code, details) of a unary call with raw bytes; OK when the bytes decoded."""
    call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    try:
        call(payload, timeout=TIMEOUT)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        return error.code(), error.details()


def server_stream(channel, path, payload):
    """(code, details) of a server-streaming call: the first message is enough."""
    call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
    stream = call(payload, timeout=TIMEOUT)
    try:
        next(stream)
        stream.cancel()
        return grpc.StatusCode.OK, ""
    except StopIteration:
        return stream.code(), stream.details()
    except grpc.RpcError as error:
        return error.code(), error.details()


def bidi_stream(channel, path, payloads_):
    """(code, details) of a bidirectional call fed `payloads_`, all replies read."""
    call = channel.stream_stream(path, request_serializer=None, response_deserializer=None)
    stream = call(iter(payloads_), timeout=TIMEOUT)
    try:
        for _ in stream:
            pass
        return stream.code(), stream.details()
    except grpc.RpcError as error:
        return error.code(), error.details()


def grpc_frame(message, flag=0, length=None):
    """gRPC's length-prefixed message: compressed flag, 4-byte big-endian length."""
    return bytes([flag]) + struct.pack(">I", len(message) if length is None else length) + message


class RawResponse:
    def __init__(self):
        self.headers = {}
        self.trailers = {}
        self.data = b""
        self.reset = None
        self.ended = False

    @property
    def grpc_status(self):
        """The grpc-status, from the trailers or (trailers-only answers) the headers."""
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if value is None else int(value)

    def __repr__(self):
        return (f"RawResponse(headers={self.headers}, trailers={self.trailers}, "
                f"data={self.data[:60]!r}, reset={self.reset}, ended={self.ended})")


def raw_http2(address, path, body=b"", *, content_type="application/grpc", method="POST",
              extra_headers=(), end_stream=True, wait=TIMEOUT):
    """One HTTP/2 request with whatever headers and bytes gRPC framing forbids. Returns
    when the stream ends or is reset, or after `wait` seconds with what has arrived."""
    host, port = address.rsplit(":", 1)
    response = RawResponse()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        connection = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"), (":path", path),
                   (":authority", address), ("te", "trailers")]
        if content_type is not None:
            headers.append(("content-type", content_type))
        connection.send_headers(stream, headers + list(extra_headers),
                                end_stream=end_stream and not body)
        sock.sendall(connection.data_to_send())
        sent = 0
        deadline = time.monotonic() + wait
        while not (response.ended or response.reset is not None):
            # Send what flow control allows; the rest once the server opens its window.
            while sent < len(body):
                room = min(connection.local_flow_control_window(stream),
                           connection.max_outbound_frame_size, len(body) - sent)
                if room <= 0:
                    break
                connection.send_data(stream, body[sent:sent + room],
                                     end_stream=end_stream and sent + room == len(body))
                sent += room
            sock.sendall(connection.data_to_send())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                received = sock.recv(65536)
            except socket.timeout:
                break
            if not received:
                break
            for event in connection.receive_data(received):
                if isinstance(event, h2.events.ResponseReceived):
                    response.headers = dict(event.headers)
                elif isinstance(event, h2.events.TrailersReceived):
                    response.trailers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    response.data += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded):
                    response.ended = True
                elif isinstance(event, h2.events.StreamReset):
                    response.reset = event.error_code
            sock.sendall(connection.data_to_send())
    return response


# --- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    with conftest.running_c2c() as server:
        yield server
        if server.proc.poll() is not None:
            pytest.fail(f"c2c exited with {server.proc.returncode}:\n{server.log()}")


def assert_alive(server):
    assert server.proc.poll() is None, f"c2c exited:\n{server.log()}"


def assert_refused_or_ok(results, server):
    bad = [(label, code, details) for label, (code, details) in results
           if code != grpc.StatusCode.OK and code not in REFUSALS]
    assert not bad, f"{len(bad)} calls ended badly, e.g. {bad[:5]}\n{server.log()}"
    assert_alive(server)


# --- malformed messages --------------------------------------------------------------

@pytest.mark.parametrize("phase", ["idle", "running"])
def test_malformed_messages_get_grpc_statuses(server, phase):
    if phase == "running":
        # Garbage that decodes as an empty request really pauses, resumes, commits:
        # the calls are fuzzed in whatever states that leads to.
        status, body = server.rest("/api/v1/progress")
        if body["progress"]["state"] == "IDLE":
            code, details = unary(server.channel, MIGRATION + "Start",
                                  length_delimited(1, "cluster0") + length_delimited(2, "cluster1")
                                  + uint(6, 1))
            assert code == grpc.StatusCode.OK, details
    results = []
    for method in UNARY:
        for index, payload in enumerate(payloads(method, phase)):
            results.append((f"{method} #{index} {payload[:16]!r}",
                            unary(server.channel, MIGRATION + method, payload)))
    for index, payload in enumerate(payloads("WatchProgress", phase)):
        results.append((f"WatchProgress #{index} {payload[:16]!r}",
                        server_stream(server.channel, MIGRATION + "WatchProgress", payload)))
    for index, payload in enumerate(payloads("Check", phase)[:40]):
        results.append((f"Health.Check #{index}", unary(server.channel, HEALTH_CHECK, payload)))
    assert_refused_or_ok(results, server)
    # Decoding failures are reported as gRPC reports them (INTERNAL, naming the field).
    code, details = unary(server.channel, MIGRATION + "Start", CRAFTED["string not UTF-8"])
    assert code == grpc.StatusCode.INTERNAL and "StartRequest.source" in details, details


def test_oversized_message_is_refused(server):
    code, details = unary(server.channel, MIGRATION + "Progress", b"\x0a" * (5 << 20))
    assert code in {grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED}, details
    assert_alive(server)


def test_reflection_stream_with_garbage(server):
    # tonic-reflection ends the stream (OK, no reply) at the first undecodable message.
    rng = random.Random(f"{SEED}/reflection")
    results = [(f"reflection #{index}", bidi_stream(server.channel, REFLECTION, [payload]))
               for index, payload in enumerate([*CRAFTED.values(),
                                                *(rng.randbytes(64) for _ in range(20))])]
    assert_refused_or_ok(results, server)


def test_unknown_methods_and_services_are_unimplemented(server):
    # Including the REST paths with a method they do not serve.
    for path in [MIGRATION + "Nope", "/c2c.v1.Nope/Start", "/c2c.v1.Worker/Heartbeat",
                 "/nope", "/grpc.health.v1.Health/Nope", "/api/v1/progress", "/api/v1/"]:
        code, details = unary(server.channel, path, b"")
        assert code == grpc.StatusCode.UNIMPLEMENTED, (path, code, details)
    # A gRPC message sent to a REST endpoint is no JSON: refused (HTTP 400, INTERNAL).
    for path in ["/api/v1/start", "/api/v1/pause"]:
        code, details = unary(server.channel, path, b"")
        assert code == grpc.StatusCode.INTERNAL, (path, code, details)
    assert_alive(server)


# --- broken framing and HTTP/2 -------------------------------------------------------

def test_wrong_content_type_is_refused(server):
    for content_type in ["text/plain", "application/json", "application/grpcx", "", None]:
        response = raw_http2(server.address, MIGRATION + "Progress", grpc_frame(b""),
                             content_type=content_type)
        assert response.headers.get(":status") == "415", (content_type, response)
        assert response.grpc_status == grpc.StatusCode.INVALID_ARGUMENT.value[0], response
    # gRPC's own subtypes and parameters are accepted.
    for content_type in ["application/grpc+proto", "application/grpc;charset=utf-8"]:
        response = raw_http2(server.address, MIGRATION + "Progress", grpc_frame(b""),
                             content_type=content_type)
        assert response.grpc_status == 0, (content_type, response)
    assert_alive(server)


def test_wrong_http_method_is_refused(server):
    for method in ["GET", "PUT", "DELETE"]:
        response = raw_http2(server.address, MIGRATION + "Progress", grpc_frame(b""),
                             method=method)
        assert response.headers.get(":status") == "405", (method, response)
        assert response.headers.get("allow") == "POST", response
        assert response.grpc_status not in (None, 0), response
    assert_alive(server)


def test_broken_framing_gets_grpc_errors(server):
    cases = {
        "huge length prefix": grpc_frame(b"x" * 10, length=0xFFFFFFFF),
        "length above the limit": grpc_frame(b"x" * 10, length=5 << 20),
        "length beyond the data": grpc_frame(b"x" * 10, length=100),
        "cut length prefix": b"\x00\x00\x00",
        "compressed without grpc-encoding": grpc_frame(b"", flag=1),
        "invalid compression flag": grpc_frame(b"", flag=7),
        "no message": b"",
        "garbage message": grpc_frame(b"\xff" * 11),
        "random bytes": random.Random(f"{SEED}/framing").randbytes(200),
    }
    for name, body in cases.items():
        for method in ["Start", "Progress", "Pause", "WatchProgress"]:
            response = raw_http2(server.address, MIGRATION + method, body)
            assert response.headers.get(":status") == "200", (name, method, response)
            assert response.grpc_status not in (None, 0), (name, method, response)
    # An unsupported compression.
    response = raw_http2(server.address, MIGRATION + "Progress", grpc_frame(b"zz", flag=1),
                         extra_headers=[("grpc-encoding", "snappy")])
    assert response.grpc_status == grpc.StatusCode.UNIMPLEMENTED.value[0], response
    # A huge length prefix on a stream the client keeps open is refused at once.
    response = raw_http2(server.address, MIGRATION + "Start",
                         grpc_frame(b"x", length=0xFFFFFFFF), end_stream=False)
    assert response.grpc_status == grpc.StatusCode.OUT_OF_RANGE.value[0], response
    assert_alive(server)


def test_abandoned_streams_and_connections(server):
    host, port = server.address.rsplit(":", 1)
    # Stream reset by the client halfway through a message.
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        connection = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        for _ in range(50):
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, [
                (":method", "POST"), (":scheme", "http"), (":authority", server.address),
                (":path", MIGRATION + "Start"), ("content-type", "application/grpc"),
                ("te", "trailers")])
            connection.send_data(stream, grpc_frame(b"\x0a\x08clus", length=64))
            connection.reset_stream(stream)
        sock.sendall(connection.data_to_send())
    # Connection dropped halfway through a frame, and a client that is not HTTP/2.
    for data in [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x40\x00",
                 b"\x00\x01\x02garbage that is no HTTP/2 preface\r\n\r\n",
                 b"POST /c2c.v1.Migration/Start HTTP/1.1\r\nContent-Length: 5\r\n\r\n\x00"]:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(data)
    time.sleep(0.2)
    assert_alive(server)


# --- afterwards ----------------------------------------------------------------------

def test_survives_malformed_grpc(server):
    assert_alive(server)
    status, body = server.rest("/api/v1/progress")
    assert status == 200 and body["success"] is True
    health = health_pb2_grpc.HealthStub(server.channel)
    for service in ["", "c2c.v1.Migration"]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    # A well-formed call still works on the same channel.
    code, details = unary(server.channel, MIGRATION + "ListWorkers", b"")
    assert code == grpc.StatusCode.OK, details
