#!/usr/bin/env python3
"""Throughput endpoints for bench/transport (standard library only).

  pipe.py sink HOST PORT        accept one connection, count bytes until EOF; prints
                                {"listening": port} once bound, then {"bytes": N, "seconds": S}
                                (first byte to EOF, measured where the data arrives)
  pipe.py send HOST PORT BYTES  write BYTES (incompressible) then half-close and wait for the sink
"""
import json
import os
import socket
import sys
import time

CHUNK = 1 << 20


def sink(host: str, port: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(1)
    print(json.dumps({"listening": srv.getsockname()[1]}), flush=True)
    conn, _ = srv.accept()
    buf = bytearray(CHUNK)
    total, t0 = 0, None
    while True:
        n = conn.recv_into(buf)
        if not n:
            break
        if t0 is None:
            t0 = time.monotonic()
        total += n
    t1 = time.monotonic()
    conn.close()
    print(json.dumps({"bytes": total, "seconds": t1 - (t0 or t1)}), flush=True)


def send(host: str, port: int, total: int) -> None:
    conn = socket.create_connection((host, port))
    # Random bytes: no transport gets to compress its way to a better figure.
    data = memoryview(os.urandom(CHUNK))
    left = total
    while left > 0:
        left -= conn.send(data[: min(left, CHUNK)])
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)  # returns once the sink has seen EOF and closed
    conn.close()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "sink":
        sink(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
