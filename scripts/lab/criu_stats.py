#!/usr/bin/env python3
"""Print CRIU's own stats (stats-dump / stats-restore in an images dir) as one JSON object.

    criu_stats.py DIR [DIR...]     # first stats-dump and stats-restore found in the DIRs

Standard library only (no crit/pycriu on the nodes): the files are small CRIU images, a service
magic and a stats magic (two little-endian u32) then one u32-length-prefixed protobuf StatsEntry
(criu/images/stats.proto). Times in the files are microseconds; printed as milliseconds.
"""
import json
import os
import struct
import sys

IMG_SERVICE_MAGIC = 0x55105940
IMG_COMMON_MAGIC = 0x54564319
STATS_MAGIC = 0x57093306

DUMP_FIELDS = {1: "freezingMs", 2: "frozenMs", 3: "memdumpMs", 4: "memwriteMs", 5: "pagesScanned",
               6: "pagesSkippedParent", 7: "pagesWritten", 8: "irmapResolveMs", 9: "pagesLazy",
               10: "pagePipes", 11: "pagePipeBufs", 12: "shpagesScanned", 13: "shpagesSkippedParent",
               14: "shpagesWritten"}
RESTORE_FIELDS = {1: "pagesCompared", 2: "pagesSkippedCow", 3: "forkingMs", 4: "restoreTimeMs",
                  5: "pagesRestored"}
TIME_KEYS = {"freezingMs", "frozenMs", "memdumpMs", "memwriteMs", "irmapResolveMs", "forkingMs",
             "restoreTimeMs"}


def varint(buf, i):
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf):
    """Yield (field number, value) of a protobuf message; value is int or bytes."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = struct.unpack_from("<I", buf, i)[0], i + 4
        elif wt == 1:
            v, i = struct.unpack_from("<Q", buf, i)[0], i + 8
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, v


def read_stats(path):
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    magic = struct.unpack_from("<I", data, off)[0]
    off += 4
    if magic in (IMG_SERVICE_MAGIC, IMG_COMMON_MAGIC):
        magic = struct.unpack_from("<I", data, off)[0]
        off += 4
    if magic != STATS_MAGIC:
        raise ValueError("%s: not a CRIU stats image (magic %#x)" % (path, magic))
    size = struct.unpack_from("<I", data, off)[0]
    off += 4
    entry = data[off:off + size]
    out = {}
    for num, sub in fields(entry):
        names = DUMP_FIELDS if num == 1 else RESTORE_FIELDS if num == 2 else None
        if names is None or not isinstance(sub, bytes):
            continue
        for k, v in fields(sub):
            name = names.get(k)
            if name is not None and isinstance(v, int):
                out[name] = round(v / 1000.0, 3) if name in TIME_KEYS else v
    return out


def main(dirs):
    result = {}
    for kind in ("stats-dump", "stats-restore"):
        for d in dirs:
            p = os.path.join(d, kind)
            if os.path.exists(p):
                result.update(read_stats(p))
                break
    json.dump(result, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
