#!/usr/bin/env python3
"""spotlift lab workload: a process whose state proves continuity across a live migration.

It allocates and touches --mem-mib MiB filled with a deterministic pattern, dirties every page of the
first --hot-mib MiB ("hot" region) on every tick, and verifies the memory it did not change ("cold"
region) against checksums taken at startup. Each tick it sends one UDP heartbeat (JSON) to --udp:

    {"name": str, "seq": int, "counter": int, "ok": bool, "mem_mib": int, "pid": int}

- `seq` goes up by exactly 1 per datagram sent, so a gap at the receiver means a lost datagram and a
  reset (seq back to 1) means the process was restarted instead of migrated.
- `counter` counts ticks; it lives in the process's heap, so it continuing proves memory came along.
- `ok` turns false forever after any failed check (an `error` field then says which one).
- `pid` is the host pid (read through the host's /proc, so it changes when the process is restored
  elsewhere, while the pid inside its own pid namespace stays 1).

SIGUSR1 flips one byte of the buffer (a cold page, or a hot one outside the stamps if there is no cold
region): a self-test hook that proves the checks notice a bad page, before or after a migration.

Constraints that come from CRIU:
- ONE long-lived, unconnected UDP socket (autobound to 0.0.0.0:port on the first sendto). CRIU
  restores it in the destination's network namespace; because it is neither bound to nor connected
  from a specific address, the kernel picks the new node's address as source after the restore.
- Nothing is written to stdout/stderr after startup (CRIU cannot restore the ssh pipes a remote
  starter may have left there); diagnostics go to --log only.
- Only the standard library, so the same script runs on any node with python3.
"""
import argparse
import json
import os
import random
import signal
import socket
import sys
import time
import zlib
from array import array

MIB = 1 << 20
PAGE = 4096
QWORDS_PER_PAGE = PAGE // 8
# Cold-region bytes checked per tick (crc32 runs at ~3 GB/s here, so 64 MiB is ~20 ms). Workloads up
# to this size have their whole cold region checked every tick; bigger ones are checked in a rolling
# window, a full pass every ceil(cold / budget) ticks.
DEFAULT_VERIFY_MIB_PER_TICK = 64
# Every this many ticks (and on the first tick after a long pause, e.g. a migration) the hot region
# is compared byte for byte with what it must hold.
FULL_CHECK_EVERY = 10


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--mem-mib", type=int, default=64)
    p.add_argument("--hot-mib", type=int, default=None, help="default: min(16, mem)")
    p.add_argument("--udp", required=True, help="heartbeat target HOST:PORT, e.g. 10.77.0.1:40000")
    p.add_argument("--interval-ms", type=int, default=100)
    p.add_argument("--log", default=None, help="append diagnostics here (never stdout/stderr)")
    p.add_argument("--verify-mib-per-tick", type=int, default=DEFAULT_VERIFY_MIB_PER_TICK)
    p.add_argument("--seed", type=int, default=0x5107)
    p.add_argument("--data-file", action="append", default=[],
                   help="append one line per tick to this file (created, truncated) and check the whole "
                        "file on every full check: proves a file the process holds open came along")
    p.add_argument("--ghost-file", default=None,
                   help="create this file with --ghost-kib KiB of known content, keep it open, unlink it, "
                        "and check its content through the open fd (CRIU's ghost files)")
    p.add_argument("--ghost-kib", type=int, default=512)
    p.add_argument("--cwd", default=None, help="working directory (must exist)")
    p.add_argument("--tcp-listen", type=int, default=None,
                   help="also hold a TCP listener on 0.0.0.0:PORT (never accepts; forensic inspection finds it)")
    a = p.parse_args(argv)
    if a.mem_mib < 1:
        p.error("--mem-mib must be >= 1")
    if a.hot_mib is None:
        a.hot_mib = min(16, a.mem_mib)
    if not 0 <= a.hot_mib <= a.mem_mib:
        p.error("--hot-mib must be between 0 and --mem-mib")
    if a.interval_ms < 1:
        p.error("--interval-ms must be >= 1")
    host, sep, port = a.udp.rpartition(":")
    if not sep or not host or not port.isdigit():
        p.error("--udp must be HOST:PORT")
    a.udp_addr = (host, int(port))
    return a


class Log:
    """Appends lines to a file, or nothing. Never raises: a full disk must not kill the workload."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1) if path else None

    def __call__(self, msg):
        if self.f is None:
            return
        try:
            self.f.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
        except OSError:
            pass


class Pattern:
    """Deterministic content: one pseudo-random MiB block, rotated by a different amount for each MiB,
    so every MiB (and practically every page) differs and a misplaced or zeroed page changes a crc.
    Any MiB can be regenerated on demand, so no reference copy of the buffer is kept (it would be
    memory CRIU has to move too)."""

    def __init__(self, seed):
        self.block = memoryview(random.Random(seed).randbytes(MIB))

    def write_chunk(self, dst, i):
        """Write MiB number i of the pattern into dst (a 1 MiB writable buffer)."""
        k = (i * 67448) % MIB
        dst[:MIB - k] = self.block[k:]
        dst[MIB - k:MIB] = self.block[:k]


def main(argv):
    a = parse_args(argv)
    # Whatever the starter leaked beyond stdio (a shell's saved fds, a runner's pipes) may live on a
    # mount of the host's namespace that CRIU cannot find in the node's ("Can't lookup mount").
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    log = Log(a.log)
    # First thing: SIGUSR1's default action would kill the process.
    corrupt = []  # set by SIGUSR1; acted on in the loop, not in the handler
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: corrupt.append(True))
    mem = a.mem_mib * MIB
    hot = a.hot_mib * MIB
    hot_pages = hot // PAGE

    if a.cwd:
        os.chdir(a.cwd)
    pattern = Pattern(a.seed)
    files = FileChecks(a, pattern)
    buf = bytearray(mem)  # one anonymous mapping; filling it touches every page
    view = memoryview(buf)
    for i in range(a.mem_mib):
        pattern.write_chunk(view[i * MIB:(i + 1) * MIB], i)
    qwords = view.cast("Q")
    # Per-MiB crc32 of the cold region, so any window of it can be checked on its own.
    cold_chunks = list(range(a.hot_mib, a.mem_mib))
    cold_crc = {i: zlib.crc32(view[i * MIB:(i + 1) * MIB]) for i in cold_chunks}
    scratch = bytearray(MIB)  # expected content of one hot MiB, rebuilt for each full check
    scratch_view = memoryview(scratch)
    scratch_stamps = scratch_view.cast("Q")[0::QWORDS_PER_PAGE]
    per_tick = max(1, a.verify_mib_per_tick)

    def stamps():  # the first 8 bytes of every hot page
        return qwords[0:hot // 8:QWORDS_PER_PAGE]

    def stamp_array(value):
        return array("Q", [value]) * hot_pages

    counter = 0
    seq = 0
    ok = True
    error = None
    cursor = 0  # next cold chunk (index into cold_chunks) to verify
    stamps()[:] = stamp_array(counter)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the one socket; never re-created
    listener = None
    if a.tcp_listen is not None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", a.tcp_listen))
        listener.listen(4)
    interval = a.interval_ms / 1000.0
    log("start name=%s mem_mib=%d hot_mib=%d target=%s:%d pid=%d" % (
        a.name, a.mem_mib, a.hot_mib, a.udp_addr[0], a.udp_addr[1], os.getpid()))

    def fail(msg):
        nonlocal ok, error
        if ok:
            ok = False
            error = msg
            log("CHECK FAILED: " + msg)

    def check_hot_full():
        stamp = array("Q", [counter]) * (MIB // PAGE)
        for i in range(a.hot_mib):
            pattern.write_chunk(scratch_view, i)
            scratch_stamps[:] = stamp
            if view[i * MIB:(i + 1) * MIB].tobytes() != scratch:
                fail("hot MiB %d differs from its expected content at counter %d" % (i, counter))
                return

    def check_cold(chunks):
        for i in chunks:
            if zlib.crc32(view[i * MIB:(i + 1) * MIB]) != cold_crc[i]:
                fail("cold MiB %d has a bad checksum" % i)
                return

    next_tick = time.monotonic()
    last_tick = next_tick
    while True:
        if corrupt:
            corrupt.clear()
            at = (a.mem_mib - 1) * MIB + 12345 if cold_chunks else 100
            buf[at] ^= 0xFF
            log("SIGUSR1: flipped byte %d" % at)
        now = time.monotonic()
        if now < next_tick:
            time.sleep(next_tick - now)
            now = time.monotonic()
        paused = now - last_tick > 5 * interval  # frozen (migration) or starved: check everything
        last_tick = now

        if ok:
            # Hot region: every page must still carry the previous tick's stamp, then gets the new one.
            if stamps().tobytes() != stamp_array(counter).tobytes():
                fail("hot page stamps are not %d" % counter)
            if paused or (counter % FULL_CHECK_EVERY == 0):
                check_hot_full()
            if paused or (counter % FULL_CHECK_EVERY == 0):
                problem = files.check()
                if problem:
                    fail(problem)
            if paused or len(cold_chunks) <= per_tick:
                check_cold(cold_chunks)
            else:
                window = [cold_chunks[(cursor + j) % len(cold_chunks)] for j in range(per_tick)]
                cursor = (cursor + per_tick) % len(cold_chunks)
                check_cold(window)
        counter += 1
        files.tick(counter)
        if hot_pages:
            stamps()[:] = stamp_array(counter)

        msg = {"name": a.name, "seq": seq + 1, "counter": counter, "ok": ok, "mem_mib": a.mem_mib,
               "pid": host_pid()}
        if not ok:
            msg["error"] = error
        try:
            sock.sendto(json.dumps(msg, separators=(",", ":")).encode(), a.udp_addr)
            seq += 1  # only a datagram that left counts, so seq has no gaps by construction
        except OSError as e:  # e.g. no route for a moment; try again next tick
            log("sendto failed: %s" % e)

        # Do not try to catch up after a freeze: one heartbeat per tick from now on.
        next_tick = max(next_tick + interval, time.monotonic())


class FileChecks:
    """Files the process holds open, checked through its own fds.

    Data files get one fixed-width line per tick; the file must hold exactly the lines written so far
    (a restore with a stale or missing copy shows up as a short file or wrong lines). The ghost file is
    unlinked right after it is written, so only CRIU's ghost-file image can bring it along."""

    LINE = 13  # "%012d\n"

    def __init__(self, a, pattern):
        self.data = [(p, os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644))
                     for p in a.data_file]
        self.lines = 0
        self.ghost = None
        if a.ghost_file:
            self.ghost_bytes = bytes(pattern.block[:a.ghost_kib * 1024])
            with open(a.ghost_file, "wb") as f:
                f.write(self.ghost_bytes)
            self.ghost = os.open(a.ghost_file, os.O_RDONLY)
            os.unlink(a.ghost_file)

    def tick(self, counter):
        for _, fd in self.data:
            os.write(fd, b"%012d\n" % counter)
        self.lines = counter

    def check(self):
        for path, fd in self.data:
            size = os.fstat(fd).st_size
            if size != self.lines * self.LINE:
                return "data file %s has %d bytes, expected %d" % (path, size, self.lines * self.LINE)
            content = os.pread(fd, size, 0)
            expected = b"".join(b"%012d\n" % i for i in range(1, self.lines + 1))
            if content != expected:
                return "data file %s does not hold lines 1..%d" % (path, self.lines)
        if self.ghost is not None and os.pread(self.ghost, len(self.ghost_bytes), 0) != self.ghost_bytes:
            return "ghost file content differs"
        return None


def host_pid():
    """Host pid via the host's /proc (the workload runs without its own /proc mount)."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        pass
