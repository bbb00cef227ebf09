"""Whether a Ray cluster can run this search, asked before the search starts: Ray itself waits
minutes on a wrong address, retries a missing token for 20 s without naming it, and lets a node with
other code fail its trials only once they land there.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from alphabet.errors import UserError


def cluster_address(address: str | None) -> tuple[str, str]:
    """``--address`` or RAY_ADDRESS, and which of the two it came from, checked in seconds: Ray itself
    waits minutes on a wrong one."""
    given, where = (address, "--address") if address else (os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS")
    if given is None:  # Ray's own default would join a `ray start` cluster on this machine, if one runs
        return "local", where
    if given in ("auto", "local"):  # auto: the cluster `ray start` runs on this machine; local: a new one
        return given, where
    client = given.startswith("ray://")
    host, _, port = given.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or "://" in host:  # http://HEAD:8265 is the dashboard's, for Ray Jobs
        raise UserError(f"{where}: expected HOST:PORT, as `ray start --head` prints it, or ray://HOST:PORT for "
                        f"Ray Client, got {given!r}")
    try:
        grpc = speaks_grpc(host, int(port))
    except OSError as e:
        raise UserError(f"{where}: no Ray head answers at {given!r} ({e.strerror or e}); expected the address "
                        "`ray start --head` printed") from None
    if not grpc and os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", ""):  # TLS hides the preface
        expected = "Ray Client's port (10001 unless --ray-client-server-port said otherwise)" if client else (
            "the head's port, as `ray start --head` printed it (6379 unless --port said otherwise), not the "
            "dashboard's")
        raise UserError(f"{where}: something answers at {given!r}, but not as Ray does (gRPC); expected {expected}")
    if not client:
        check_cluster_token(given, where)
    return given, where


def speaks_grpc(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether the server at host:port answers an HTTP/2 connection preface with a SETTINGS frame, as
    every gRPC server does (Ray's head and Ray Client's). Ray waits minutes on a server that does not."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # and empty SETTINGS
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(preface)
        frame = b""
        while len(frame) < 9 and (chunk := conn.recv(9 - len(frame))):
            frame += chunk
    return len(frame) == 9 and frame[3] == 4  # a frame header of type SETTINGS


def check_cluster_token(address: str, where: str) -> None:
    """Refuse a cluster that asks for a token this machine lacks: ray.init would retry for 20 s, then
    name no reason."""
    from ray.exceptions import AuthenticationError

    try:
        from ray._raylet import GcsClient  # Ray's own client of the head: no public API asks this alone
    except ImportError:
        return
    try:
        GcsClient(address=address)
    except AuthenticationError:
        where_tokens = "~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN"
        said = f"{where}: the Ray cluster at {address!r} asks for its token (token authentication)"
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":  # Ray reads no token for an address without it
            raise UserError(f"{said}; expected RAY_AUTH_MODE=token here too, with the cluster's token in "
                            f"{where_tokens} (`ray get-auth-token` on its head prints it)") from None
        raise UserError(f"{said}, and this machine's ({where_tokens}) is missing or another; expected the one "
                        "`ray get-auth-token` prints on its head") from None
    except Exception:  # anything else is ray.init's to report, as it always has
        return


def code_fingerprint() -> str:
    """A digest of the alphabet and search packages' source, as this process imports them."""
    import alphabet
    import search

    digest = hashlib.sha256()
    for package in (alphabet, search):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def check_node_installs(where: str, timeout_s: float = 120) -> None:
    """Refuse a cluster with a node that cannot import this search's code, or imports other code:
    every node runs trials with its own install."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    fingerprint = ray.remote(num_cpus=0)(code_fingerprint)
    asked = {}
    for node in (n for n in ray.nodes() if n["Alive"]):
        name = f"{node['NodeManagerAddress']} (node {node['NodeID'][:8]})"
        place = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        asked[name] = fingerprint.options(scheduling_strategy=place).remote()
    here = code_fingerprint()
    for name, answer in asked.items():
        try:
            theirs = ray.get(answer, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:  # a busy node; its trials will say what is wrong, if anything
            continue
        except ray.exceptions.RayError as e:
            last = next((line for line in reversed(str(e).splitlines()) if line.strip()), type(e).__name__)
            raise UserError(f"{where}: {name} cannot run this search's code ({last.strip()[:200]}); expected "
                            "alphabet installed on every node as on this machine") from None
        if theirs != here:
            raise UserError(f"{where}: {name} runs other alphabet code than this machine (its source differs); "
                            "expected the same commit installed on every node")
