"""``tribes serve`` as a user starts it: a real process, HTTPS with a certificate."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import Built

TRIBES = str(Path(sys.executable).parent / "tribes")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_over_tls(service_ws: Built, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = _port()
    proc = subprocess.Popen([TRIBES, "-q", "--workspace", str(service_ws.path), "serve",
                             "--port", str(port), "--tls-cert", str(cert), "--tls-key",
                             str(key)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"https://127.0.0.1:{port}"
        trust = ssl.create_default_context(cafile=str(cert))
        deadline = time.time() + 60
        health = None
        while time.time() < deadline and proc.poll() is None:
            try:
                health = httpx.get(url + "/v1/health", verify=trust, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200
        r = httpx.get(url + "/v1/segments", verify=trust,
                      headers={"Authorization": f"Bearer {service_ws.keys['viewer']}"})
        assert r.status_code == 200 and r.json()["version"] == 2
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on that port
            httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_refuses_half_a_tls_pair(service_ws: Built, tmp_path: Path) -> None:
    r = subprocess.run([TRIBES, "--workspace", str(service_ws.path), "serve", "--tls-cert",
                        str(tmp_path / "c.pem")], capture_output=True, text=True)
    assert r.returncode != 0 and "E_TLS" in r.stderr
