"""Token file, path checks and server configuration (no server process needed)."""
import os
import stat
import threading

import pytest

from groundsynth.api.v1 import auth
from groundsynth.api.v1.contract import pb
from groundsynth.request.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from groundsynth.service import security
from groundsynth.service.config import ServerConfig, is_loopback, split_address
from groundsynth.service.event_log import EventLog

# ------------------------------------------------------------------ token

def test_token_file_is_private_random_and_kept_across_starts(tmp_path):
    path = tmp_path / "ws" / "token"
    old_umask = os.umask(0o022)
    try:
        token = auth.create_token(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 40 and path.read_text().strip() == token
    assert auth.create_token(path) == token                 # restart keeps it: clients stay valid
    assert auth.create_token(path, rotate=True) != token
    other = auth.create_token(tmp_path / "other" / "token")
    assert other != auth.read_token(path)


def test_token_file_with_loose_permissions_is_replaced(tmp_path):
    path = tmp_path / "token"
    path.write_text("A" * 43)
    path.chmod(0o644)
    token = auth.create_token(path)
    assert token != "A" * 43 and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_check_token_and_bearer_metadata():
    auth.check_token("abc", "abc")
    with pytest.raises(Unauthenticated, match="wrong token"):
        auth.check_token("abd", "abc")
    with pytest.raises(Unauthenticated, match="missing metadata"):
        auth.check_token(None, "abc")
    assert auth.bearer_token([("x", "1"), ("authorization", "Bearer  tok ")]) == "tok"
    assert auth.bearer_token([("authorization", "Basic tok")]) is None
    assert auth.bearer_token(None) is None


def test_read_token_errors_name_the_file(tmp_path):
    with pytest.raises(NotFound, match="token_file"):
        auth.read_token(tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidArgument, match="empty"):
        auth.read_token(tmp_path / "empty")


# ------------------------------------------------------------------ paths

def test_resolve_source_only_under_allowed_roots(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "a.tif").write_bytes(b"x")
    (outside / "b.tif").write_bytes(b"x")
    (root / "link.tif").symlink_to(outside / "b.tif")
    assert security.resolve_source(str(root / "a.tif"), [root], "raster_path") == (root / "a.tif").resolve()
    with pytest.raises(PermissionDenied, match="raster_path.*outside the allowed roots"):
        security.resolve_source(str(outside / "b.tif"), [root], "raster_path")
    with pytest.raises(PermissionDenied):                      # symlink out of the root
        security.resolve_source(str(root / "link.tif"), [root], "raster_path")
    with pytest.raises(PermissionDenied):                      # ../ out of the root
        security.resolve_source(str(root / ".." / "outside" / "b.tif"), [root], "raster_path")
    with pytest.raises(InvalidArgument, match="absolute"):
        security.resolve_source("a.tif", [root], "raster_path")
    with pytest.raises(NotFound, match="no such file"):
        security.resolve_source(str(root / "nope.tif"), [root], "raster_path")


@pytest.mark.parametrize("rel, error", [
    ("../secret", InvalidArgument),
    ("a/../../secret", InvalidArgument),
    ("/etc/passwd", InvalidArgument),
    ("a\\..\\b", InvalidArgument),
    ("", InvalidArgument),
    ("nul\x00", InvalidArgument),
    ("escape/passwd", PermissionDenied),     # symlinked folder pointing outside
])
def test_safe_join_refuses_escapes(tmp_path, rel, error):
    base = tmp_path / "job"
    base.mkdir()
    (base / "escape").symlink_to("/etc")
    with pytest.raises(error):
        security.safe_join(base, rel, "path")


def test_safe_join_allows_inner_paths(tmp_path):
    base = tmp_path / "job"
    (base / "tiles").mkdir(parents=True)
    assert security.safe_join(base, "tiles/x.tif", "path") == (base / "tiles" / "x.tif").resolve()
    assert security.safe_join(base, "./tiles//x.tif", "path") == (base / "tiles" / "x.tif").resolve()


@pytest.mark.parametrize("name", ["../x.tif", "a/b.tif", ".hidden", "..", "", "x" * 300, "a\nb.tif", " a.tif"])
def test_safe_filename_refuses_non_plain_names(name):
    with pytest.raises(InvalidArgument, match="filename"):
        security.safe_filename(name, "filename")


def test_safe_filename_accepts_plain_names():
    assert security.safe_filename("aoi window_2.tif", "filename") == "aoi window_2.tif"


# ------------------------------------------------------------------ config

def test_config_defaults_are_safe(tmp_path):
    cfg = ServerConfig.load(workspace=tmp_path)
    assert cfg.host == "127.0.0.1" and cfg.port == 50051
    assert cfg.roots() == [tmp_path.resolve()]
    assert (cfg.max_tiles_per_job, cfg.max_concurrent_jobs, cfg.max_message_bytes) == (5000, 2, 64 * 2**20)
    assert cfg.token_path == tmp_path / "token"
    assert not cfg.reflection and cfg.rpc_limits() == {"streams": 8, "uploads": 2, "calls": 6}
    assert (cfg.upload_idle_timeout_s, cfg.upload_total_timeout_s) == (60.0, 3600.0)


def test_config_toml_then_flags(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "gs.toml").write_text(
        '[server]\naddress = "127.0.0.1:6000"\nworkspace = "ws"\nallowed_roots = ["data"]\n'
        'max_tiles_per_job = 10\nengine_modules = ["a.b"]\n')
    cfg = ServerConfig.load(tmp_path / "gs.toml", max_tiles_per_job=20, engine_modules=["c"], address=None)
    assert cfg.address == "127.0.0.1:6000"
    assert cfg.workspace == tmp_path / "ws"                   # relative to the TOML file
    assert cfg.allowed_roots == [data]
    assert cfg.max_tiles_per_job == 20                         # flag wins
    assert cfg.engine_modules == ["a.b", "c"]                  # flags add to lists


@pytest.mark.parametrize("overrides, field, error", [
    (dict(address="0.0.0.0:50051"), "address", FailedPrecondition),
    (dict(address="192.168.1.4:50051"), "address", FailedPrecondition),
    (dict(address="localhost"), "address", InvalidArgument),
    (dict(address="127.0.0.1:99999"), "address", InvalidArgument),
    (dict(max_concurrent_jobs=0), "max_concurrent_jobs", InvalidArgument),
    (dict(max_tiles_per_job="many"), "max_tiles_per_job", InvalidArgument),
    (dict(allowed_roots=["/no/such/dir"]), "allowed_roots", InvalidArgument),
    (dict(bogus=1), "bogus", InvalidArgument),
    (dict(workers=8, max_streams=6, max_uploads=1), "workers", InvalidArgument),    # < 2 slots for unary calls
    (dict(max_uploads=0), "max_uploads", InvalidArgument),
    (dict(upload_idle_timeout_s=0), "upload_idle_timeout_s", InvalidArgument),
    (dict(upload_total_timeout_s=float("inf")), "upload_total_timeout_s", InvalidArgument),
    (dict(reflection="yes"), "reflection", InvalidArgument),
])
def test_config_errors_name_the_setting(tmp_path, overrides, field, error):
    with pytest.raises(error) as err:
        ServerConfig.load(workspace=tmp_path, **overrides)
    assert err.value.field == field


def test_non_loopback_needs_both_tls_files(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("cert")
    key.write_text("key")
    with pytest.raises(InvalidArgument, match="tls_key"):
        ServerConfig.load(workspace=tmp_path, address="0.0.0.0:1", tls_cert=cert)
    cfg = ServerConfig.load(workspace=tmp_path, address="0.0.0.0:1", tls_cert=cert, tls_key=key)
    assert cfg.tls


def test_address_helpers():
    assert split_address("[::1]:5") == ("::1", 5)
    assert is_loopback("::1") and is_loopback("127.0.0.2") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.org")


# ------------------------------------------------------------------ event log

def test_event_log_numbers_persists_and_fans_out(tmp_path):
    db = tmp_path / "journal.sqlite"
    log = EventLog(db)
    got: list = []
    ended = threading.Event()

    def reader():
        for ev in log.follow("j1", 0, finished=ended.is_set):
            got.append(ev)

    t = threading.Thread(target=reader)
    t.start()
    log.append("j1", "accepted", pb.Accepted(job_id="j1", tile_count=2))
    log.append("j2", "progress", pb.Progress(stage="segment"))
    log.append("j1", "progress", pb.Progress(stage="segment", done=1, total=2))
    log.append("j1", "done", pb.Done(state=pb.SUCCEEDED, real_tiles=2))
    t.join(5)
    assert not t.is_alive()
    assert [e.seq for e in got] == [1, 2, 3]
    assert [e.WhichOneof("event") for e in got] == ["accepted", "progress", "done"]
    log.close()

    reopened = EventLog(db)                                   # survives a restart; seq continues
    assert [e.seq for e in reopened.events("j1", after_seq=1)] == [2, 3]
    assert reopened.append("j1", "progress", pb.Progress(stage="report")).seq == 4
    assert reopened.append("j2", "done", pb.Done()).seq == 2
    with pytest.raises(ValueError):
        reopened.append("j1", "bogus", pb.Done())
    reopened.close()


def test_follow_stops_when_job_finished_without_terminal_event(tmp_path):
    log = EventLog(tmp_path / "j.sqlite")
    log.append("j", "accepted", pb.Accepted(job_id="j"))
    assert [e.seq for e in log.follow("j", 0, finished=lambda: True)] == [1]
    assert list(log.follow("j", 0, finished=lambda: False, active=lambda: False)) == []
    log.close()
