"""ListJobs pages: bounded, abbreviated entries and opaque page tokens.

- Page size: `limit` 0 = DEFAULT_PAGE jobs, at most MAX_PAGE; and a page also stops before its entries
  reach half the server's message limit, so a response always fits (whatever old journals hold).
- Entries are abbreviated (`JobInfo.abbreviated`): the spec keeps the source, name, tile size, seed and
  each stage's engine (no params, polygon or label path), the error is cut to MAX_ERROR_CHARS, no layers
  or report. GetJob returns the full JobInfo.
- The page token is the list position (created, rowid) of the page's last job, base64 text.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from groundsynth.api.v1.contract import pb
from groundsynth.request.errors import InvalidArgument
from groundsynth.request.spec import MAX_NAME_CHARS, MAX_PATH_CHARS
from groundsynth.service.journal import JobRow, Journal

DEFAULT_PAGE, MAX_PAGE = 100, 1000
MAX_ERROR_CHARS = 1000


def encode_token(position: tuple[float, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps([position[0], position[1]]).encode()).decode()


def decode_token(token: str) -> tuple[float, int] | None:
    if not token:
        return None
    try:
        created, rowid = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        return float(created), int(rowid)
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
        raise InvalidArgument("expected the next_page_token of a previous ListJobs response", "page_token") from None


def list_entry(row: JobRow) -> Any:
    """The abbreviated JobInfo of a ListJobs entry."""
    spec = row.spec
    s = pb.JobSpec(name=spec.name[:MAX_NAME_CHARS], tile_size=spec.tile_size, seed=spec.seed,
                   stages=[pb.StageConfig(stage=st.stage[:64], engine=st.engine[:64]) for st in spec.stages[:8]])
    if spec.raster_path:
        s.raster_path = spec.raster_path[:MAX_PATH_CHARS]
    elif spec.upload_id:
        s.upload_id = spec.upload_id[:64]
    return pb.JobInfo(job_id=row.job_id, state=pb.JobState.Value(row.state), spec=s, tiles_total=row.tiles_total,
                      tiles_done=row.tiles_done, synthetic_total=row.synthetic_total,
                      synthetic_done=row.synthetic_done, created=row.created, updated=row.updated,
                      error=row.error[:MAX_ERROR_CHARS], output_dir=row.output_dir[:MAX_PATH_CHARS],
                      name=spec.name[:MAX_NAME_CHARS], abbreviated=True)


def list_page(journal: Journal, limit: int, page_token: str, max_bytes: int) -> Any:
    """A ListJobsResponse: the page after `page_token`, within `limit` and half of `max_bytes`."""
    if limit < 0:
        raise InvalidArgument(f"expected 0 (the default page of {DEFAULT_PAGE}) or a positive page size, got "
                              f"{limit}", "limit")
    size = min(limit or DEFAULT_PAGE, MAX_PAGE)
    rows, more = journal.list_page(size, decode_token(page_token))
    resp = pb.ListJobsResponse(total_jobs=journal.count_jobs())
    budget = max_bytes // 2
    used = 0
    for i, row in enumerate(rows):
        entry = list_entry(row)
        used += entry.ByteSize() + 8
        if used > budget and i > 0:
            more = True
            break
        resp.jobs.append(entry)
    if more and resp.jobs:
        resp.next_page_token = encode_token(rows[len(resp.jobs) - 1].position)
    return resp
