#!/usr/bin/env python3
"""Load client for the webhook benchmark of issue 21 (standard library only).

  issue21_client.py views BASE_URL TOKEN SHARE_URL COUNT CONCURRENCY on|off
      COUNT views of SHARE_URL (JSON page, a browser's User-Agent) by CONCURRENCY keep-alive
      clients; view i carries the referrer https://v<i>.bench.invalid/ (analytics keep the
      referrer's host, and the share.viewed event carries it), so each delivery names its view.
      "on": first starts a receiver (a process of its own) on a free loopback port and creates a
      webhook for share.viewed (the caller's own links) pointing at it; waits until every view
      has been delivered (at most 180 s after the last view), then deletes the webhook. The
      receiver is the executable named by the environment variable WEBHOOK_RECEIVER, run as
      "$WEBHOOK_RECEIVER --bench COUNT" (bench/webhook_receiver.rs, built by webhook_delivery.sh:
      Rust on one thread, a fraction of this script's CPU per delivery), else this script's
      "receive"; both behave the same.
      Prints "views_seconds events_per_second p50_ms p99_ms delivered duplicates client_cpu
      receiver_cpu":
        views_seconds      time to send the COUNT views;
        events_per_second  COUNT / (last delivery - first view sent);
        p50_ms, p99_ms     per event, delivery received - its view request sent;
        duplicates         deliveries of an event already received;
        client_cpu         CPU seconds (user + system) of this script's views;
        receiver_cpu       CPU seconds of the receiver process (it is this script's only child).
      "off": only the views; prints "views_seconds 0 0 0 0 0 client_cpu 0".

  issue21_client.py receive COUNT
      The fallback receiver when WEBHOOK_RECEIVER is unset: a minimal HTTP/1.1 server on asyncio
      (~60 us of CPU per delivery; the Rust one costs a fraction). Prints its port, then, once
      COUNT distinct views have been delivered (or on SIGTERM), one line of JSON:
      {"received": {view: seconds}, "duplicates": n} with perf_counter() times (CLOCK_MONOTONIC,
      the same clock as the views' send times).
"""
import asyncio
import os
import re
import resource
import signal
import subprocess
import http.client
import json
import socket
import statistics
import sys
import threading
import time
import urllib.parse

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
PREFIX = "v"
SUFFIX = ".bench.invalid"


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def receive(count):
    received = {}
    state = {"duplicates": 0}
    done = asyncio.Event()

    def handle(body, at):
        try:
            event = json.loads(body)
        except ValueError:
            return
        if event.get("type") != "share.viewed":
            return
        host = ((event.get("data") or {}).get("visitor") or {}).get("referrer") or ""
        if not (host.startswith(PREFIX) and host.endswith(SUFFIX)):
            return
        try:
            i = int(host[len(PREFIX) : -len(SUFFIX)])
        except ValueError:
            return
        if i in received:
            state["duplicates"] += 1
        else:
            received[i] = at
            if len(received) >= count:
                done.set()

    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.buf = b""

        def data_received(self, data):
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                m = CONTENT_LENGTH.search(self.buf, 0, end + 2)
                n = int(m.group(1)) if m else 0
                if len(self.buf) < end + 4 + n:
                    return
                body = self.buf[end + 4 : end + 4 + n]
                self.buf = self.buf[end + 4 + n :]
                at = time.perf_counter()
                self.transport.write(NO_CONTENT)
                handle(body, at)

    async def serve():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, done.set)
        server = await loop.create_server(Conn, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await done.wait()
        server.close()
        print(json.dumps({"received": received, "duplicates": state["duplicates"]}), flush=True)

    asyncio.run(serve())


def api(base, token, method, path, body=None):
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    head = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        head["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=head)
    r = c.getresponse()
    out = r.read()
    c.close()
    if r.status >= 300:
        sys.exit(f"{method} {path} answered {r.status}: {out[:300]!r}")
    return json.loads(out) if out else None


def views(base, token, share_url, count, concurrency, mode):
    hook, receiver = None, None
    if mode == "on":
        rust = os.environ.get("WEBHOOK_RECEIVER")
        argv = [rust, "--bench", str(count)] if rust else [sys.executable, __file__, "receive", str(count)]
        # stdin: closing it ends the Rust receiver early (SIGTERM ends the Python one).
        receiver = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(receiver.stdout.readline())
        hook = api(base, token, "POST", "/api/webhooks/",
                   {"url": f"http://127.0.0.1:{port}/hook", "events": ["share.viewed"]})
    u = urllib.parse.urlsplit(share_url)
    sent = [0.0] * count
    next_i = iter(range(count))
    take = threading.Lock()
    failures = []

    def client():
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        while True:
            with take:
                i = next(next_i, None)
            if i is None:
                return
            sent[i] = time.perf_counter()
            c.request("GET", u.path, headers={
                "Accept": "application/json", "User-Agent": UA, "Referer": f"https://{PREFIX}{i}{SUFFIX}/"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                failures.append(r.status)
                return

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    views_s = time.perf_counter() - t0
    if failures:
        sys.exit(f"share page answered {failures[:5]}")
    me = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = me.ru_utime + me.ru_stime
    if mode != "on":
        print(f"{views_s:.3f} 0 0 0 0 0 {client_cpu:.3f} 0")
        return
    # At most 180 s more: then the receiver is told to stop and print what it has.
    timer = threading.Timer(180, receiver.stdin.close if rust else receiver.terminate)
    timer.start()
    out = receiver.stdout.read()
    receiver.wait()
    timer.cancel()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    receiver_cpu = kids.ru_utime + kids.ru_stime
    result = json.loads(out)
    got = {int(k): v for k, v in result["received"].items()}
    dupes = result["duplicates"]
    api(base, token, "DELETE", f"/api/webhooks/{hook['id']}/")
    if len(got) < count:
        sys.exit(f"only {len(got)} of {count} events delivered within 180 s of the last view")
    lat = sorted((got[i] - sent[i]) * 1000 for i in range(count))
    p99 = lat[min(len(lat) - 1, int(round(0.99 * len(lat))) - 1)]
    rate = count / (max(got.values()) - min(sent))
    print(f"{views_s:.3f} {rate:.0f} {statistics.median(lat):.1f} {p99:.1f} {len(got)} {dupes} "
          f"{client_cpu:.3f} {receiver_cpu:.3f}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "receive":
        receive(int(sys.argv[2]))
    elif len(sys.argv) == 8 and sys.argv[1] == "views":
        _, _, base, token, share_url, count, conc, mode = sys.argv
        views(base, token, share_url, int(count), int(conc), mode)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    main()
