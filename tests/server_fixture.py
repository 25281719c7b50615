"""A REAL backend server process for tests: `groundsynth serve` on 127.0.0.1.

Reusable by any test module (the QGIS plugin tests too):

    from tests.server_fixture import start_server, make_test_raster, groundsynth_server  # noqa: F401

    def test_something(groundsynth_server):          # module-scoped fixture
        srv = groundsynth_server                     # ServerProcess
        with srv.client() as c:                      # groundsynth.api.v1.client.GroundSynthClient with the token
            c.capabilities()
        srv.address, srv.token, srv.workspace, srv.raster   # "127.0.0.1:PORT", token text, Path, test GeoTIFF

`start_server(workspace, *extra_args)` starts one by hand (e.g. with other limits) and
returns a ServerProcess; `.kill()` sends SIGKILL, `.stop()` SIGTERM (graceful),
`.restart()` starts a new process on the same workspace and arguments. The
server listens on port 0 (the OS picks a free port; the process prints it) and
loads the test engines with `--engine-module tests.server_engines`. Its log
goes to `<workspace>/../server-<n>.log`; the error message of a failed start
includes its tail.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
ENGINE_MODULE = "tests.server_engines"
_counter = [0]


def make_test_raster(path: str | os.PathLike, size: int = 512, seed: int = 0) -> Path:
    """A small 4-band uint16 GeoTIFF (EPSG:32618, 10 m): brightness blocks plus noise, so the
    test-bright segmenter finds several classes. Origin (500000, 4000000)."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    blocks = ((yy // 48 + xx // 80) % 7).astype(np.float32) / 6.0
    base = 300 + blocks * 3000
    data = np.stack([base + rng.normal(0, 60, base.shape) for _ in range(4)]).clip(1, 10000).astype("uint16")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=4, dtype="uint16",
                       crs="EPSG:32618", transform=from_origin(500000, 4000000, 10, 10)) as ds:
        ds.write(data)
    return path


def raster_bbox(size: int = 512, pixel: float = 10.0) -> tuple[float, float, float, float]:
    """The full extent of make_test_raster(size) in EPSG:32618."""
    return (500000.0, 4000000.0 - size * pixel, 500000.0 + size * pixel, 4000000.0)


@dataclass
class ServerProcess:
    workspace: Path
    args: tuple[str, ...]
    proc: subprocess.Popen
    address: str
    token: str
    log_path: Path
    raster: Path | None = None
    env: dict = field(default_factory=dict)
    engine_module: str | None = ENGINE_MODULE
    tls_ca: Path | None = None

    def client(self, **kwargs):
        from groundsynth.api.v1.client import GroundSynthClient

        if self.tls_ca is not None:
            kwargs.setdefault("tls_ca", self.tls_ca)
        return GroundSynthClient(self.address, token=self.token, **kwargs)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (a crash)."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM: graceful stop; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def restart(self) -> ServerProcess:
        if self.alive():
            self.stop()
        new = start_server(self.workspace, *self.args, env=self.env or None, engine_module=self.engine_module,
                           tls_ca=self.tls_ca)
        new.raster = self.raster
        return new

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def start_server(workspace: str | os.PathLike, *extra_args: str, timeout: float = 30.0,
                 engine_module: str | None = ENGINE_MODULE, env: dict | None = None,
                 tls_ca: str | os.PathLike | None = None) -> ServerProcess:
    """Start `groundsynth serve` on 127.0.0.1 (free port) and wait for Health SERVING.

    With `tls_ca` (pass --tls-cert/--tls-key in `extra_args`) clients connect with TLS."""
    from groundsynth.api.v1.client import GroundSynthClient
    from groundsynth.request.errors import GroundSynthError

    workspace = Path(workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    _counter[0] += 1
    log_path = workspace.parent / f"server-{workspace.name}-{_counter[0]}.log"
    out_path = workspace.parent / f"server-{workspace.name}-{_counter[0]}.out"
    args = tuple(extra_args) + (("--engine-module", engine_module) if engine_module else ())
    cmd = [PYTHON, "-m", "groundsynth", "serve", "--address", "127.0.0.1:0", "--workspace", str(workspace), *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                **(env or {})}
    with open(log_path, "wb") as log, open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=log, env=full_env, start_new_session=True)
    deadline = time.monotonic() + timeout
    address = None
    while time.monotonic() < deadline and proc.poll() is None:
        for line in out_path.read_text(errors="replace").splitlines():
            if line.startswith("serving on "):
                address = line.split()[-1]
        if address:
            break
        time.sleep(0.05)
    if address is None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        raise RuntimeError(f"server did not start (exit {proc.returncode}):\n{log_path.read_text()[-3000:]}")
    token = (workspace / "token").read_text().strip()
    client = GroundSynthClient(address, token=token, tls_ca=tls_ca)
    try:
        while True:
            try:
                if client.health() == "SERVING":
                    break
            except GroundSynthError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"server at {address} never reported SERVING:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
    finally:
        client.close()
    return ServerProcess(workspace=workspace, args=tuple(extra_args), proc=proc, address=address, token=token,
                         log_path=log_path, env=env or {}, engine_module=engine_module,
                         tls_ca=Path(tls_ca) if tls_ca else None)


def self_signed_cert(folder: str | os.PathLike) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for 127.0.0.1/localhost, valid one day; the cert is its own CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def groundsynth_server(tmp_path_factory):
    """A server on a fresh workspace holding a 512x512 test raster (`.raster`); killed afterwards."""
    base = tmp_path_factory.mktemp("gs")
    workspace = base / "workspace"
    raster = make_test_raster(workspace / "data" / "src.tif")
    srv = start_server(workspace)
    srv.raster = raster
    yield srv
    srv.kill()
