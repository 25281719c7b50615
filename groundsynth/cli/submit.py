"""`groundsynth submit`: run a job through a GroundSynth server (a real gRPC client).

    groundsynth submit --address 127.0.0.1:50051 --token-file ws/token --raster scene.tif \
        --aoi MINX,MINY,MAXX,MAXY [all other job flags of `run`] [--upload] [--detach]

Job flags are exactly those of `run` (groundsynth.cli.run.add_job_arguments).
The raster path must be readable by the server (under its workspace or an
--allow-root); with --upload the local file is streamed to the server first
(UploadRaster) and the job uses the upload id. A tqdm progress bar goes to
stderr; the last stdout line is the job's output directory on the server.
Exit codes: 0 succeeded, 1 the job failed or was cancelled, 2 a user error
("error (CODE): message"), 130 Ctrl-C (the job is cancelled first).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_ADDRESS = "127.0.0.1:50051"


def add_client_arguments(p: argparse.ArgumentParser) -> None:
    """--address, --token-file, --tls-ca, --tls-server-name (shared with `jobs`)."""
    p.add_argument("--address", default=DEFAULT_ADDRESS, help=f"server HOST:PORT (default {DEFAULT_ADDRESS})")
    p.add_argument("--token-file", default="workspace/token",
                   help="the server's token file, <workspace>/token (default workspace/token)")
    p.add_argument("--tls-ca", default=None, metavar="PEM", help="CA certificate: connect with TLS")
    p.add_argument("--tls-server-name", default=None, help="expected TLS server name (if not the host)")


def client_from_args(args: argparse.Namespace) -> Any:
    from groundsynth.api.v1.client import GroundSynthClient

    return GroundSynthClient(args.address, token_file=args.token_file, tls_ca=args.tls_ca,
                             tls_server_name=args.tls_server_name)


def register(sub: argparse._SubParsersAction) -> None:
    from groundsynth.cli.run import add_job_arguments

    p = sub.add_parser("submit", help="run a job through a server (gRPC client)",
                       description="Submit a job to a GroundSynth server and follow it to the end.")
    add_client_arguments(p)
    p.add_argument("--raster", required=True, help="source raster path (as the server sees it), or a local file "
                                                   "with --upload")
    p.add_argument("--upload", action="store_true", help="upload the local --raster to the server first")
    p.add_argument("--detach", action="store_true", help="print the job id once accepted and exit; the job runs on")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_job_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from groundsynth.cli.run import spec_from_args

    spec = spec_from_args(args, args.raster)
    with client_from_args(args) as client:
        client.wait_ready(10)
        if args.upload:
            spec.raster_path, spec.upload_id = None, _upload(client, args.raster, args.quiet)
        return follow(client, client.submit(spec), quiet=args.quiet, detach=args.detach)


def _upload(client: Any, path: str, quiet: bool) -> str:
    from tqdm import tqdm

    with tqdm(total=0, unit="B", unit_scale=True, desc="upload", file=sys.stderr, disable=quiet) as bar:
        def progress(sent: int, total: int) -> None:
            bar.total = total
            bar.n = sent
            bar.refresh()

        upload_id = client.upload(path, progress=progress)
    print(f"uploaded {path} as {upload_id}", file=sys.stderr)
    return upload_id


def follow(client: Any, stream: Any, quiet: bool = False, detach: bool = False) -> int:
    """Show a job's events as a progress bar; print its output dir last. Returns the exit code."""
    from groundsynth.api.v1.contract import pb
    from groundsynth.cli.run import ProgressBar

    class _Lazy:          # the bar appears with the first event, not before an early error
        inner = None

        def __call__(self, kind: str, msg: Any) -> None:
            if self.inner is None:
                self.inner = ProgressBar(quiet)
            self.inner(kind, msg)

        def close(self) -> None:
            if self.inner is not None:
                self.inner.close()

    bar = _Lazy()
    job_id, output_dir, code, ended = "", "", 1, False
    try:
        for event in stream:
            kind = event.WhichOneof("event")
            job_id = event.job_id or job_id
            msg = getattr(event, kind)
            bar(kind, msg)
            if kind == "accepted":
                output_dir = msg.output_dir
                if detach:
                    bar.close()
                    print(job_id)
                    return 0
                print(f"job {job_id}: {msg.tile_count} tiles", file=sys.stderr)
            elif kind == "failed":
                bar.close()
                name = _code_name(msg.code)
                where = f" (tile {msg.tile_id})" if msg.tile_id else ""
                print(f"error ({name}): job {job_id} failed{where}: {msg.message}", file=sys.stderr)
                code, ended = 1, True
            elif kind == "done":
                output_dir = msg.output_dir or output_dir
                state = pb.JobState.Name(msg.state)
                code = 0 if msg.state == pb.SUCCEEDED else 1
                ended = True
                if code:
                    print(f"job {job_id} ended {state}", file=sys.stderr)
    except KeyboardInterrupt:
        stream.cancel()
        bar.close()
        if job_id:
            client.cancel(job_id)
            print(f"cancelled job {job_id}", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if not ended and job_id:
        print(f"the stream ended before job {job_id} did (server stopped?); it resumes when the server "
              f"restarts; follow it with `groundsynth jobs watch {job_id}`", file=sys.stderr)
    if output_dir:
        print(output_dir)
    return code


def _code_name(code: int) -> str:
    import grpc

    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return str(code)
