#!/usr/bin/env python3
"""Load clients for the issue 20 benchmarks (standard library only).

  issue20_client.py tus URL TOKEN FILE CHUNK_BYTES
      One tus 1.0.0 upload of FILE to URL/api/v3/uploads/ in PATCHes of CHUNK_BYTES on one
      keep-alive connection; prints "seconds asset_path".
  issue20_client.py burst URL PATH TOKEN_OR_- FILE_PREFIX CONCURRENCY PER_CLIENT
      CONCURRENCY clients each POST PER_CLIENT multipart files (FILE_PREFIX-<client>-<i>.pdf) to
      URL+PATH at once (a barrier starts them together); prints one line per request:
      "seconds status", then exits 1 if any status is not 201.
"""
import base64
import http.client
import os
import sys
import threading
import time
import urllib.parse


def conn_for(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def tus(url, token, path, chunk):
    size = os.path.getsize(path)
    c = conn_for(url)
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("filename", os.path.basename(path)), ("title", "bench tus"), ("content_type", "application/pdf"))
    )
    head = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    c.request("POST", "/api/v3/uploads/", headers={**head, "Upload-Length": str(size), "Upload-Metadata": meta})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        sys.exit(f"tus create answered {r.status}")
    location = urllib.parse.urlsplit(r.getheader("Location")).path
    offset, asset = 0, None
    with open(path, "rb") as f:
        while offset < size:
            data = f.read(chunk)
            c.request(
                "PATCH",
                location,
                body=data,
                headers={**head, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
            )
            r = c.getresponse()
            body = r.read()
            if r.status != 204:
                sys.exit(f"tus PATCH at {offset} answered {r.status}: {body[:300]!r}")
            offset = int(r.getheader("Upload-Offset"))
            asset = r.getheader("Vitrine-Asset") or asset
    print(f"{time.perf_counter() - t0:.4f} {asset}")


def multipart(path, fields):
    boundary = "vitrinebench" + os.urandom(8).hex()
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: application/pdf\r\n\r\n".encode() + data + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def burst(url, path, token, prefix, concurrency, per_client):
    barrier = threading.Barrier(concurrency)
    results = []
    lock = threading.Lock()

    def client(n):
        bodies = [
            multipart(f"{prefix}-{n}-{i}.pdf", {"uploader_name": f"Bench {n}", "uploader_email": f"b{n}@example.com"})
            for i in range(per_client)
        ]
        c = conn_for(url)
        barrier.wait()
        for body, ctype in bodies:
            headers = {"Content-Type": ctype, "Accept": "application/json"}
            if token != "-":
                headers["Authorization"] = f"Bearer {token}"
            t0 = time.perf_counter()
            c.request("POST", path, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            with lock:
                results.append((time.perf_counter() - t0, r.status))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = 0
    for secs, status in results:
        print(f"{secs:.5f} {status}")
        bad += status != 201
    sys.exit(1 if bad or len(results) != concurrency * per_client else 0)


if __name__ == "__main__":
    if sys.argv[1] == "tus":
        tus(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == "burst":
        burst(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
    else:
        sys.exit(__doc__)
