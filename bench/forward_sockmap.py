#!/usr/bin/env python3
"""One TCP stream through a relay whose sockets are joined in the kernel by a BPF sockmap,
beside direct loopback, in one run (not a test; the measurement behind the forwarder's design):

    sudo python3 bench/forward_sockmap.py

The relay listens on the host's loopback, connects each accepted socket to the iperf3 server,
puts both sockets in a SOCKHASH keyed by socket cookie, and an SK_SKB verdict program
redirects what each socket receives to its peer's egress (no copy through user space, no
splice, no relay process on the data path: the kernel's sk_psock work item sends). Loaded
with the raw bpf(2) syscall. Prints the medians of what iperf3's sender wrote and what its
receiver got: the difference is data the redirect queued in the kernel, unbounded by the
sockets' buffers, and discarded when they close (9 rounds of 3 s queued several GB at once here: keep runs short on a
shared machine). Environment: OZ_FWD_ROUNDS (default 3), OZ_FWD_SECONDS (default 1).
"""

import ctypes
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

ROUNDS = int(os.environ.get("OZ_FWD_ROUNDS", "3"))
SECONDS = int(os.environ.get("OZ_FWD_SECONDS", "1"))
SYS_BPF = 321  # x86_64
BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM, BPF_PROG_LOAD, BPF_PROG_ATTACH = 0, 2, 5, 8
BPF_MAP_TYPE_SOCKHASH, BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_VERDICT = 18, 14, 38
HELPER_GET_SOCKET_COOKIE, HELPER_SK_REDIRECT_HASH = 46, 72
SO_COOKIE = 57

libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, 128)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf command {cmd}: {os.strerror(e)}")
    return r


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def load(map_fd):
    """The verdict program: redirect to the socket stored under this socket's cookie; SK_PASS
    (normal delivery) when there is none."""
    prog = b"".join([
        insn(0xbf, 6, 1),                                # r6 = skb
        insn(0x85, imm=HELPER_GET_SOCKET_COOKIE),        # r0 = cookie(skb->sk)
        insn(0x7b, 10, 0, -8),                           # *(u64 *)(fp - 8) = r0
        insn(0xbf, 1, 6),                                # r1 = skb
        insn(0x18, 2, 1, imm=map_fd), insn(0),           # r2 = map
        insn(0xbf, 3, 10), insn(0x07, 3, imm=-8),        # r3 = fp - 8
        insn(0xb7, 4, imm=0),                            # r4 = 0 (egress)
        insn(0x85, imm=HELPER_SK_REDIRECT_HASH),
        insn(0xb7, 0, imm=1),                            # SK_PASS
        insn(0x95),
    ])
    lic, code, log = ctypes.create_string_buffer(b"GPL"), ctypes.create_string_buffer(prog), ctypes.create_string_buffer(65536)
    try:
        return bpf(BPF_PROG_LOAD, struct.pack("<IIQQIIQ", BPF_PROG_TYPE_SK_SKB, len(prog) // 8, ctypes.addressof(code),
                                              ctypes.addressof(lic), 1, len(log), ctypes.addressof(log)))
    except OSError as e:
        sys.exit(f"forward_sockmap.py: {e}\n{log.value.decode()}")


def cookie(s):
    return struct.unpack("<Q", s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]


def put(map_fd, key, fd):
    k, v = ctypes.create_string_buffer(struct.pack("<Q", key)), ctypes.create_string_buffer(struct.pack("<I", fd))
    bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0))


def relay(map_fd, listener, dport):
    def serve(a):
        b = socket.create_connection(("127.0.0.1", dport))
        put(map_fd, cookie(a), b.fileno())
        put(map_fd, cookie(b), a.fileno())
        # What arrived before the sockets joined the map (iperf3's cookie) is still queued.
        a.setblocking(False)
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except BlockingIOError:
            pass
        p = select.poll()
        p.register(a, select.POLLRDHUP)
        p.register(b, select.POLLRDHUP)
        p.poll()
        time.sleep(0.2)
        a.close()
        b.close()

    while True:
        a, _ = listener.accept()
        threading.Thread(target=serve, args=(a,), daemon=True).start()


def iperf(port):
    """(sent, received) Gbit/s of one iperf3 run; the server may still be closing the last test."""
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(SECONDS), "-J"]
    for _ in range(5):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 30)
        try:
            end = json.loads(out.stdout)["end"]
            return end["sum_sent"]["bits_per_second"] / 1e9, end["sum_received"]["bits_per_second"] / 1e9
        except (ValueError, KeyError):
            time.sleep(0.5)
    sys.exit(f"forward_sockmap.py: {' '.join(cmd)}: {out.stdout[-400:]} {out.stderr[-400:]}")


def main():
    with open("/proc/loadavg") as f:
        load_before = " ".join(f.read().split()[:3])
    map_fd = bpf(BPF_MAP_CREATE, struct.pack("<IIIII", BPF_MAP_TYPE_SOCKHASH, 8, 4, 256, 0))
    bpf(BPF_PROG_ATTACH, struct.pack("<IIII", map_fd, load(map_fd), BPF_SK_SKB_VERDICT, 0))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dport = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen(["iperf3", "-s", "-p", str(dport)], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        threading.Thread(target=relay, args=(map_fd, listener, dport), daemon=True).start()
        res = {"direct loopback": [], "sockmap relay (SK_SKB redirect)": []}
        for _ in range(ROUNDS):
            res["direct loopback"].append(iperf(dport))
            res["sockmap relay (SK_SKB redirect)"].append(iperf(listener.getsockname()[1]))
    finally:
        server.terminate()
        server.wait()
    direct = statistics.median(r for _, r in res["direct loopback"])
    print(f"One TCP stream, iperf3 -t {SECONDS}, {ROUNDS} rounds, medians (Gbit/s):")
    for m, runs in res.items():
        sent, got = statistics.median(s for s, _ in runs), statistics.median(r for _, r in runs)
        print(f"  {m:34s} received {got:6.2f} ({got / direct:.2f} of direct)  sent {sent:6.2f}")
    print(f"  ({os.cpu_count()} CPUs; load average before the run: {load_before})")


if __name__ == "__main__":
    main()
