#!/usr/bin/env python3
"""A tiny stand-in for VirusTotal API v3, for benchmarks only.

It answers `GET /api/v3/files/{hash}` for any hash with one realistic file
report (about seventy engines), built once at start-up around the hash asked
for. It checks nothing (no key, no quota). Every other request gets
VirusTotal's `NotFoundError` shape, except with --unknown-files: then a hash is
unknown (404) until an upload has arrived after it was first asked for, and
the upload path works too (`GET /files/upload_url`, the POST of the file to
that URL or to `/files`, read and thrown away, and `GET /analyses/{id}`, at
once completed), so that a full scan can be followed to its end.

It listens on 127.0.0.1 only, on the port given or on a free one, and writes
the port it got to `--port-file` so a script can find it.

Standard library only:
  python3 fake_vt.py --port-file FILE [--port N] [--unknown-files]
"""

import argparse
import hashlib
import http.server
import json
import os
import sys
import threading
import time

# Engines as VirusTotal names them in `last_analysis_results`, with the
# category each one reports for the benchmark file and, when it detects
# something, the label it gives. Seventy-two engines, as in recent reports.
MALICIOUS = {
    "Bkav": "W32.AIDetectMalware",
    "Elastic": "malicious (high confidence)",
    "Cynet": "Malicious (score: 100)",
    "CrowdStrike": "win/malicious_confidence_90% (W)",
    "Sophos": "Mal/Generic-S",
    "Microsoft": "Trojan:Win32/Wacatac.B!ml",
    "Kaspersky": "HEUR:Trojan.Win32.Generic",
    "ESET-NOD32": "a variant of Win32/Kryptik.HUNB",
    "DeepInstinct": "MALICIOUS",
    "SentinelOne": "Static AI - Malicious PE",
}
SUSPICIOUS = {
    "Zillya": "Trojan.Generic.Win32.1",
    "MaxSecure": "Trojan.Malware.300983.susgen",
}
UNDETECTED = [
    "Lionic", "MicroWorld-eScan", "ClamAV", "CMC", "CAT-QuickHeal", "ALYac",
    "Malwarebytes", "VIPRE", "K7AntiVirus", "BitDefender", "K7GW", "Arcabit",
    "Baidu", "VirIT", "Symantec", "TrendMicro-HouseCall", "Avast", "Tencent",
    "Emsisoft", "F-Secure", "DrWeb", "TrendMicro", "McAfeeD", "Trapmine",
    "FireEye", "GData", "Jiangmin", "Webroot", "Google", "Avira", "Antiy-AVL",
    "Kingsoft", "Gridinsoft", "Xcitium", "ViRobot", "ZoneAlarm", "AhnLab-V3",
    "Acronis", "McAfee", "TACHYON", "VBA32", "Zoner", "Rising", "Yandex",
    "Ikarus", "Sangfor", "Fortinet", "AVG", "Panda", "alibabacloud",
    "Skyhigh", "Varist", "huorong", "NANO-Antivirus",
]
TYPE_UNSUPPORTED = ["Avast-Mobile", "SymantecMobileInsight", "BitDefenderFalx",
                    "Trustlook"]
TIMEOUT = ["SUPERAntiSpyware", "Paloalto"]


def engine_results():
    """The per-engine map and the stats that sum it up."""
    results = {}
    stats = {
        "malicious": 0, "suspicious": 0, "undetected": 0, "harmless": 0,
        "timeout": 0, "confirmed-timeout": 0, "failure": 0,
        "type-unsupported": 0,
    }

    def add(name, category, result):
        results[name] = {
            "method": "blacklist",
            "engine_name": name,
            "engine_version": "1.0.%d" % (len(results) + 1),
            "engine_update": "20250101",
            "category": category,
            "result": result,
        }
        stats[category] += 1

    for name, label in MALICIOUS.items():
        add(name, "malicious", label)
    for name, label in SUSPICIOUS.items():
        add(name, "suspicious", label)
    for name in UNDETECTED:
        add(name, "undetected", None)
    for name in TYPE_UNSUPPORTED:
        add(name, "type-unsupported", None)
    for name in TIMEOUT:
        add(name, "timeout", None)
    return results, stats


RESULTS, STATS = engine_results()
NOW = int(time.time())

# With --unknown-files: hashes asked for since the last upload, and hashes
# known because an upload arrived after they were asked for.
UNKNOWN_FILES = False
ASKED, KNOWN = set(), set()
LOCK = threading.Lock()


def derived(hash_asked, algorithm):
    """A stable hex digest of another kind, for the hashes nobody asked with."""
    return hashlib.new(algorithm, hash_asked.encode()).hexdigest()


def file_report(hash_asked, host):
    """A file object shaped like VirusTotal's, keyed by the hash asked for."""
    hash_asked = hash_asked.lower()
    sha256 = hash_asked if len(hash_asked) == 64 else derived(hash_asked, "sha256")
    sha1 = hash_asked if len(hash_asked) == 40 else derived(hash_asked, "sha1")
    md5 = hash_asked if len(hash_asked) == 32 else derived(hash_asked, "md5")
    names = ["invoice_2025.exe", "setup.exe", "payload.bin", sha256 + ".exe"]
    return {
        "data": {
            "type": "file",
            "id": sha256,
            "links": {"self": "http://%s/api/v3/files/%s" % (host, sha256)},
            "attributes": {
                "md5": md5,
                "sha1": sha1,
                "sha256": sha256,
                "size": 734_208,
                "type_description": "Win32 EXE",
                "type_tag": "peexe",
                "type_tags": ["executable", "windows", "win32", "pe", "peexe"],
                "magic": "PE32 executable (GUI) Intel 80386, for MS Windows",
                "names": names,
                "meaningful_name": names[0],
                "tags": ["peexe", "detect-debug-environment", "long-sleeps"],
                "first_submission_date": NOW - 30 * 86400,
                "last_submission_date": NOW - 86400,
                "last_analysis_date": NOW - 3600,
                "times_submitted": 7,
                "unique_sources": 5,
                "reputation": -12,
                "total_votes": {"harmless": 0, "malicious": 3},
                "last_analysis_stats": STATS,
                "last_analysis_results": RESULTS,
                "popular_threat_classification": {
                    "suggested_threat_label": "trojan.kryptik/wacatac",
                    "popular_threat_category": [{"value": "trojan", "count": 9}],
                    "popular_threat_name": [
                        {"value": "kryptik", "count": 3},
                        {"value": "wacatac", "count": 2},
                    ],
                },
            },
        }
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        host = self.headers.get("Host", "127.0.0.1")
        path = self.path.split("?", 1)[0]
        files, analyses = "/api/v3/files/", "/api/v3/analyses/"
        if UNKNOWN_FILES and path == files + "upload_url":
            self.answer(200, {"data": "http://%s/upload/%d" % (host, time.time_ns())})
        elif path.startswith(files) and "/" not in path[len(files):]:
            wanted = path[len(files):].lower()
            if self.known(wanted):
                self.answer(200, file_report(wanted, host))
            else:
                self.not_found()
        elif UNKNOWN_FILES and path.startswith(analyses):
            self.answer(200, {"data": {
                "type": "analysis", "id": path[len(analyses):],
                "attributes": {"status": "completed", "date": int(time.time()),
                               "stats": STATS, "results": RESULTS}}})
        else:
            self.not_found()

    def do_POST(self):
        received = self.drain()
        path = self.path.split("?", 1)[0]
        if UNKNOWN_FILES and (path == "/api/v3/files" or path.startswith("/upload/")):
            with LOCK:
                KNOWN.update(ASKED)
                ASKED.clear()
            print("fake VirusTotal: received an upload of %d bytes" % received,
                  file=sys.stderr)
            self.answer(200, {"data": {"type": "analysis",
                                       "id": "bench-analysis-%d" % time.time_ns()}})
        else:
            self.not_found()

    @staticmethod
    def known(wanted):
        if not UNKNOWN_FILES:
            return True
        with LOCK:
            if wanted in KNOWN:
                return True
            ASKED.add(wanted)
            return False

    def drain(self):
        """Reads the request body and throws it away; returns its length."""
        received = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return received
                received += self.skip(size)
                self.rfile.readline()
        return self.skip(int(self.headers.get("Content-Length") or 0))

    def skip(self, length):
        done = 0
        while done < length:
            chunk = self.rfile.read(min(length - done, 1 << 20))
            if not chunk:
                break
            done += len(chunk)
        return done

    def not_found(self):
        self.answer(404, {"error": {"code": "NotFoundError",
                                    "message": "Resource not found"}})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--unknown-files", action="store_true")
    args = parser.parse_args()
    global UNKNOWN_FILES
    UNKNOWN_FILES = args.unknown_files

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    temporary = args.port_file + ".part"
    with open(temporary, "w") as out:
        out.write("%d\n" % port)
    os.replace(temporary, args.port_file)
    print("fake VirusTotal on http://127.0.0.1:%d/api/v3 (%d engines)"
          % (port, len(RESULTS)), file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
