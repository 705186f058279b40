"""The tests' SigV4 signer agrees with curl's --aws-sigv4 (which the role uses), byte for byte."""

import shutil
import socket
import subprocess
import threading
from datetime import datetime, timezone

import pytest

from tests.s3_sigv4 import EMPTY_PAYLOAD_SHA256, sign

SECRET = "a$(touch PWNED);b'\"\\ c é"


def test_signature_matches_curl(tmp_path):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    # curl talks to a Unix socket here, so no port is opened; the socket records the request.
    path = str(tmp_path / "s3.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = []

    def serve():
        conn, _ = server.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        received.append(data.decode())
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    config = tmp_path / "curlrc"
    config.write_text('user = "lab-key:' + SECRET.replace("\\", "\\\\").replace('"', '\\"') + '"\n')
    subprocess.run(
        ["curl", "-fsS", "-K", str(config), "--unix-socket", path, "--aws-sigv4", "aws:amz:us-east-1:s3",
         "-H", f"x-amz-content-sha256: {EMPTY_PAYLOAD_SHA256}", "http://127.0.0.1:7070/loki"],
        check=True, capture_output=True, timeout=20,
    )  # fmt: skip
    thread.join(10)
    server.close()
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in received[0].split("\r\n")[1:] if ": " in line)}
    when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    ours = sign("GET", "http://127.0.0.1:7070/loki", "lab-key", SECRET, "us-east-1", when)
    assert ours["Authorization"] == headers["authorization"]
    assert sign("GET", "http://127.0.0.1:7070/loki", "lab-key", SECRET + "x", "us-east-1", when)["Authorization"] != headers["authorization"]
