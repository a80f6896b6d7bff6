"""Workloads for the L7 tests (test/servers.ts runs this with /usr/bin/python3, Debian's, which has
python3-grpcio and an ssl module linked to OpenSSL 3). No code generation: gRPC methods are generic
handlers on raw bytes.

Every line on stdout is one JSON object with an "event" key, flushed at once; errors go to stderr.

  grpc-server --host H --port P [--cert F --key F]
      serves /periscope.test.Echo/Say (answers the request's bytes, OK) and
      /periscope.test.Echo/Missing (NOT_FOUND, with a message); "listening" with the port once bound.
  grpc-client --target H:P --plan METHOD:N[,METHOD:N...] [--seed S] [--size BYTES] [--ca F --authority NAME]
      one channel, the calls of the plan in a seeded random order, one at a time; one "done" event
      with the count per "method status" ("Say OK": 40, "Missing NOT_FOUND": 10).
  http --host H --port P [--conns K] [--per-conn N] [--tls --ca F --sni NAME]
      reads requests from stdin, one JSON array [method, target, body bytes] a line; K threads each
      with a keep-alive connection (http.client) take them in turn; a connection is closed and a new
      one opened after N requests (0: never), so the client reuses file descriptors. One "response"
      event per request (method, target, status, ms), then "done" with the connections opened.
"""

import argparse
import json
import queue
import random
import ssl
import sys
import threading
import time

SERVICE = "periscope.test.Echo"


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


# --- gRPC ------------------------------------------------------------------------------------------


def grpc_server(args):
    from concurrent import futures

    import grpc

    def say(request, context):
        return request

    def missing(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such greeting")

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            # no serializers: requests and responses are the bytes themselves
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Missing": grpc.unary_unary_rpc_method_handler(missing),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    address = f"{args.host}:{args.port}"
    if args.cert:
        with open(args.key, "rb") as k, open(args.cert, "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        sys.exit(f"cannot listen on {address}")
    server.start()
    emit("listening", port=port)
    server.wait_for_termination()


def grpc_client(args):
    import grpc

    plan = []
    for part in args.plan.split(","):
        method, n = part.split(":")
        plan += [method] * int(n)
    random.Random(args.seed).shuffle(plan)
    # no proxy from the environment: the calls go where the test says
    options = [("grpc.enable_http_proxy", 0)]
    if args.ca:
        with open(args.ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        if args.authority:
            options.append(("grpc.ssl_target_name_override", args.authority))
        channel = grpc.secure_channel(args.target, creds, options=options)
    else:
        channel = grpc.insecure_channel(args.target, options=options)
    stubs = {m: channel.unary_unary(f"/{SERVICE}/{m}") for m in set(plan)}
    counts = {}
    for i, method in enumerate(plan):
        try:
            body = b"hello %d" % i
            # a message of --size bytes (Say answers with it: as long a response)
            stubs[method](body + b"." * max(0, args.size - len(body)), timeout=10)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        key = f"{method} {code}"
        counts[key] = counts.get(key, 0) + 1
    channel.close()
    emit("done", counts=counts)


# --- HTTP/1.1 --------------------------------------------------------------------------------------


def http_client(args):
    import http.client

    work = queue.Queue()
    for line in sys.stdin:
        if line.strip():
            work.put(json.loads(line))
    lock = threading.Lock()
    opened = [0]
    context = None
    if args.tls:
        context = ssl.create_default_context(cafile=args.ca)

    def connect():
        with lock:
            opened[0] += 1
        if context:
            return _tls(args, context)
        return http.client.HTTPConnection(args.host, args.port, timeout=30)

    def worker():
        conn = None
        used = 0
        while True:
            try:
                method, target, size = work.get_nowait()
            except queue.Empty:
                break
            if conn is None or (args.per_conn and used >= args.per_conn):
                if conn is not None:
                    conn.close()
                conn = connect()
                used = 0
            body = b"b" * size if size else None
            t0 = time.monotonic()
            conn.request(method, target, body=body)
            r = conn.getresponse()
            r.read()
            ms = (time.monotonic() - t0) * 1000
            used += 1
            with lock:
                emit("response", method=method, target=target, status=r.status, ms=round(ms, 3))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(args.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emit("done", connections=opened[0])


def _tls(args, context):
    import http.client

    class Conn(http.client.HTTPSConnection):
        # the certificate names `sni`; the socket goes to host:port
        def connect(self):
            http.client.HTTPConnection.connect(self)
            self.sock = context.wrap_socket(self.sock, server_hostname=args.sni)

    return Conn(args.host, args.port, context=context, timeout=30)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("grpc-server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert")
    s.add_argument("--key")
    c = sub.add_parser("grpc-client")
    c.add_argument("--target", required=True)
    c.add_argument("--plan", required=True)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--size", type=int, default=0)
    c.add_argument("--ca")
    c.add_argument("--authority")
    h = sub.add_parser("http")
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--conns", type=int, default=1)
    h.add_argument("--per-conn", type=int, default=0)
    h.add_argument("--tls", action="store_true")
    h.add_argument("--ca")
    h.add_argument("--sni", default="localhost")
    args = p.parse_args()
    {"grpc-server": grpc_server, "grpc-client": grpc_client, "http": http_client}[args.cmd](args)


if __name__ == "__main__":
    main()
