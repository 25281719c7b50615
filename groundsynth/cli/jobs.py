"""`groundsynth jobs`: list, show, watch or cancel jobs of a running server.

    groundsynth jobs [--address HOST:PORT] [--token-file F] list [--limit N]
    groundsynth jobs ... get JOB_ID          # JobInfo as JSON
    groundsynth jobs ... watch JOB_ID        # progress bar; last line = output dir
    groundsynth jobs ... cancel JOB_ID
    groundsynth jobs ... delete JOB_ID       # a finished job: its files, journal rows and events
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from groundsynth.cli.submit import add_client_arguments

    p = sub.add_parser("jobs", help="list/get/watch/cancel/delete jobs on a server",
                       description="Inspect and control the jobs of a GroundSynth server.")
    add_client_arguments(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="jobs, newest first")
    ls.add_argument("--limit", type=int, default=0, help="at most N jobs (0 = all)")
    for name, text in (("get", "one job as JSON"), ("watch", "follow a job to its end"),
                       ("cancel", "ask a job to stop"),
                       ("delete", "remove a finished job: its files, journal rows and events")):
        a = actions.add_parser(name, help=text)
        a.add_argument("job_id")
        if name == "watch":
            a.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToJson

    from groundsynth.api.v1.contract import pb
    from groundsynth.cli.submit import client_from_args, follow

    with client_from_args(args) as client:
        if args.action == "list":
            jobs = client.list_jobs(args.limit)
            with_bar = sys.stderr.isatty()
            for j in jobs:
                created = dt.datetime.fromtimestamp(j.created).strftime("%Y-%m-%d %H:%M:%S")
                print(f"{j.job_id}  {pb.JobState.Name(j.state):<11}  {j.tiles_done:>5}/{j.tiles_total:<5} "
                      f"{created}  {j.name or j.spec.name}")
            if with_bar:
                print(f"{len(jobs)} job(s)", file=sys.stderr)
            return 0
        if args.action == "get":
            print(MessageToJson(client.get_job(args.job_id), indent=1))
            return 0
        if args.action == "delete":
            resp = client.delete_job(args.job_id)
            print(f"{resp.job_id} deleted ({resp.files_removed} files, {resp.bytes_freed} bytes)")
            return 0
        if args.action == "cancel":
            info = client.cancel(args.job_id)
            print(f"{info.job_id} {pb.JobState.Name(info.state)}")
            return 0
        client.get_job(args.job_id)          # NOT_FOUND before opening a stream
        return follow(client, client.watch(args.job_id), quiet=args.quiet)
