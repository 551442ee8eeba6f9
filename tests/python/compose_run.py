"""Runs a compose file's services the way `docker compose up` does, without a container
engine: each service in a network namespace of its own, all on one bridge, every service
name resolving to its service's address (as on a compose network), `depends_on` with its
conditions, healthchecks run inside the service's namespace at their interval, and
`docker compose down`'s stop signals and grace periods.

What stands in for the images: the binaries they hold, from this machine (`c2c`,
`c2c-testbed` and `c2c-grpc-health` from this repository; `etcd`, `etcdctl`, `prometheus`
and `bash` from Debian), with the image's entrypoint as the Dockerfile (or, for images
from a registry, `IMAGE_ENTRYPOINTS`) gives it. Volumes are directories: a named volume
a fresh temporary one, a bind mount its source; absolute paths in a command line under a
volume's target are rewritten to it, other absolute paths to the service's own scratch
directory (its container file system). Published ports are not forwarded: tests reach a
service at its address on the bridge. Processes run as root, not as the image's user.

Needs root (network namespaces) and iproute2.
"""

import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import signal
import tempfile
import time

import yaml

from netns import Bridge, host_argv, log_tail, run_in, start_in, stop_process

# The entrypoints of the registry images the compose file names (their Dockerfiles).
IMAGE_ENTRYPOINTS = {
    "quay.io/coreos/etcd": [],
    "prom/prometheus": ["/bin/prometheus"],
}

VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value, environment):
    """Compose's variable substitution: `$$`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
    `${VAR:?error}`, `$VAR`."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        found = environment.get(name)
        op, arg = match.group("op"), match.group("arg")
        if op in (":-", ":?") and not found:
            found = None
        if found is None and op in (":-", "-"):
            return arg
        if found is None and op in (":?", "?"):
            raise ValueError(f"required variable {name} is not set: {arg}")
        return found or ""

    return VARIABLE.sub(substitute, value)


def duration(text, default):
    """A compose duration ("2s", "1m30s", "500ms") in seconds."""
    if text is None:
        return default
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text)):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}[unit]
    return total


def dockerfile_entrypoint(dockerfile):
    entrypoint = []
    for line in pathlib.Path(dockerfile).read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            entrypoint = json.loads(line[len("ENTRYPOINT "):])
    return entrypoint


class Service:
    def __init__(self, name, spec, project):
        self.name = name
        self.spec = spec
        self.project = project
        self.namespace = None
        self.address = None
        self.proc = None
        self.log_path = project.scratch / f"{name}.log"
        self.root = project.scratch / "fs" / name

    # -- what the service runs ---------------------------------------------------------

    def entrypoint(self):
        if "entrypoint" in self.spec:
            entrypoint = self.spec["entrypoint"]
            return entrypoint if isinstance(entrypoint, list) else entrypoint.split()
        if "build" in self.spec:
            build = self.spec["build"]
            context = self.project.directory / build.get("context", ".")
            return dockerfile_entrypoint(context / build.get("dockerfile", "Dockerfile"))
        image = self.spec["image"].rsplit(":", 1)[0]
        if image not in IMAGE_ENTRYPOINTS:
            raise KeyError(f"{self.name}: no entrypoint known for image {image}")
        return IMAGE_ENTRYPOINTS[image]

    def command_line(self):
        command = self.spec.get("command", [])
        command = command if isinstance(command, list) else command.split()
        return self.host_paths(self.entrypoint() + command)

    def volumes(self):
        """(target in the container, directory on this machine), longest target first."""
        mounts = []
        for volume in self.spec.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                host = (self.project.directory / source).resolve()
            else:
                host = self.project.scratch / "volumes" / source
                host.mkdir(parents=True, exist_ok=True)
            mounts.append((target, host))
        return sorted(mounts, key=lambda mount: -len(mount[0]))

    def host_paths(self, argv):
        """The image's binaries by their names on this machine, absolute paths rewritten
        to volumes or scratch."""
        return host_argv(argv, self.project.binary, self.volumes(), self.root)

    def environment(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)}
        declared = self.spec.get("environment", {})
        if isinstance(declared, list):
            declared = dict(item.split("=", 1) for item in declared)
        env.update({key: "" if value is None else str(value) for key, value in declared.items()})
        return env

    # -- running it ----------------------------------------------------------------------

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = start_in(
            self.namespace, self.command_line(), self.environment(), self.log_path, self.root
        )
        self.started = time.monotonic()

    def healthcheck(self):
        check = self.spec.get("healthcheck")
        if not check or check.get("disable"):
            return None
        return check

    def check_once(self):
        check = self.healthcheck()
        test = check["test"]
        if isinstance(test, str):
            argv = ["sh", "-c", test]
        elif test[0] == "CMD":
            argv = self.host_paths(test[1:])
        elif test[0] == "CMD-SHELL":
            argv = ["sh", "-c", test[1]]
        else:
            raise ValueError(f"{self.name}: healthcheck test {test!r}")
        return run_in(self.namespace, argv, duration(check.get("timeout"), 30))

    def wait_healthy(self):
        """As the engine does: the first check one interval after the start, failures in
        the start period not counted, unhealthy after `retries` failures in a row."""
        check = self.healthcheck()
        interval = duration(check.get("interval"), 30)
        start_period = duration(check.get("start_period"), 0)
        retries = check.get("retries", 3)
        failures = 0
        while True:
            time.sleep(interval)
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.output()}")
            if self.check_once():
                return time.monotonic() - self.started
            if time.monotonic() - self.started > start_period:
                failures += 1
                if failures >= retries:
                    raise RuntimeError(f"{self.name} is unhealthy: {self.output()}")

    def stop(self):
        """`docker compose down`: the stop signal, then SIGKILL after the grace period.
        Returns the seconds it took to exit, or None if it had to be killed."""
        stop_signal = getattr(signal, self.spec.get("stop_signal", "SIGTERM"))
        grace = duration(self.spec.get("stop_grace_period"), 10)
        return stop_process(self.proc, stop_signal, grace)

    def output(self):
        return log_tail(self.log_path)


class Project:
    """The compose file's services (those without a profile, and those of `profiles`) on
    their own bridge."""

    def __init__(self, compose_file, binaries, profiles=(), environment=None):
        self.compose_file = pathlib.Path(compose_file).resolve()
        self.directory = self.compose_file.parent
        self.binaries = binaries
        self.scratch = pathlib.Path(tempfile.mkdtemp(prefix="c2c-compose-"))
        raw = yaml.safe_load(self.compose_file.read_text())
        spec = interpolate(raw, environment if environment is not None else {})
        self.services = {
            name: Service(name, service, self)
            for name, service in spec["services"].items()
            if not service.get("profiles") or set(service["profiles"]) & set(profiles)
        }
        self.bridge = Bridge("cmp")

    def binary(self, path):
        name = os.path.basename(path)
        if name not in self.binaries:
            raise KeyError(f"no binary on this machine stands in for {path}")
        return str(self.binaries[name])

    # -- network ---------------------------------------------------------------------------

    def network_up(self):
        self.bridge.start()
        for service in self.services.values():
            service.namespace, service.address = self.bridge.add_host(service.name, [service.name])
        self.bridge.write_hosts()

    def network_down(self):
        self.bridge.stop()

    # -- up and down -------------------------------------------------------------------------

    def dependencies(self, service):
        depends = service.spec.get("depends_on", {})
        if isinstance(depends, list):
            return {name: "service_started" for name in depends}
        return {name: item.get("condition", "service_started") for name, item in depends.items()}

    def start_order(self):
        order, placed = [], set()
        while len(order) < len(self.services):
            ready = [
                s for name, s in self.services.items()
                if name not in placed and set(self.dependencies(s)) <= placed
            ]
            if not ready:
                raise ValueError("depends_on has a cycle or names a service not started")
            for service in ready:
                order.append(service)
                placed.add(service.name)
        return order

    def up(self):
        """Starts every service after its dependencies (waiting for `service_healthy` ones)
        and returns once every service with a healthcheck is healthy: {name: seconds from
        its start}. Healthchecks run concurrently, each on its own schedule."""
        self.network_up()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.services)) as pool:
            health = {}
            for service in self.start_order():
                for name, condition in self.dependencies(service).items():
                    if condition == "service_healthy":
                        health[name].result()
                service.start()
                if service.healthcheck():
                    health[service.name] = pool.submit(service.wait_healthy)
            return {name: future.result() for name, future in health.items()}

    def down(self):
        """Stops the services, dependents first: {name: seconds to exit, None if killed}.
        Their logs stay in `scratch` until `clean`."""
        stopped = {}
        try:
            for service in reversed(self.start_order()):
                stopped[service.name] = service.stop()
        finally:
            self.network_down()
        return stopped

    def clean(self):
        shutil.rmtree(self.scratch, ignore_errors=True)

    def logs(self):
        return "\n".join(f"--- {s.name}\n{s.output()}" for s in self.services.values())
