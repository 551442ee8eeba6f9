"""Runs the pods of Kubernetes manifests as a cluster would, without one: every pod of a
StatefulSet or Deployment in a network namespace of its own on one bridge (its pod IP),
its containers' environment built as the kubelet builds it (`value`, `fieldRef`
metadata.name and status.podIP, `secretKeyRef`, `configMapKeyRef` of a kustomize
`configMapGenerator`), `$(VAR)` expanded in command and args, the image's entrypoint
when there is no `command`, `emptyDir` and volume-claim mounts as directories, and the
names a pod resolves: a StatefulSet pod's `<pod>.<serviceName>` and a headless Service's
name for each of its pods. Readiness probes (grpc, httpGet, tcpSocket) are run from the
host side of the bridge, as the kubelet runs them from the node; deletion sends SIGTERM
and waits `terminationGracePeriodSeconds`.

What stands in for the images: this machine's binaries (`IMAGES`). Not emulated: a
ClusterIP Service's virtual address (tests reach pods directly), users, read-only root
file systems, resource limits, NetworkPolicies.

Needs root (network namespaces) and iproute2.
"""

import pathlib
import re
import shutil
import signal
import socket
import tempfile
import time
import urllib.request

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from netns import Bridge, host_argv, log_tail, start_in, stop_process


def expand(text, environment):
    """The kubelet's `$(VAR)` expansion: unknown references stay as written, `$$` is `$`."""
    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return environment.get(name, match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", substitute, text)


class Pod:
    def __init__(self, name, workload, cluster):
        self.name = name
        self.workload = workload
        self.template = workload["spec"]["template"]["spec"]
        self.labels = workload["spec"]["template"]["metadata"].get("labels", {})
        self.cluster = cluster
        self.root = cluster.scratch / "pods" / name
        self.log_path = cluster.scratch / f"{name}.log"
        self.namespace = self.address = self.proc = None
        (self.container,) = self.template["containers"]

    def dns_names(self):
        names = [self.name]
        service = self.workload["spec"].get("serviceName")
        if service:
            names.append(f"{self.name}.{service}")
        return names

    def environment(self):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOSTNAME": self.name}
        for item in self.container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(str(item["value"]), env)
                continue
            source = item["valueFrom"]
            if "fieldRef" in source:
                field = source["fieldRef"]["fieldPath"]
                env[item["name"]] = {"metadata.name": self.name, "status.podIP": self.address,
                                     "metadata.namespace": "c2c"}[field]
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[item["name"]] = self.cluster.secrets[ref["name"]][ref["key"]]
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                env[item["name"]] = self.cluster.config_maps[ref["name"]][ref["key"]]
            else:
                raise ValueError(f"{self.name}: env {item['name']}: {source}")
        return env

    def mounts(self):
        """(mount path, directory) of every volume mount, longest path first."""
        mounts = []
        for mount in self.container.get("volumeMounts", []):
            directory = self.root / "volumes" / mount["name"]
            directory.mkdir(parents=True, exist_ok=True)
            mounts.append((mount["mountPath"], directory))
        return sorted(mounts, key=lambda m: -len(m[0]))

    def command_line(self, env):
        image = self.container["image"].rsplit(":", 1)[0]
        binaries, entrypoint = self.cluster.images[image]
        command = self.container.get("command") or entrypoint
        argv = [expand(arg, env) for arg in command + self.container.get("args", [])]
        return host_argv(argv, lambda path: binaries[pathlib.Path(path).name], self.mounts(), self.root / "fs")

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        # An emptyDir on /tmp: the process's temporary files go there.
        for target, directory in self.mounts():
            if target == "/tmp":
                env["TMPDIR"] = str(directory)
        self.proc = start_in(self.namespace, self.command_line(env), env, self.log_path, self.root)
        self.started = time.monotonic()

    # -- probes --------------------------------------------------------------------------

    def port_number(self, port):
        if isinstance(port, int):
            return port
        for item in self.container.get("ports", []):
            if item.get("name") == port:
                return item["containerPort"]
        raise KeyError(f"{self.name}: no port named {port}")

    def probe_once(self, probe):
        timeout = probe.get("timeoutSeconds", 1)
        if "grpc" in probe:
            target = f"{self.address}:{probe['grpc']['port']}"
            with grpc.insecure_channel(target) as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")),
                        timeout=timeout,
                    )
                except grpc.RpcError:
                    return False
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://{self.address}:{self.port_number(get['port'])}{get.get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    return 200 <= response.status < 400
            except OSError:
                return False
        if "tcpSocket" in probe:
            try:
                socket.create_connection(
                    (self.address, self.port_number(probe["tcpSocket"]["port"])), timeout
                ).close()
                return True
            except OSError:
                return False
        raise ValueError(f"{self.name}: probe {probe}")

    def wait_ready(self, timeout):
        """Seconds from the pod's start until its readiness probe first passed (the
        kubelet's schedule: `initialDelaySeconds`, then every `periodSeconds`)."""
        probe = self.container.get("readinessProbe")
        started = self.started
        if probe is None:
            return 0.0
        time.sleep(max(0.0, started + probe.get("initialDelaySeconds", 0) - time.monotonic()))
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.output()}")
            if self.probe_once(probe):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{self.name} never Ready: {self.output()}")
            time.sleep(probe.get("periodSeconds", 10))

    def grace(self):
        return self.template.get("terminationGracePeriodSeconds", 30)

    def output(self):
        return log_tail(self.log_path)


class Cluster:
    """The pods of `files` (manifest paths), with the ConfigMaps of `kustomization` and
    the Secrets among `files`. `images`: image name → ({binary name: path on this
    machine}, entrypoint). `extra_hosts`: more namespaces on the bridge (name → argv to
    run there), e.g. the MongoDB clusters the Secret names."""

    def __init__(self, files, kustomization, images, extra_hosts=None):
        self.scratch = pathlib.Path(tempfile.mkdtemp(prefix="c2c-k8s-"))
        self.images = images
        self.config_maps, self.secrets = {}, {}
        for generator in yaml.safe_load(pathlib.Path(kustomization).read_text()).get("configMapGenerator", []):
            self.config_maps[generator["name"]] = dict(item.split("=", 1) for item in generator["literals"])
        self.workloads, self.services = [], []
        for path in files:
            for resource in yaml.safe_load_all(pathlib.Path(path).read_text()):
                if not resource:
                    continue
                kind = resource["kind"]
                if kind == "Secret":
                    self.secrets[resource["metadata"]["name"]] = dict(resource.get("stringData", {}))
                elif kind in ("StatefulSet", "Deployment"):
                    self.workloads.append(resource)
                elif kind == "Service":
                    self.services.append(resource)
        self.pods = []
        for workload in self.workloads:
            name = workload["metadata"]["name"]
            for index in range(workload["spec"].get("replicas", 1)):
                # A Deployment's pods get a generated suffix; a StatefulSet's its ordinal.
                suffix = index if workload["kind"] == "StatefulSet" else f"7d9c-{chr(ord('a') + index)}"
                self.pods.append(Pod(f"{name}-{suffix}", workload, self))
        self.extra_hosts = extra_hosts or {}
        self.extra = {}  # name -> (namespace, address)
        self.extra_procs = []
        self.bridge = Bridge("k8s")

    def pod(self, name):
        return next(pod for pod in self.pods if pod.name == name)

    def selected(self, service):
        """The pods a Service's selector picks."""
        selector = service["spec"].get("selector", {})
        return [pod for pod in self.pods if selector.items() <= pod.labels.items()]

    def headless_names(self):
        """A headless Service's name resolves to each pod it selects."""
        pairs = []
        for service in self.services:
            if service["spec"].get("clusterIP") != "None":
                continue
            for pod in self.selected(service):
                pairs.append((pod.address, service["metadata"]["name"]))
        return pairs

    def up(self, ready_timeout=90, skip_readiness=()):
        """Starts every pod at once (as Parallel StatefulSets and a Deployment do) and
        returns {pod: seconds to Ready} once every pod's readiness probe passed (pods of
        the workloads named in `skip_readiness` are not waited for)."""
        self.bridge.start()
        for name in self.extra_hosts:
            self.extra[name] = self.bridge.add_host(name, [name])
        for pod in self.pods:
            pod.namespace, pod.address = self.bridge.add_host(pod.name, pod.dns_names())
        self.bridge.write_hosts(extra=self.headless_names())
        for name, argv in self.extra_hosts.items():
            namespace = self.extra[name][0]
            self.extra_procs.append(
                start_in(namespace, argv, {"PATH": "/usr/bin:/bin"}, self.scratch / f"{name}.log", self.scratch)
            )
        for pod in self.pods:
            pod.start()
        ready = {}
        for pod in self.pods:
            if pod.workload["metadata"]["name"] not in skip_readiness:
                ready[pod.name] = pod.wait_ready(ready_timeout)
        return ready

    def address(self, host):
        return self.extra[host][1]

    def down(self):
        """Deletes every pod at once: {pod: seconds to exit, None if killed}."""
        try:
            running = [pod for pod in self.pods if pod.proc is not None and pod.proc.poll() is None]
            began = time.monotonic()
            for pod in running:
                pod.proc.send_signal(signal.SIGTERM)
            stopped = {}
            while running:
                elapsed = time.monotonic() - began
                for pod in list(running):
                    if pod.proc.poll() is not None:
                        stopped[pod.name] = elapsed
                        running.remove(pod)
                    elif elapsed > pod.grace():
                        pod.proc.kill()
                        pod.proc.wait()
                        stopped[pod.name] = None
                        running.remove(pod)
                time.sleep(0.01)
            for proc in self.extra_procs:
                stop_process(proc, signal.SIGINT, 10)
            return stopped
        finally:
            self.bridge.stop()

    def logs(self):
        return "\n".join(f"--- {pod.name}\n{pod.output()}" for pod in self.pods)

    def clean(self):
        shutil.rmtree(self.scratch, ignore_errors=True)

