"""A real WebSocket client (Python's `websockets`) against the `porthole` binary.

Starts `target/debug/porthole serve --listen 127.0.0.1:0`, binds a port, opens
the datagram channel, and exchanges datagrams with a local UDP socket both
ways (IPv4, and IPv6 where the host has ::1); then checks that a malformed
message is closed with 1007 and that unbinding sends `closed` and a close
frame. Loopback only; every wait is bounded. Prints `N passed, N failed`.

Usage: python ws_echo.py [path/to/porthole]
"""

import asyncio
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10
ROOT = Path(__file__).resolve().parents[2]


def frame(dest, payload):
    """Client -> server: family, address, port (big-endian), payload."""
    ip = ipaddress.ip_address(dest[0])
    return bytes([ip.version]) + ip.packed + struct.pack(">H", dest[1]) + payload


def parse(message):
    """Server -> client: seq, family, address, port, payload."""
    (seq,) = struct.unpack(">Q", message[:8])
    family = message[8]
    size = 4 if family == 4 else 16
    ip = ipaddress.ip_address(message[9 : 9 + size])
    (port,) = struct.unpack(">H", message[9 + size : 11 + size])
    return seq, (str(ip), port), message[11 + size :]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def udp_peer(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(TIMEOUT)
    return sock


async def echo_both_ways(base, ws_base, host):
    binding = call(base, "POST", "/v1/udp/bind", {"addr": host})
    local = binding["local_addr"]
    bound_host, bound_port = local.rsplit(":", 1)
    bound = (bound_host.strip("[]"), int(bound_port))
    peer = udp_peer(host)
    try:
        async with connect(f"{ws_base}/v1/udp/ws/{binding['id']}") as ws:
            # Client -> UDP: the peer receives the datagram from the binding's port.
            await ws.send(frame(peer.getsockname()[:2], b"ping"))
            data, src = await asyncio.to_thread(peer.recvfrom, 2048)
            assert data == b"ping", data
            assert src[:2] == bound, (src, bound)
            # UDP -> client: the channel delivers it with seq, source and payload.
            peer.sendto(b"pong", bound)
            seq, src, payload = parse(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert (seq, payload) == (1, b"pong"), (seq, payload)
            assert src == peer.getsockname()[:2], (src, peer.getsockname())
    finally:
        peer.close()
        call(base, "DELETE", f"/v1/udp/bind/{binding['id']}")


async def malformed_closes_with_1007(base, ws_base):
    binding = call(base, "POST", "/v1/udp/bind", {})
    async with connect(f"{ws_base}/v1/udp/ws/{binding['id']}") as ws:
        await ws.send(bytes([9, 1, 2]))
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            raise AssertionError("the channel stayed open")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1007, closed
    # The binding lives on.
    ids = [b["id"] for b in call(base, "GET", "/v1/udp/status")["bindings"]]
    assert binding["id"] in ids
    call(base, "DELETE", f"/v1/udp/bind/{binding['id']}")


async def unbind_sends_closed(base, ws_base):
    binding = call(base, "POST", "/v1/udp/bind", {})
    async with connect(f"{ws_base}/v1/udp/ws/{binding['id']}") as ws:
        call(base, "DELETE", f"/v1/udp/bind/{binding['id']}")
        notice = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert notice == {"event": "closed", "reason": "unbound"}, notice
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        assert ws.close_code == 1000, ws.close_code


def has_ipv6():
    try:
        udp_peer("::1").close()
        return True
    except OSError:
        return False


async def main(exe):
    env = dict(os.environ, RUST_LOG="warn")
    daemon = subprocess.Popen(
        [exe, "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    passed = failed = 0
    try:
        line = await asyncio.wait_for(asyncio.to_thread(daemon.stdout.readline), TIMEOUT)
        prefix = "porthole listening on "
        assert line.startswith(prefix), line
        base = line[len(prefix) :].strip()
        ws_base = base.replace("http://", "ws://", 1)
        cases = [
            ("IPv4 datagrams both ways", echo_both_ways(base, ws_base, "127.0.0.1")),
            ("malformed message closes with 1007", malformed_closes_with_1007(base, ws_base)),
            ("unbind sends closed and a close frame", unbind_sends_closed(base, ws_base)),
        ]
        if has_ipv6():
            cases.insert(1, ("IPv6 datagrams both ways", echo_both_ways(base, ws_base, "::1")))
        for name, case in cases:
            try:
                await asyncio.wait_for(case, 3 * TIMEOUT)
                print(f"ok: {name}")
                passed += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported
                print(f"FAILED: {name}: {e!r}")
                failed += 1
    finally:
        daemon.terminate()
        try:
            daemon.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.kill()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    exe = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "debug" / "porthole")
    sys.exit(asyncio.run(main(exe)))
