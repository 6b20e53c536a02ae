#!/usr/bin/env python3
"""Source lines of the loaded `ipscan` XDP program that perf samples fall on.

perf cannot annotate BPF programs without a libbfd build (Debian's perf and bpftool have none).
This reads, through the bpf(2) syscall, the program's JIT image addresses (ksyms and function
lengths), its line info and the BTF strings that name the lines, and sorts the samples by line.

Usage, as root, while `ipscan-bench --profile ROW` runs (it keeps the programs loaded for 20 s):

    target/debug/ipscan-bench --profile cost_syn_scan_mode &
    sleep 7; perf record -p $! -o /tmp/perf.data -- sleep 8
    perf script -i /tmp/perf.data -F ip | sort | uniq -c > /tmp/ips.txt
    python3 bench/scripts/jit-lines.py /tmp/ips.txt 40

Of the loaded programs named `ipscan` it picks the one with the most samples in its image.
Percentages are of all the process's samples. Not part of ipscan; a developer's tool.
"""

import bisect
import collections
import ctypes
import json
import os
import struct
import subprocess
import sys

SYS_BPF = 321  # x86_64
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_BTF_GET_FD_BY_ID = 19
PROG_INFO_SIZE = 256  # struct bpf_prog_info, with room to spare

libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, len(attr))
    r = libc.syscall(SYS_BPF, cmd, buf, len(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def obj_info(fd, req):
    ib = ctypes.create_string_buffer(bytes(req), len(req))
    attr = struct.pack("IIQ", fd, len(req), ctypes.addressof(ib))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr + b"\0" * (64 - len(attr)))
    return ib.raw


def program(prog_id):
    """(image ranges, sorted (jited address, line info), BTF strings) of one program."""
    fd = bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("I", prog_id) + b"\0" * 60)
    raw = obj_info(fd, b"\0" * PROG_INFO_SIZE)
    # struct bpf_prog_info offsets (include/uapi/linux/bpf.h)
    nksyms, nflen = struct.unpack_from("II", raw, 104)
    (btf_id,) = struct.unpack_from("I", raw, 128)
    (nline,) = struct.unpack_from("I", raw, 148)
    njline, line_rec, jline_rec = struct.unpack_from("III", raw, 168)
    ksyms = ctypes.create_string_buffer(8 * nksyms)
    flens = ctypes.create_string_buffer(4 * nflen)
    lines = ctypes.create_string_buffer(line_rec * nline)
    jlines = ctypes.create_string_buffer(jline_rec * njline)
    req = bytearray(PROG_INFO_SIZE)
    struct.pack_into("II", req, 104, nksyms, nflen)
    struct.pack_into("QQ", req, 112, ctypes.addressof(ksyms), ctypes.addressof(flens))
    struct.pack_into("I", req, 148, nline)
    struct.pack_into("Q", req, 152, ctypes.addressof(lines))
    struct.pack_into("Q", req, 160, ctypes.addressof(jlines))
    struct.pack_into("III", req, 168, njline, line_rec, jline_rec)
    obj_info(fd, req)
    starts = struct.unpack("%dQ" % nksyms, ksyms.raw)
    lens = struct.unpack("%dI" % nflen, flens.raw)
    infos = [struct.unpack_from("IIII", lines.raw, i * line_rec) for i in range(nline)]
    addrs = [struct.unpack_from("Q", jlines.raw, i * jline_rec)[0] for i in range(njline)]
    bfd = bpf(BPF_BTF_GET_FD_BY_ID, struct.pack("I", btf_id) + b"\0" * 60)
    (size,) = struct.unpack_from("I", obj_info(bfd, b"\0" * 64), 8)
    btf = ctypes.create_string_buffer(size)
    req = bytearray(64)
    struct.pack_into("QI", req, 0, ctypes.addressof(btf), size)
    obj_info(bfd, req)
    hdr_len, _, _, str_off, str_len = struct.unpack_from("IIIII", btf.raw, 4)
    strings = btf.raw[hdr_len + str_off : hdr_len + str_off + str_len]
    return list(zip(starts, lens)), sorted(zip(addrs, infos)), strings


def main():
    samples = []
    for line in open(sys.argv[1]):
        count, addr = line.split()
        samples.append((int(count), int(addr, 16)))
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    progs = json.loads(subprocess.check_output(["bpftool", "-j", "prog", "show"]))
    best = None
    for p in progs:
        if p.get("name") != "ipscan":
            continue
        ranges, lines, strings = program(p["id"])
        inside = lambda a, r=ranges: any(s <= a < s + n for s, n in r)
        hits = sum(c for c, a in samples if inside(a))
        if best is None or hits > best[0]:
            best = (hits, inside, lines, strings)
    if best is None:
        sys.exit("no loaded program named ipscan")
    hits, inside, lines, strings = best
    name = lambda off: strings[off : strings.index(b"\0", off)].decode()
    addrs = [a for a, _ in lines]
    hot = collections.Counter()
    for count, addr in samples:
        i = bisect.bisect_right(addrs, addr) - 1
        if i < 0 or not inside(addr):
            continue
        _, (_, file_off, line_off, line_col) = lines[i]
        where = "%s:%d" % (os.path.basename(name(file_off)), line_col >> 10)
        hot[(where, name(line_off).strip()[:95])] += count
    total = sum(c for c, _ in samples)
    print("samples in the program: %.1f%% of the process's" % (100 * hits / total))
    for (where, text), count in hot.most_common(top):
        print("%5.1f%% %-22s %s" % (100 * count / total, where, text))


if __name__ == "__main__":
    main()
