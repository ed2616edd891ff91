"""The lab's in-namespace agent (stdlib only, run by path with `python -I`).

`agent.py serve SPEC.json`: listeners on every probed port no real daemon serves, in the
namespace it was started in. TCP: accept, send a one-line banner naming the host and port, close.
UDP: echo every datagram, or answer a configured request (an amanda REQ gets a CONNECT line).
Prints `ready` once every socket is bound.

`agent.py probe` (JSON on stdin, JSON on stdout): one real connection attempt per probe, all
concurrently. Outcomes: reached (connected / answered), refused (RST or port unreachable: the
packet got through but nothing listened), rejected (an ICMP prohibited/unreachable error: a
firewall REJECT), dropped (silence until the timeout). Sequences run steps in order (helper checks).
"""
from __future__ import annotations

import asyncio
import errno
import json
import resource
import socket
import sys

REJECTED = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM, errno.EHOSTDOWN, errno.EPROTO}
REFUSED = {errno.ECONNREFUSED, errno.ECONNRESET}


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _bind(kind: int, port: int) -> socket.socket:
    """A dual-stack socket on [::]:port (IPv4 too); falls back to 0.0.0.0 without IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, kind)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = ("::", port)
    except OSError:
        sock = socket.socket(socket.AF_INET, kind)
        address = ("0.0.0.0", port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.setblocking(False)
    return sock


class _Udp(asyncio.DatagramProtocol):
    """Echo; a request starting with `reply_to` gets `reply`, formatted with its last line's words."""

    def __init__(self, reply: dict | None):
        self.reply = reply

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if self.reply and data.startswith(self.reply["when"].encode()):
            words = data.decode(errors="replace").strip().splitlines()[-1].split()
            self.transport.sendto(self.reply["text"].format(*words).encode(), addr)
        else:
            self.transport.sendto(data, addr)


async def serve(spec: dict) -> None:
    loop = asyncio.get_running_loop()
    name = spec["host"]
    for port in spec.get("tcp", []):
        banner = f"enclave-lab {name} tcp/{port}\n".encode()

        async def handle(reader, writer, banner=banner):
            try:
                writer.write(banner)
                await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        await asyncio.start_server(handle, sock=_bind(socket.SOCK_STREAM, port), backlog=4096)
    replies = {int(k): v for k, v in spec.get("udp_replies", {}).items()}
    for port in spec.get("udp", []):
        await loop.create_datagram_endpoint(lambda p=port: _Udp(replies.get(p)), sock=_bind(socket.SOCK_DGRAM, port))
    print("ready", flush=True)
    sys.stdout.close()
    await asyncio.Event().wait()


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


async def attempt(p: dict, timeout: float) -> dict:
    """One probe: {proto, src, dst, port[, send, read]} -> {outcome, detail[, data]}."""
    loop = asyncio.get_running_loop()
    kind = socket.SOCK_STREAM if p["proto"] == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(_family(p["dst"]), kind)
    sock.setblocking(False)
    try:
        if p.get("src"):
            sock.bind((p["src"], 0))
        if kind == socket.SOCK_STREAM:
            await asyncio.wait_for(loop.sock_connect(sock, (p["dst"], p["port"])), timeout)
            out = {"outcome": "reached", "detail": "connected"}
            if p.get("send"):
                await loop.sock_sendall(sock, p["send"].encode())
                chunks = []
                try:
                    while sum(map(len, chunks)) < 8192:
                        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)
                        if not chunk:
                            break
                        chunks.append(chunk)
                except (asyncio.TimeoutError, OSError):
                    pass
                out["data"] = b"".join(chunks).decode(errors="replace")
            elif p.get("read"):
                try:
                    data = await asyncio.wait_for(loop.sock_recv(sock, 256), timeout)
                    out["data"] = data.decode(errors="replace")
                except (asyncio.TimeoutError, OSError):
                    out["data"] = ""
            return out
        sock.connect((p["dst"], p["port"]))
        sock.send(p.get("send", "enclave-lab probe\n").encode())
        data = await asyncio.wait_for(loop.sock_recv(sock, 512), timeout)
        return {"outcome": "reached", "detail": "answered", "data": data.decode(errors="replace")}
    except asyncio.TimeoutError:
        return {"outcome": "dropped", "detail": f"no answer in {timeout:g}s"}
    except OSError as error:
        code = error.errno or 0
        name = errno.errorcode.get(code, str(code))
        if code in REFUSED:
            return {"outcome": "refused", "detail": name}
        if code in REJECTED:
            return {"outcome": "rejected", "detail": name}
        return {"outcome": "error", "detail": f"{name}: {error}"}
    finally:
        sock.close()


async def probe(job: dict) -> dict:
    timeout = float(job.get("timeout", 0.8))
    gate = asyncio.Semaphore(int(job.get("concurrency", 256)))

    async def one(p):
        async with gate:
            return p["id"], await attempt(p, timeout)

    async def sequence(seq):
        steps = []
        for step in seq["steps"]:
            async with gate:
                steps.append(await attempt(step, float(step.get("timeout", timeout))))
        return seq["id"], steps

    results = await asyncio.gather(*(one(p) for p in job.get("probes", [])))
    sequences = await asyncio.gather(*(sequence(s) for s in job.get("sequences", [])))
    return {"results": dict(results), "sequences": dict(sequences)}


def main(argv: list[str]) -> int:
    _raise_nofile()
    if argv[:1] == ["serve"] and len(argv) == 2:
        with open(argv[1]) as f:
            spec = json.load(f)
        asyncio.run(serve(spec))
        return 0
    if argv == ["probe"]:
        job = json.load(sys.stdin)
        json.dump(asyncio.run(probe(job)), sys.stdout)
        return 0
    print("usage: agent.py serve SPEC.json | agent.py probe < JOB.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
