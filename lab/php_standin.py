"""STAND-IN for PHP-FPM + WordPress (stdlib only, run by path): a minimal FastCGI responder.

The lab cannot install WordPress per host, so the rendered nginx site's `fastcgi_pass unix:...`
reaches this stand-in, which answers 200 with a page naming the backend host (found from nginx's
SERVER_ADDR). It lets haproxy's health check and the end-to-end request pass through the real
haproxy and the real nginx. Usage: php_standin.py SOCKET ADDRESSES.json (address -> host name).
"""
from __future__ import annotations

import asyncio
import json
import os
import struct
import sys

BEGIN, END, PARAMS, STDIN, STDOUT = 1, 3, 4, 5, 6


def _params(data: bytes) -> dict[str, str]:
    out, i = {}, 0
    while i < len(data):
        lengths = []
        for _ in range(2):
            if data[i] & 0x80:
                lengths.append(struct.unpack(">I", data[i:i + 4])[0] & 0x7FFFFFFF)
                i += 4
            else:
                lengths.append(data[i])
                i += 1
        name = data[i:i + lengths[0]].decode(errors="replace")
        i += lengths[0]
        out[name] = data[i:i + lengths[1]].decode(errors="replace")
        i += lengths[1]
    return out


def _record(kind: int, request: int, content: bytes) -> bytes:
    return struct.pack(">BBHHBB", 1, kind, request, len(content), 0, 0) + content


async def handle(reader, writer, hosts: dict[str, str]) -> None:
    params, request = b"", 1
    try:
        while True:
            header = await reader.readexactly(8)
            _, kind, request, length, padding, _ = struct.unpack(">BBHHBB", header)
            content = await reader.readexactly(length + padding)
            if kind == PARAMS:
                params += content[:length]
            elif kind == STDIN and length == 0:
                break
        p = _params(params)
        host = hosts.get(p.get("SERVER_ADDR", ""), p.get("SERVER_ADDR", "?"))
        body = f"enclave-lab stand-in for WordPress (php-fpm) on {host}: {p.get('REQUEST_URI', '/')}\n".encode()
        reply = (b"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Enclave-Lab-Backend: " + host.encode()
                 + b"\r\n\r\n" + body)
        writer.write(_record(STDOUT, request, reply) + _record(STDOUT, request, b"")
                     + _record(END, request, struct.pack(">IB3x", 0, 0)))
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(path: str, hosts: dict[str, str]) -> None:
    if os.path.exists(path):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    server = await asyncio.start_unix_server(lambda r, w: handle(r, w, hosts), path=path)
    os.chmod(path, 0o666)  # nginx workers run as an unprivileged user
    print("ready", flush=True)
    sys.stdout.close()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        asyncio.run(main(sys.argv[1], json.load(f)))
