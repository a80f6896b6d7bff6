"""Network workloads for the end-to-end tests (test/e2e/net-kit.ts runs this with /usr/bin/python3
inside a pod's network namespace and container cgroup). Standard library only, no resolver library.

Every line on stdout is one JSON object with an "event" key, flushed at once; errors go to stderr.

  server  --bind IP --port P --read N --write M [--hold signal|eof] [--connections K] [--on-signal close|shutdown]
      listen ("listening"); per connection: read exactly N bytes, write exactly M ("exchanged"), then
      --hold signal (one connection): wait for SIGUSR1 and end the connection (see --on-signal);
      --hold eof: read until the peer's EOF, then close ("closed"). --connections 0 serves forever.
  client  --connect IP --port P --send N --read M [--on-signal close|shutdown]
      connect ("connected"), write exactly N bytes, read exactly M ("exchanged"), wait for SIGUSR1.
      --on-signal close: close() ("closed") and exit.
      --on-signal shutdown: shutdown(SHUT_WR) ("shutdown"), read until the peer's EOF ("eof"), wait
      for a second SIGUSR1, close ("closed") and exit.
  connect --connect IP --port P [--timeout S]
      one blocking connect; "connected" or "error" with the errno name (ECONNREFUSED, ETIMEDOUT ...).
      No timeout by default: the kernel's own SYN retries decide (net.ipv4.tcp_syn_retries).
  dns     --server IP [--port 53] [--tcp] [--timeout S] [--count K] [--interval S] NAME:TYPE ...
      sends each query (K rounds), one at a time, each from a new socket; one "answer", "timeout" or
      "error" event per query.

SIGUSR1 is blocked from the start, so a signal sent early is kept pending, never lost.
"""

import argparse
import errno
import ipaddress
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

SO_COOKIE = 57
PATTERN = bytes(range(256)) * 256  # 64 KiB


def emit(event, **fields):
    fields = {"event": event, **fields}
    sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def addr(a):
    return f"{a[0]}:{a[1]}"


def cookie(sock):
    try:
        return struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]
    except OSError:
        return None


def errno_name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno is not None else type(e).__name__


def read_exactly(sock, n):
    got = 0
    while got < n:
        b = sock.recv(min(65536, n - got))
        if not b:
            break
        got += len(b)
    return got


def write_exactly(sock, n):
    left = n
    while left > 0:
        chunk = PATTERN[: min(left, len(PATTERN))]
        sock.sendall(chunk)
        left -= len(chunk)
    return n


def drain_to_eof(sock):
    extra = 0
    while True:
        b = sock.recv(65536)
        if not b:
            return extra
        extra += len(b)


def wait_signal():
    signal.sigwait({signal.SIGUSR1})


def end_connection(sock, mode, who):
    wait_signal()
    if mode == "shutdown":
        sock.shutdown(socket.SHUT_WR)
        emit("shutdown", who=who)
        extra = drain_to_eof(sock)
        emit("eof", who=who, extra=extra)
        wait_signal()
    sock.close()
    emit("closed", who=who)


# --- tcp ------------------------------------------------------------------------------------------


def serve_one(conn, peer, args, serial):
    try:
        read = read_exactly(conn, args.read)
        wrote = write_exactly(conn, args.write) if read == args.read else 0
        emit("exchanged", who="server", conn=serial, read=read, wrote=wrote,
             local=addr(conn.getsockname()), peer=addr(peer), cookie=cookie(conn))
        if args.hold == "signal":
            end_connection(conn, args.on_signal, "server")
        else:
            extra = drain_to_eof(conn)
            conn.close()
            emit("closed", who="server", conn=serial, extra=extra)
    except OSError as e:
        emit("error", who="server", conn=serial, code=errno_name(e), message=str(e))
        conn.close()


def cmd_server(args):
    if args.hold == "signal" and args.connections != 1:
        sys.exit("--hold signal serves exactly one connection")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.bind, args.port))
    s.listen(128)
    emit("listening", who="server", local=addr(s.getsockname()))
    serial = 0
    threads = []
    while args.connections == 0 or serial < args.connections:
        conn, peer = s.accept()
        serial += 1
        emit("accepted", who="server", conn=serial, local=addr(conn.getsockname()), peer=addr(peer))
        if args.connections == 1:
            s.close()
            serve_one(conn, peer, args, serial)
            return
        t = threading.Thread(target=serve_one, args=(conn, peer, args, serial), daemon=True)
        t.start()
        threads.append(t)
    s.close()
    for t in threads:
        t.join()


def cmd_client(args):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    started = time.monotonic()
    try:
        c.connect((args.connect, args.port))
    except OSError as e:
        emit("error", who="client", code=errno_name(e), message=str(e), ms=round((time.monotonic() - started) * 1000))
        sys.exit(1)
    emit("connected", who="client", local=addr(c.getsockname()), peer=addr(c.getpeername()), cookie=cookie(c),
         ms=round((time.monotonic() - started) * 1000, 3))
    sent = write_exactly(c, args.send)
    read = read_exactly(c, args.read)
    emit("exchanged", who="client", sent=sent, read=read, local=addr(c.getsockname()), peer=addr(c.getpeername()),
         cookie=cookie(c))
    end_connection(c, args.on_signal, "client")


def cmd_connect(args):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if args.timeout is not None:
        c.settimeout(args.timeout)
    started = time.monotonic()
    try:
        c.connect((args.connect, args.port))
    except OSError as e:
        if e.errno is None and isinstance(e, socket.timeout):
            # the application's own timeout (settimeout); the kernel's is errno ETIMEDOUT
            emit("error", code="TIMEOUT", message="timed out in the application", ms=round((time.monotonic() - started) * 1000))
            return
        emit("error", code=errno_name(e), message=str(e), ms=round((time.monotonic() - started) * 1000))
        return
    emit("connected", local=addr(c.getsockname()), peer=addr(c.getpeername()), ms=round((time.monotonic() - started) * 1000))
    c.close()


# --- dns ------------------------------------------------------------------------------------------

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "ANY": 255}
TYPE_NAMES = {v: k for k, v in QTYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not raw or len(raw) > 63:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_query(qid, name, qtype):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)


def decode_name(msg, off):
    labels = []
    jumped = False
    end = off
    for _ in range(128):
        n = msg[off]
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if not jumped:
                end = off + 2
            jumped = True
            off = ptr
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    if not jumped:
        end = off
    return ".".join(labels), end


def parse_response(msg):
    qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = decode_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        name, off = decode_name(msg, off)
        rtype, _rclass, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 1 and rdlen == 4:
            data = str(ipaddress.IPv4Address(rdata))
        elif rtype == 28 and rdlen == 16:
            data = str(ipaddress.IPv6Address(rdata))
        elif rtype in (2, 5, 12):
            data, _ = decode_name(msg, off)
        elif rtype == 16:
            parts, i = [], 0
            while i < rdlen:
                ln = rdata[i]
                parts.append(rdata[i + 1:i + 1 + ln].decode("utf-8", "replace"))
                i += 1 + ln
            data = "".join(parts)
        else:
            data = rdata.hex()
        answers.append({"name": name, "type": TYPE_NAMES.get(rtype, str(rtype)), "ttl": ttl, "data": data})
        off += rdlen
    return qid, flags, answers


def ask_udp(server, port, query, qid, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((server, port))
        local = addr(s.getsockname())
        s.send(query)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return local, None
            s.settimeout(left)
            try:
                msg = s.recv(65535)
            except socket.timeout:
                return local, None
            if len(msg) >= 12 and struct.unpack("!H", msg[:2])[0] == qid:
                return local, msg
    finally:
        s.close()


def recv_exactly(s, n):
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise ConnectionError("the server closed the connection")
        buf += b
    return buf


def ask_tcp(server, port, query, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((server, port))
        local = addr(s.getsockname())
        s.sendall(struct.pack("!H", len(query)) + query)
        try:
            (length,) = struct.unpack("!H", recv_exactly(s, 2))
            return local, recv_exactly(s, length)
        except socket.timeout:
            return local, None
    finally:
        s.close()


def cmd_dns(args):
    queries = []
    for q in args.queries:
        name, _, qtype = q.rpartition(":")
        if not name or qtype.upper() not in QTYPES:
            sys.exit(f"bad query {q!r}: want NAME:TYPE with TYPE one of {', '.join(QTYPES)}")
        queries.append((name, qtype.upper()))
    n = 0
    for round_ in range(args.count):
        for name, qtype in queries:
            if n > 0 and args.interval > 0:
                time.sleep(args.interval)
            n += 1
            qid = random.randrange(1, 65536)
            query = build_query(qid, name, QTYPES[qtype])
            started = time.monotonic()
            base = {"name": name, "type": qtype, "id": qid, "round": round_, "transport": "tcp" if args.tcp else "udp"}
            try:
                if args.tcp:
                    local, msg = ask_tcp(args.server, args.port, query, args.timeout)
                else:
                    local, msg = ask_udp(args.server, args.port, query, qid, args.timeout)
            except OSError as e:
                if e.errno is None and isinstance(e, socket.timeout):
                    emit("timeout", **base, ms=round((time.monotonic() - started) * 1000, 3))
                    continue
                emit("error", **base, code=errno_name(e), message=str(e), ms=round((time.monotonic() - started) * 1000, 3))
                continue
            ms = round((time.monotonic() - started) * 1000, 3)
            if msg is None:
                emit("timeout", **base, local=local, ms=ms)
                continue
            _, flags, answers = parse_response(msg)
            rcode = flags & 0xF
            emit("answer", **base, local=local, rcode=rcode, rcodeName=RCODES.get(rcode, str(rcode)),
                 aa=bool(flags & 0x0400), tc=bool(flags & 0x0200), answers=answers, ms=ms)


def main():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    p = argparse.ArgumentParser(prog="net_kit.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--read", type=int, default=0)
    s.add_argument("--write", type=int, default=0)
    s.add_argument("--hold", choices=["signal", "eof"], default="signal")
    s.add_argument("--connections", type=int, default=1)
    s.add_argument("--on-signal", choices=["close", "shutdown"], default="close")
    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--send", type=int, default=0)
    c.add_argument("--read", type=int, default=0)
    c.add_argument("--on-signal", choices=["close", "shutdown"], default="close")
    k = sub.add_parser("connect")
    k.add_argument("--connect", required=True)
    k.add_argument("--port", type=int, required=True)
    k.add_argument("--timeout", type=float)
    d = sub.add_parser("dns")
    d.add_argument("--server", required=True)
    d.add_argument("--port", type=int, default=53)
    d.add_argument("--tcp", action="store_true")
    d.add_argument("--timeout", type=float, default=2.0)
    d.add_argument("--count", type=int, default=1)
    d.add_argument("--interval", type=float, default=0.0)
    d.add_argument("queries", nargs="+")
    args = p.parse_args()
    {"server": cmd_server, "client": cmd_client, "connect": cmd_connect, "dns": cmd_dns}[args.cmd](args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(130)
