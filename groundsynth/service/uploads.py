"""UploadRaster: receive a raster stream into <workspace>/uploads/<uuid4 hex>/<name>, with deadlines.

- The first message holds the header (plain file name, byte count, checked against `max_upload_bytes`),
  the rest data; the bytes go to a temp file that is renamed into place only once complete and checked.
- Deadlines: a stream idle for `upload_idle_timeout_s` (no message), or still going after
  `upload_total_timeout_s`, ends with DEADLINE_EXCEEDED naming the deadline. gRPC's request iterator
  cannot time out, so a small pump thread reads it into a bounded queue and the handler waits on the
  queue with the deadline; when the handler returns, gRPC ends the call and the pump's read ends too.
- The file must be a raster GDAL opens whose every file lies in the upload's folder (no VRT or other
  referencing format: security.check_raster_files) and whose pixels read (a truncated file is refused).
- Any failure removes the upload's folder: nothing half-written stays.
"""
from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from groundsynth.api.v1.contract import pb
from groundsynth.artefacts.atomic import atomic_path
from groundsynth.request.errors import DeadlineExceeded, DiskFull, InvalidArgument, ResourceExhausted
from groundsynth.service.config import ServerConfig
from groundsynth.service.security import check_upload_raster, safe_filename
from groundsynth.service.storage import disk_full_error

log = logging.getLogger("groundsynth.server")
_END = object()


class _Pump:
    """Reads a gRPC request iterator on its own thread into a small queue."""

    def __init__(self, requests: Any):
        self.q: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(requests,), name="upload-pump", daemon=True)
        self._thread.start()

    def _run(self, requests: Any) -> None:
        try:
            for item in requests:
                while not self._put(item):
                    if self._stop.is_set():
                        return
        except Exception as exc:  # noqa: BLE001 - the client went away: the handler sees it as an error
            self._put(exc)
            return
        self._put(_END)

    def _put(self, item: Any) -> bool:
        try:
            self.q.put(item, timeout=0.5)
            return True
        except queue.Full:
            return False

    def stop(self) -> None:
        self._stop.set()


def _messages(requests: Any, idle_s: float, total_s: float) -> Iterator[Any]:
    pump = _Pump(requests)
    end = time.monotonic() + total_s
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(f"the upload took longer than the server's total deadline of {total_s:g} s "
                                       "(upload_total_timeout_s)", "data")
            try:
                item = pump.q.get(timeout=min(idle_s, left))
            except queue.Empty:
                if time.monotonic() >= end:
                    continue
                raise DeadlineExceeded(f"no data for {idle_s:g} s: the upload was idle longer than the server "
                                       "allows (upload_idle_timeout_s)", "data") from None
            if item is _END:
                return
            if isinstance(item, Exception):
                raise InvalidArgument("the client went away mid-upload", "data")
            yield item
    finally:
        pump.stop()


def receive_upload(requests: Any, context: Any, config: ServerConfig) -> Any:
    chunks = _messages(requests, config.upload_idle_timeout_s, config.upload_total_timeout_s)
    first = next(chunks, None)
    if first is None or first.WhichOneof("part") != "header":
        raise InvalidArgument("the first message must hold `header` (filename, total_size)", "header")
    name = safe_filename(first.header.filename, "header.filename")
    total = first.header.total_size
    limit = config.max_upload_bytes
    if total <= 0:
        raise InvalidArgument(f"expected the byte count that follows (> 0), got {total}", "header.total_size")
    if total > limit:
        raise ResourceExhausted(f"{total} bytes is over this server's upload limit of {limit} bytes",
                                "header.total_size")
    upload_id = uuid.uuid4().hex
    folder = Path(config.uploads_dir) / upload_id
    received = 0
    try:
        with atomic_path(folder / name) as tmp:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    if chunk.WhichOneof("part") != "data":
                        raise InvalidArgument("expected only `data` after the header", "data")
                    received += len(chunk.data)
                    if received > total:
                        raise InvalidArgument(f"received more than header.total_size ({total}) bytes", "data")
                    out.write(chunk.data)
                if not context.is_active():
                    raise InvalidArgument("the client went away mid-upload", "data")
            if received != total:
                raise InvalidArgument(f"received {received} bytes, expected header.total_size = {total}", "data")
            check_upload_raster(tmp, "data")
    except DiskFull as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise disk_full_error(config.workspace, exc) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    log.info("upload %s: %s, %d bytes", upload_id, name, received)
    return pb.UploadResponse(upload_id=upload_id, size=received)
