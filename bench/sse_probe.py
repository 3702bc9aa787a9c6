#!/usr/bin/env python3
"""Measures the delay the app adds between an LLM token and its SSE event.

One process plays both ends, so both use the same monotonic clock:

- a fake OpenAI-compatible server on 127.0.0.1 that answers
  `POST /v1/chat/completions` (stream: true) with numbered tokens, one every
  --interval-ms, noting the moment just before each one is written to the socket;
- once the app's stream URL appears in --target-file, a client of that
  `text/event-stream` that notes the moment each `chunk` event arrives.

For every token, delay = arrival of the first event that completes it minus
its departure. Prints the figures as one JSON object on stdout.

Standard library only:
  python3 sse_probe.py --port-file FILE --target-file FILE [--tokens N]
"""

import argparse
import http.client
import http.server
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse

SENT = {}  # token index -> time.monotonic() once written
SENT_LOCK = threading.Lock()
SETTINGS = {"tokens": 60, "interval": 0.02}


def token(i):
    return "w%03d " % i


def completion_chunk(delta, finish):
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "bench-model",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None,
                     "finish_reason": finish}],
    }


class FakeLlm(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.event(completion_chunk({"role": "assistant", "content": ""}, None))
        for i in range(SETTINGS["tokens"]):
            if i:
                time.sleep(SETTINGS["interval"])
            with SENT_LOCK:
                SENT.setdefault(i, time.monotonic())
            self.event(completion_chunk({"content": token(i)}, None))
        self.event(completion_chunk({}, "stop"))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def event(self, body):
        self.wfile.write(b"data: " + json.dumps(body).encode() + b"\n\n")
        self.wfile.flush()

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def wait_for_target(path, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                url = f.read().strip()
            if url:
                return url
        time.sleep(0.05)
    sys.exit("sse_probe: no stream URL in %s after %d s" % (path, limit))


def read_direct(port, limit):
    """The (arrival time, content) of each token read from the fake itself."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=limit)
    body = json.dumps({"model": "bench-model", "stream": True, "messages": []})
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    arrivals = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = response.readline()
        now = time.monotonic()
        if not line or line.strip() == b"data: [DONE]":
            break
        if line.startswith(b"data: "):
            choice = json.loads(line[6:])["choices"][0]
            content = choice["delta"].get("content")
            if content:
                arrivals.append((now, content))
    conn.close()
    return arrivals


def read_stream(url, limit):
    """The (arrival time, data) of each chunk event, until the end event."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=limit)
    conn.request("GET", parts.path, headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    if response.status != 200:
        sys.exit("sse_probe: the stream answered %d" % response.status)
    arrivals, name, data = [], None, []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = response.readline()
        now = time.monotonic()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line == "":
            if name == "chunk":
                arrivals.append((now, "\n".join(data)))
            if name == "end":
                break
            name, data = None, []
    conn.close()
    return arrivals


def delays(arrivals):
    """Seconds from each token's departure to the event that completed it."""
    received, found, result = "", 0, []
    for arrived, text in arrivals:
        received += text
        while found < SETTINGS["tokens"] and token(found) in received:
            result.append(arrived - SENT[found])
            found += 1
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--target-file", required=True)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--interval-ms", type=float, default=20)
    parser.add_argument("--timeout", type=int, default=60)
    args = parser.parse_args()
    SETTINGS["tokens"] = args.tokens
    SETTINGS["interval"] = args.interval_ms / 1000

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLlm)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(args.port_file + ".part", "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(args.port_file + ".part", args.port_file)

    url = wait_for_target(args.target_file, args.timeout)
    # Baseline: the same tokens read straight from the fake, without the app.
    direct = figures(read_direct(server.server_address[1], args.timeout))
    SENT.clear()
    through_app = figures(read_stream(url, args.timeout))
    print(json.dumps({"tokens": args.tokens, "interval_ms": args.interval_ms,
                      "direct": direct, "through_app": through_app}))
    server.shutdown()


def figures(arrivals):
    measured = sorted(delays(arrivals))
    if not measured:
        sys.exit("sse_probe: no token came through (%d events)" % len(arrivals))
    ms = [d * 1000 for d in measured]
    rank = max(1, -(-len(ms) * 99 // 100))
    return {
        "matched": len(ms),
        "events": len(arrivals),
        "median_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[rank - 1], 3),
        "max_ms": round(ms[-1], 3),
    }


if __name__ == "__main__":
    main()
