"""ServerConfig: everything `groundsynth serve` needs, from a TOML file and flags.

Precedence: built-in defaults < TOML file (`--config FILE`) < command-line flags.
The TOML file holds the same keys as the dataclass fields, at top level or
under a `[server]` table, e.g.

    address = "127.0.0.1:50051"
    workspace = "workspace"
    allowed_roots = ["/data/sentinel2"]
    max_tiles_per_job = 5000
    engine_modules = ["my_company.engines"]

Safe defaults: the server binds 127.0.0.1; source rasters are read only from the
workspace plus the directories named in `allowed_roots` (`--allow-root`); a
non-loopback address is refused unless a TLS certificate and key are given.
Relative paths in the TOML file are resolved against the file's folder,
relative paths on the command line against the current directory.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundsynth.request.errors import FailedPrecondition, InvalidArgument
from groundsynth.request.spec import EXECUTOR_NAMES

MiB = 1024 * 1024
GiB = 1024 * MiB
DEFAULT_ADDRESS = "127.0.0.1:50051"


@dataclass
class ServerConfig:
    workspace: Path = Path("workspace")
    address: str = DEFAULT_ADDRESS
    # Directories source and label rasters may be read from (besides the workspace, always allowed).
    allowed_roots: list[Path] = field(default_factory=list)
    tls_cert: Path | None = None           # PEM certificate chain; with tls_key enables TLS
    tls_key: Path | None = None            # PEM private key
    max_tiles_per_job: int = 5000          # real tiles; larger jobs are RESOURCE_EXHAUSTED
    max_concurrent_jobs: int = 2           # jobs running at once (their heads; tile work runs on the executor)
    max_queued_jobs: int = 16              # jobs waiting beyond the running ones; more is RESOURCE_EXHAUSTED
    max_message_bytes: int = 64 * MiB      # gRPC send/receive limit, server and client
    max_upload_bytes: int = 2 * GiB        # one UploadRaster
    workers: int = 16                      # RPC slots for GroundSynth calls: max_streams + max_uploads + unary
    max_streams: int = 8                   # Submit/Watch/FetchArtefact streams open at once (of `workers`)
    max_uploads: int = 2                   # UploadRaster calls at once (of `workers`)
    upload_idle_timeout_s: float = 60.0    # an upload with no message for this long ends DEADLINE_EXCEEDED
    upload_total_timeout_s: float = 3600.0  # an upload still going after this long ends DEADLINE_EXCEEDED
    reflection: bool = False               # serve gRPC reflection (needs the token too)
    engine_modules: list[str] = field(default_factory=list)   # extra modules imported so their @register runs
    device: str = "auto"                   # device for neural engines: "auto", "cpu", "cuda", "cuda:1"...
    batch_size: int = 8                    # tiles per engine call
    shutdown_grace_s: float = 10.0         # on SIGTERM: how long running jobs get to stop cleanly
    executor: str = "process"              # where jobs' tile work runs: inline, process or ray (a job's
                                           # JobSpec.executor wins); docs/scale-out.md
    executor_workers: int = 0              # worker processes / Ray actors shared by all jobs; 0 = one per core
    ray_address: str = ""                  # Ray cluster HOST:PORT for executor ray; "" = a local one

    # ---------------------------------------------------------------- derived
    @property
    def token_path(self) -> Path:
        return self.workspace / "token"

    @property
    def uploads_dir(self) -> Path:
        return self.workspace / "uploads"

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def max_calls(self) -> int:
        """Slots for the unary calls (GetJob, ListJobs, Cancel, DeleteJob, Capabilities)."""
        return self.workers - self.max_streams - self.max_uploads

    def rpc_limits(self) -> dict[str, int]:
        """Slots per RPC class (service.interceptors.RpcLimiter)."""
        from groundsynth.service.interceptors import REFLECTION_SLOTS

        limits = {"streams": self.max_streams, "uploads": self.max_uploads, "calls": self.max_calls}
        if self.reflection:
            limits["reflection"] = REFLECTION_SLOTS
        return limits

    def roots(self) -> list[Path]:
        """The workspace and the allowed roots, resolved (symlinks followed)."""
        out: list[Path] = []
        for p in [self.workspace, *self.allowed_roots]:
            r = Path(os.path.realpath(p))
            if r not in out:
                out.append(r)
        return out

    # ---------------------------------------------------------------- building
    @classmethod
    def load(cls, path: str | os.PathLike | None = None, **overrides: Any) -> ServerConfig:
        """Defaults, then the TOML file (if any), then `overrides` whose value is not None."""
        values: dict[str, Any] = {}
        if path is not None:
            values.update(_read_toml(Path(path)))
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in _FIELDS:
                raise InvalidArgument(f"unknown setting; expected one of {', '.join(sorted(_FIELDS))}", key)
            if key in ("allowed_roots", "engine_modules") and key in values:
                value = [*values[key], *value]    # flags add to the file's list
            values[key] = value
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base_dir: Path | None = None) -> ServerConfig:
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in _FIELDS:
                raise InvalidArgument(f"unknown setting; expected one of {', '.join(sorted(_FIELDS))}", key)
            kwargs[key] = _coerce(key, value, base_dir)
        cfg = cls(**kwargs)
        cfg.workspace = Path(os.path.abspath(cfg.workspace))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every setting; raise InvalidArgument / FailedPrecondition naming the setting."""
        host, _port = split_address(self.address)
        for name in ("max_tiles_per_job", "max_concurrent_jobs", "max_message_bytes", "max_upload_bytes",
                     "workers", "batch_size", "max_streams", "max_uploads"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"expected a positive integer, got {getattr(self, name)}", name)
        if self.executor not in EXECUTOR_NAMES:
            raise InvalidArgument(f"expected one of {', '.join(EXECUTOR_NAMES)}, got {self.executor!r}", "executor")
        if self.executor_workers < 0:
            raise InvalidArgument(f"expected 0 (one per core) or a positive integer, got {self.executor_workers}",
                                  "executor_workers")
        if self.max_queued_jobs < 0:
            raise InvalidArgument(f"expected an integer >= 0, got {self.max_queued_jobs}", "max_queued_jobs")
        if self.max_message_bytes < 2 * MiB:
            raise InvalidArgument(f"expected at least {2 * MiB} bytes (artefacts stream in 1 MiB chunks), "
                                  f"got {self.max_message_bytes}", "max_message_bytes")
        if self.workers < 4:
            raise InvalidArgument(f"expected at least 4 RPC threads, got {self.workers}", "workers")
        if self.max_calls < 2:
            raise InvalidArgument(f"expected workers ({self.workers}) >= max_streams ({self.max_streams}) + "
                                  f"max_uploads ({self.max_uploads}) + 2 (slots for the unary calls)", "workers")
        for name in ("upload_idle_timeout_s", "upload_total_timeout_s"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"expected seconds > 0, got {getattr(self, name)}", name)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidArgument("give both tls_cert and tls_key, or neither", "tls_cert" if self.tls_key else "tls_key")
        for name in ("tls_cert", "tls_key"):
            p = getattr(self, name)
            if p is not None and not p.is_file():
                raise InvalidArgument(f"expected a readable PEM file, {p} does not exist", name)
        if not is_loopback(host) and not self.tls:
            raise FailedPrecondition(
                f"{host!r} is not a loopback address; serving beyond this machine needs TLS: "
                f"give --tls-cert and --tls-key, or use 127.0.0.1", "address")
        for root in self.allowed_roots:
            if not Path(root).is_dir():
                raise InvalidArgument(f"expected an existing directory, got {root}", "allowed_roots")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "allowed_roots" else v)
                for k, v in d.items()}


_FIELDS = {f.name: f for f in dataclasses.fields(ServerConfig)}
_INT_FIELDS = {"max_tiles_per_job", "max_concurrent_jobs", "max_queued_jobs", "max_message_bytes",
               "max_upload_bytes", "workers", "batch_size", "max_streams", "max_uploads", "executor_workers"}
_SECONDS_FIELDS = {"shutdown_grace_s", "upload_idle_timeout_s", "upload_total_timeout_s"}


def _coerce(key: str, value: Any, base_dir: Path | None) -> Any:
    def as_path(v: Any) -> Path:
        if not isinstance(v, (str, os.PathLike)):
            raise InvalidArgument(f"expected a path, got {v!r}", key)
        p = Path(os.path.expanduser(os.fspath(v)))
        if base_dir is not None and not p.is_absolute():
            p = base_dir / p
        return Path(os.path.abspath(p))

    if key in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"expected an integer, got {value!r}", key)
        return value
    if key in _SECONDS_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"expected seconds >= 0, got {value!r}", key)
        return float(value)
    if key == "reflection":
        if not isinstance(value, bool):
            raise InvalidArgument(f"expected true or false, got {value!r}", key)
        return value
    if key in ("workspace", "tls_cert", "tls_key"):
        return as_path(value)
    if key == "allowed_roots":
        if isinstance(value, (str, os.PathLike)) or not isinstance(value, (list, tuple)):
            raise InvalidArgument(f"expected a list of directories, got {value!r}", key)
        return [as_path(v) for v in value]
    if key == "engine_modules":
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
                not all(isinstance(v, str) and v for v in value):
            raise InvalidArgument(f"expected a list of module names, got {value!r}", key)
        return list(value)
    if key in ("address", "device", "executor"):
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"expected text, got {value!r}", key)
        return value
    if key == "ray_address":
        if not isinstance(value, str):
            raise InvalidArgument(f"expected HOST:PORT text, got {value!r}", key)
        return value
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidArgument(f"no such file {path}", "config") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path} is not valid TOML: {exc}", "config") from None
    if isinstance(data.get("server"), dict):
        data = data["server"]
    base = path.resolve().parent
    return {k: _coerce(k, v, base) if k in _FIELDS else v for k, v in data.items()}


def split_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); raises InvalidArgument naming `address`."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise InvalidArgument(f"expected HOST:PORT (e.g. {DEFAULT_ADDRESS}), got {address!r}", "address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port_n = int(port)
    except ValueError:
        port_n = -1
    if not 0 <= port_n <= 65535:
        raise InvalidArgument(f"expected a port 0..65535, got {port!r}", "address")
    return host, port_n


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
