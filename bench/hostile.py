#!/usr/bin/env python3
"""The attacks of bench/hostile.sh, and the upstream they need.

  hostile.py upstream PORT_FILE     an HTTP server on 127.0.0.1 whose /endless
                                    answers an image/jpeg body that never
                                    ends, /drip a byte a second, /html a
                                    small web page; writes its port to
                                    PORT_FILE
  hostile.py attack --port P --pid PID --seconds S --watched DIR --results F
                                    attacks the server on 127.0.0.1:P from
                                    127.0.0.2 for S seconds, samples its
                                    VmRSS, and writes what it saw to F (JSON)

Every attack is one the server once fell to: a push of dashes with
boundary=- (a quadratic scan), decompression bombs (PNG and BMP declaring
hundreds of megapixels), HTTP/2 connections that send no request or leave
their flow-control window at zero, a FIFO in a watched folder, uploads
refused mid-body, bare-LF and half-closed requests, and pushes that create
stream after stream; and on the player's WebSocket, frames that break the
protocol, frames announcing a gigabyte, subscribe/unsubscribe floods and
sockets that subscribe and never read. Standard library only; everything
stays on 127.0.0.0/8.
"""

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import time
import zlib

ATTACKER = "127.0.0.2"


def png_bomb(side: int) -> bytes:
    """A greyscale PNG of side x side zero pixels: small on the wire,
    side*side bytes (and more) once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" * (side + 1)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )


def bmp_bomb(side: int) -> bytes:
    """An 8-bit RLE BMP of side x side pixels whose whole pixel data is
    'end of bitmap': a few hundred bytes that decode to side*side*3."""
    palette = b"\0\0\0\0" * 256
    pixels = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    header = struct.pack("<2sIHHI", b"BM", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return header + info + palette + pixels


async def http(port: int, raw: bytes, body_chunks=(), read_timeout=10.0) -> bytes:
    """Sends a raw request (and body chunks) from the attacker's address and
    returns what comes back before the server closes or the timeout."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(ATTACKER, 0)
    )
    out = b""
    try:
        writer.write(raw)
        for c in body_chunks:
            writer.write(c)
            await writer.drain()
        await writer.drain()
        try:
            out = await asyncio.wait_for(reader.read(1 << 16), read_timeout)
        except asyncio.TimeoutError:
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return out


def ws_frame(opcode: int, payload: bytes, masked: bool = True) -> bytes:
    """A client's WebSocket frame (RFC 6455 section 5.2), final."""
    head = bytes([0x80 | opcode])
    m = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def ws_open(port: int):
    """A WebSocket to /ws from the attacker's address, after its 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise RuntimeError(f"no 101: {head[:40]!r}")
    return reader, writer


async def ws_close_code(reader, timeout=10.0) -> int:
    """Reads the server's frames until its close frame: the close code (0:
    the connection ended without one)."""
    try:
        while True:
            b0, b1 = await asyncio.wait_for(reader.readexactly(2), timeout)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", await reader.readexactly(8))[0]
            payload = await asyncio.wait_for(reader.readexactly(n), timeout)
            if b0 & 0x0F == 0x8:
                return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 0
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError):
        return 0


def status_of(answer: bytes) -> int:
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_get(stream: int, path: str) -> bytes:
    """A HEADERS frame for GET path: HPACK with indexed names, no Huffman."""
    block = bytes([0x82, 0x86])  # :method GET, :scheme http
    block += bytes([0x44, len(path)]) + path.encode()  # :path
    block += bytes([0x41, 9]) + b"127.0.0.1"  # :authority
    return h2_frame(1, 0x5, stream, block)  # END_STREAM | END_HEADERS


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def h2_hold(port: int, streams: int, window: int, seconds: float, stats: dict, key: str):
    """An HTTP/2 connection that opens `streams` streams with an initial
    window of `window` bytes and then reads nothing; counts how long the
    server kept it."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(ATTACKER, 0)
        )
    except OSError:
        stats[key + "_refused"] = stats.get(key + "_refused", 0) + 1
        return
    settings = struct.pack(">HI", 0x4, window)  # SETTINGS_INITIAL_WINDOW_SIZE
    writer.write(PREFACE + h2_frame(4, 0, 0, settings))
    for i in range(streams):
        writer.write(h2_get(1 + 2 * i, "/stream/honest"))
    try:
        await writer.drain()
        # Wait for the server to close it, never reading more than a bit.
        deadline = started + seconds
        while time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.read(1024), deadline - time.monotonic())
            if not data:
                break
    except (asyncio.TimeoutError, OSError):
        pass
    held = time.monotonic() - started
    stats.setdefault(key + "_held_s", []).append(round(held, 1))
    writer.close()


async def attack(args) -> dict:
    port = args.port
    end = time.monotonic() + args.seconds
    stats: dict = {"rss_mib": [], "errors": []}
    bombs = [("png", png_bomb(16000)), ("bmp", bmp_bomb(20000))]
    dashes = b"x" + b"-" * 200_000

    async def sample_rss():
        while time.monotonic() < end:
            try:
                with open(f"/proc/{args.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            stats["rss_mib"].append(int(line.split()[1]) // 1024)
            except OSError:
                stats["errors"].append("server gone")
                return
            await asyncio.sleep(1)

    async def loop(name, once, pause):
        n = 0
        while time.monotonic() < end:
            try:
                await once()
            except Exception as e:  # an attack's own failure is reported, not fatal
                stats["errors"].append(f"{name}: {e!r}")
            n += 1
            await asyncio.sleep(pause)
        stats[name + "_runs"] = n

    async def dash_push():
        head = (
            "POST /stream/p HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/x-mixed-replace; boundary=-\r\n"
            f"Content-Length: {len(dashes)}\r\n\r\n"
        ).encode()
        answers = await asyncio.gather(*(http(port, head, [dashes]) for _ in range(2)))
        for a in answers:
            stats.setdefault("dash_push_status", set()).add(status_of(a))

    async def bomb():
        for kind, body in bombs:
            head = f"PUT /stream/p HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            answers = await asyncio.gather(*(http(port, head, [body]) for _ in range(4)))
            for a in answers:
                stats.setdefault(f"bomb_{kind}_status", set()).add(status_of(a))

    async def oversize_upload():
        head = b"PUT /stream/p HTTP/1.1\r\nHost: x\r\nContent-Length: 33554432\r\n\r\n"
        a = await http(port, head, [b"\xff" * 65536] * 64)
        stats.setdefault("oversize_status", set()).add(status_of(a))

    async def bare_lf():
        a = await http(port, b"GET /snapshot/honest HTTP/1.1\nHost: x\n\n", read_timeout=5)
        stats.setdefault("bare_lf_status", set()).add(status_of(a))

    async def create_names():
        with open("tests/data/jpeg_200k.jpg", "rb") as f:
            body = f.read()
        for i in range(20):
            name = f"spam{int(time.monotonic() * 1000) % 100000}-{i}"
            head = f"PUT /stream/{name} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            a = await http(port, head, [body], read_timeout=5)
            stats.setdefault("create_status", set()).add(status_of(a))

    async def relay_viewer():
        # The relays connect upstream only while someone watches.
        for name in ("endless", "drip", "page"):
            head = f"GET /stream/{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            await http(port, head, read_timeout=15)

    async def ws_attack(name, frames):
        reader, writer = await ws_open(port)
        try:
            for f in frames:
                writer.write(f)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # closed before the last of them: its close is read below
        code = await ws_close_code(reader)
        writer.close()
        stats.setdefault(f"ws_{name}_close", set()).add(code)

    async def ws_garbage():
        # Reserved bits set, then noise: no extension was agreed.
        await ws_attack("garbage", [bytes([0xF1]) + os.urandom(63)])
        await ws_attack("unmasked", [ws_frame(1, b'{"op":"subscribe"}', masked=False)])

    async def ws_huge():
        # A frame announcing 1 GiB, and the first megabyte of it.
        head = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", 1 << 30) + os.urandom(4)
        await ws_attack("huge", [head, b"x" * (1 << 20)])

    async def ws_churn():
        sub = ws_frame(1, b'{"op":"subscribe","stream":"honest"}')
        unsub = ws_frame(1, b'{"op":"unsubscribe","stream":"honest"}')
        await ws_attack("churn", [sub + unsub] * 2000)

    async def ws_never_reads():
        # Twenty sockets that subscribe to the honest stream and never read.
        socks = [await ws_open(port) for _ in range(20)]
        for _, writer in socks:
            writer.write(ws_frame(1, b'{"op":"subscribe","stream":"honest"}'))
            await writer.drain()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        for _, writer in socks:
            writer.close()
        stats["ws_never_reads_sockets"] = len(socks)

    async def h2_attacks():
        await asyncio.gather(
            h2_hold(port, 0, 65535, 30, stats, "h2_idle"),
            h2_hold(port, 20, 0, 30, stats, "h2_zero_window"),
        )

    await asyncio.gather(
        sample_rss(),
        loop("dash_push", dash_push, 0.5),
        loop("bomb", bomb, 1.0),
        loop("oversize", oversize_upload, 0.5),
        loop("bare_lf", bare_lf, 1.0),
        loop("create", create_names, 2.0),
        loop("h2", h2_attacks, 0.1),
        loop("relay_viewer", relay_viewer, 0.1),
        loop("ws_garbage", ws_garbage, 0.2),
        loop("ws_huge", ws_huge, 0.5),
        loop("ws_churn", ws_churn, 0.5),
        ws_never_reads(),
    )
    for k, v in list(stats.items()):
        if isinstance(v, set):
            stats[k] = sorted(v)
    return stats


def upstream(port_file: str):
    """/endless: image/jpeg that never ends; /drip: a byte a second;
    anything else: a small web page."""

    async def serve(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1]
            if path == b"/endless":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0")
                chunk = b"\0" * 65536
                while True:
                    writer.write(chunk)
                    await writer.drain()
            elif path == b"/drip":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n")
                while True:
                    writer.write(b"-")
                    await writer.drain()
                    await asyncio.sleep(1)
            else:
                page = b"<html><body>login</body></html>"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        with open(port_file, "w") as f:
            f.write(str(server.sockets[0].getsockname()[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("upstream")
    u.add_argument("port_file")
    a = sub.add_parser("attack")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--pid", type=int, required=True)
    a.add_argument("--seconds", type=float, required=True)
    a.add_argument("--watched", required=True)
    a.add_argument("--results", required=True)
    args = p.parse_args()
    if args.cmd == "upstream":
        upstream(args.port_file)
        return
    # A FIFO in the watched folder, then images after it that must still be
    # published.
    fifo = os.path.join(args.watched, "trap.jpg")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    stats = asyncio.run(attack(args))
    json.dump(stats, open(args.results, "w"), indent=1)


if __name__ == "__main__":
    socket.setdefaulttimeout(10)
    sys.exit(main())
