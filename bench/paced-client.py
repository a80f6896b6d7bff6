"""A paced client for bench/l7-load.ts: `rate` requests a second for `seconds` over `conns` keep-alive
connections, one request outstanding per connection, then waits for every answer. Speaks Redis (SET,
answered by +OK) or HTTP/1.1 (GET of a static file: every answer has the same length, learnt from the
first). Prints JSON: requests sent and answered, the rate reached, and the requests due by the end
but not sent (every connection was busy: the rate was past the client).

    python3 paced-client.py redis|http HOST PORT RATE SECONDS CONNS [PATH]
"""
import json
import selectors
import socket
import sys
import time

proto, host, port, rate, seconds, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
path = sys.argv[7] if len(sys.argv) > 7 else '/index.html'

if proto == 'redis':
    request = b'*3\r\n$3\r\nSET\r\n$5\r\nbench\r\n$5\r\nhello\r\n'
else:
    request = f'GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n'.encode()

socks = [socket.create_connection((host, port)) for _ in range(conns)]
for s in socks:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def learn(s):
    """One request answered in full on a blocking socket: the length of every answer."""
    s.sendall(request)
    data = b''
    while True:
        data += s.recv(65536)
        if proto == 'redis':
            if data.endswith(b'\r\n'):
                return len(data)
            continue
        head, sep, _ = data.partition(b'\r\n\r\n')
        if not sep:
            continue
        length = 0
        for line in head.split(b'\r\n')[1:]:
            k, _, v = line.partition(b':')
            if k.strip().lower() == b'content-length':
                length = int(v)
        if len(data) >= len(head) + 4 + length:
            return len(head) + 4 + length


size = learn(socks[0])
answered = 1
sent = 1
sel = selectors.DefaultSelector()
for s in socks:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
free = list(socks)
waiting = {}
start = time.monotonic()
end = start + seconds
due_sent = 0
while True:
    now = time.monotonic()
    if now < end:
        due = int(rate * (now - start)) - due_sent
        while due > 0 and free:
            s = free.pop()
            s.send(request)
            waiting[s] = size
            due_sent += 1
            due -= 1
    elif not waiting:
        break
    elif now > end + 10:
        break
    for key, _ in sel.select(0.0005 if now < end else 0.1):
        s = key.fileobj
        data = s.recv(65536)
        if not data:
            raise SystemExit('connection closed')
        waiting[s] -= len(data)
        if waiting[s] <= 0:
            del waiting[s]
            free.append(s)
            answered += 1
elapsed = time.monotonic() - start
sent += due_sent
for s in socks:
    s.close()
print(json.dumps({'sent': sent, 'answered': answered, 'unanswered': len(waiting), 'behind': int(rate * seconds) - due_sent, 'seconds': elapsed, 'per_second': (answered - 1) / seconds}))
