"""Hosts for deploy tests: network namespaces on one bridge, each with an address and a
hosts file naming every other (as a compose network's or a cluster's DNS would), so
processes started in them bind and resolve as they would in their containers.

Needs root and iproute2. `ip netns exec` bind-mounts /etc/netns/<namespace>/hosts over
/etc/hosts for the command it runs, and execs it (the pid is the command's own).
"""

import os
import pathlib
import re
import shutil
import subprocess
import time


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Bridge:
    def __init__(self, prefix):
        self.tag = os.getpid() % 100000
        self.prefix = prefix
        self.name = f"{prefix}br{self.tag}"[:15]
        self.subnet = f"10.250.{self.tag % 250}"
        self.gateway = f"{self.subnet}.1"
        self.hosts = {}  # namespace -> (address, [names])
        self.up = False

    def start(self):
        ip("link", "add", self.name, "type", "bridge")
        self.up = True
        ip("addr", "add", f"{self.gateway}/24", "dev", self.name)
        ip("link", "set", self.name, "up")

    def add_host(self, key, names):
        """A namespace with the next address, known to the others by `names`; returns
        (namespace, address)."""
        number = len(self.hosts) + 2
        namespace = f"{self.prefix}{self.tag}-{key}"
        address = f"{self.subnet}.{number}"
        ip("netns", "add", namespace)
        self.hosts[namespace] = (address, list(names))
        host_side = f"{self.prefix}v{self.tag}x{number}"[:15]
        ip("link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        ip("link", "set", host_side, "master", self.name, "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        return namespace, address

    def write_hosts(self, extra=()):
        """Every namespace's hosts file: each host's names, and `extra` (address, name)
        pairs (a headless Service's name for each of its pods, say)."""
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        for address, names in self.hosts.values():
            lines += [f"{address} {name}" for name in names]
        lines += [f"{address} {name}" for address, name in extra]
        text = "\n".join(lines) + "\n"
        for namespace in self.hosts:
            directory = pathlib.Path("/etc/netns") / namespace
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "hosts").write_text(text)

    def stop(self):
        for namespace in self.hosts:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
            shutil.rmtree(pathlib.Path("/etc/netns") / namespace, ignore_errors=True)
        if self.up:
            subprocess.run(["ip", "link", "del", self.name], capture_output=True)


def start_in(namespace, argv, environment, log_path, cwd):
    """`argv` in `namespace` with exactly `environment`, output to `log_path`."""
    command = ["ip", "netns", "exec", namespace, "env", "-i"]
    command += [f"{key}={value}" for key, value in environment.items()]
    log = open(log_path, "wb")
    try:
        return subprocess.Popen(
            command + list(argv), stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()


def run_in(namespace, argv, timeout):
    """True if `argv` run in `namespace` exits 0 within `timeout` seconds."""
    try:
        done = subprocess.run(["ip", "netns", "exec", namespace, *argv], capture_output=True, timeout=timeout)
        return done.returncode == 0
    except subprocess.TimeoutExpired:
        return False


def stop_process(proc, stop_signal, grace):
    """`stop_signal`, then SIGKILL after `grace` seconds: the seconds it took to exit, or
    None if it had to be killed."""
    if proc is None or proc.poll() is not None:
        return 0.0
    began = time.monotonic()
    proc.send_signal(stop_signal)
    try:
        proc.wait(timeout=grace)
        return time.monotonic() - began
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def log_tail(path, limit=3000):
    """The last `limit` characters of a process's log ("" if there is none yet)."""
    try:
        return pathlib.Path(path).read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def host_path(path, mounts, scratch):
    """Where a path inside a container is on this machine: under a mount's target, in the
    mount's directory (`mounts`: (target, directory), longest target first); elsewhere
    under `scratch`, the container's own file system."""
    for target, directory in mounts:
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return str(directory) + path[len(target.rstrip("/")):]
    inside = pathlib.Path(scratch) / path.lstrip("/")
    inside.parent.mkdir(parents=True, exist_ok=True)
    return str(inside)


def host_argv(argv, binary, mounts, scratch):
    """A container's command line run here: the program by `binary(path in the image)`,
    absolute paths (bare or `--flag=/path`) through `host_path`."""
    out = [binary(argv[0])]
    for arg in argv[1:]:
        flagged = re.match(r"^(--?[\w.-]+=)(/.*)$", arg)
        if flagged:
            out.append(flagged.group(1) + host_path(flagged.group(2), mounts, scratch))
        elif arg.startswith("/"):
            out.append(host_path(arg, mounts, scratch))
        else:
            out.append(arg)
    return out
