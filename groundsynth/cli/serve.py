"""`groundsynth serve`: run the gRPC backend on a workspace.

    groundsynth serve --address 127.0.0.1:50051 --workspace DIR [--config FILE]
        [--allow-root DIR]... [--tls-cert PEM --tls-key PEM] [--engine-module MODULE]...
        [--executor inline|process|ray] [--executor-workers N] [--ray-address HOST:PORT]

Prints `serving on HOST:PORT` (stdout) once the server answers; port 0 picks a
free port. The access token is written to DIR/token (mode 0600). While it runs,
one status line per job event of note goes to stderr, and a progress bar shows
tiles finished across running jobs. SIGTERM/SIGINT stop it gracefully: running
jobs are left INTERRUPTED and resume on the next start.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

MiB = 1024 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the gRPC backend",
                       description="Serve the GroundSynth gRPC API on a workspace (token in WORKSPACE/token).")
    p.add_argument("--address", help="HOST:PORT to listen on (default 127.0.0.1:50051; port 0 = any free port); "
                                     "a non-loopback host needs --tls-cert and --tls-key")
    p.add_argument("--workspace", help="folder for jobs, uploads, journal and token (default ./workspace)")
    p.add_argument("--config", metavar="FILE", help="TOML file with server settings (flags override it)")
    p.add_argument("--allow-root", dest="allowed_roots", action="append", metavar="DIR",
                   help="also read source rasters from DIR (repeatable; the workspace is always allowed)")
    p.add_argument("--tls-cert", metavar="PEM", help="TLS certificate chain")
    p.add_argument("--tls-key", metavar="PEM", help="TLS private key")
    p.add_argument("--engine-module", dest="engine_modules", action="append", metavar="MODULE",
                   help="import MODULE so the engines it registers are offered (repeatable)")
    p.add_argument("--max-tiles-per-job", type=int)
    p.add_argument("--max-concurrent-jobs", type=int, help="jobs running at once (default 2)")
    p.add_argument("--max-queued-jobs", type=int, help="jobs waiting beyond the running ones (default 16)")
    p.add_argument("--max-message-bytes", type=int, help=f"gRPC message limit (default {64 * MiB})")
    p.add_argument("--max-upload-bytes", type=int, help="largest UploadRaster in bytes (default 2 GiB)")
    p.add_argument("--workers", type=int, help="RPC slots for GroundSynth calls (default 16): max-streams + "
                                               "max-uploads + the rest for unary calls; Health has its own")
    p.add_argument("--max-streams", type=int, help="Submit/Watch/FetchArtefact streams open at once (default 8)")
    p.add_argument("--max-uploads", type=int, help="UploadRaster calls at once (default 2)")
    p.add_argument("--upload-idle-timeout-s", type=float, help="end an upload idle this long (default 60)")
    p.add_argument("--upload-total-timeout-s", type=float, help="end an upload still going after this (default 3600)")
    p.add_argument("--reflection", action="store_const", const=True, default=None,
                   help="serve gRPC reflection (off by default; needs the token like every call)")
    p.add_argument("--device", help="device for neural engines: auto, cpu, cuda, mps (default auto)")
    p.add_argument("--batch-size", type=int, help="tiles per engine call (default 8)")
    p.add_argument("--executor", choices=("inline", "process", "ray"),
                   help="where jobs' tile work runs (default process: worker processes, one per core)")
    p.add_argument("--executor-workers", type=int, help="worker processes / Ray actors (default 0 = one per core)")
    p.add_argument("--ray-address", metavar="HOST:PORT", help="Ray cluster for --executor ray (default: a local one)")
    p.add_argument("--rotate-token", action="store_true", help="write a new token instead of keeping the old one")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from groundsynth.api.v1.auth import create_token
    from groundsynth.service.config import ServerConfig

    overrides = {k: getattr(args, k) for k in (
        "address", "workspace", "allowed_roots", "tls_cert", "tls_key", "engine_modules", "max_tiles_per_job",
        "max_concurrent_jobs", "max_queued_jobs", "max_message_bytes", "max_upload_bytes", "workers", "device",
        "batch_size", "max_streams", "max_uploads", "upload_idle_timeout_s", "upload_total_timeout_s", "reflection",
        "executor", "executor_workers", "ray_address")}
    config = ServerConfig.load(args.config, **overrides)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("rasterio", "fiona"):         # GDAL chatter at INFO level
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.rotate_token:
        config.workspace.mkdir(parents=True, exist_ok=True)
        create_token(config.token_path, rotate=True)

    from groundsynth.service.server import GroundSynthServer

    server = GroundSynthServer(config).start()
    stop = threading.Event()

    def on_signal(signum, _frame):
        logging.getLogger("groundsynth.server").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"serving on {server.address}", flush=True)
    print(f"token file: {config.token_path}", flush=True)
    bar = None if args.quiet else _TileBar(server)
    try:
        while not stop.wait(0.5):
            if bar:
                bar.update()
    finally:
        if bar:
            bar.close()
        server.stop()
    return 0


class _TileBar:
    """A tqdm bar on stderr: tiles finished / total over the jobs this server is running."""

    def __init__(self, server) -> None:
        self.server = server
        self.bar: Any = None
        self.jobs: tuple = ()

    def update(self) -> None:
        from tqdm import tqdm

        manager = self.server.manager
        active = tuple(manager.active_jobs())
        if not active:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            return
        rows = [r for r in (manager.journal.get_job(j) for j in active) if r is not None]
        total = sum(r.tiles_total + r.synthetic_total for r in rows)
        done = sum(r.tiles_done + r.synthetic_done for r in rows)
        if self.bar is None or active != self.jobs:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=total, desc=f"{len(active)} job(s)", unit="tile", file=sys.stderr,
                            dynamic_ncols=True, leave=False)
            self.jobs = active
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
