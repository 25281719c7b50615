"""Security helpers: the access token, and path checks for client-given names.

- Token: 32 random bytes (URL-safe text) in `<workspace>/token`, mode 0600,
  created at server start. Compared in constant time.
- Source paths (`raster_path`, `label_raster_path`) must resolve (symlinks
  followed) to a file under one of the allowed roots: PERMISSION_DENIED otherwise.
- Names inside the workspace (artefact paths, upload file names and ids) are
  joined with `safe_join`: no absolute paths, no "..", no NUL, and the resolved
  result (symlinks followed) must stay inside the base folder.
"""
from __future__ import annotations

import hmac
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from groundsynth.request.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated

TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{32,256}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\- ]{0,199}$")


# ------------------------------------------------------------------ token

def create_token(path: str | os.PathLike, rotate: bool = False) -> str:
    """The server's token at `path`: kept if a valid private (0600) token file is
    there and `rotate` is False, else a new random token written with mode 0600."""
    path = Path(path)
    if not rotate:
        try:
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid():
                text = path.read_text(encoding="ascii").strip()
                if _TOKEN_RE.match(text):
                    return text
        except (OSError, UnicodeDecodeError):
            pass
    token = secrets.token_urlsafe(TOKEN_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)     # whatever the umask
        os.write(fd, (token + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token


def read_token(path: str | os.PathLike) -> str:
    """Read a token file (client side); clear errors when it is missing or empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise NotFound(f"no token file at {path}; the server writes it to <workspace>/token at start-up",
                       "token_file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}", "token_file") from None
    if not text:
        raise InvalidArgument(f"{path} is empty; expected the server's token", "token_file")
    return text


def check_token(given: str | None, expected: str) -> None:
    """Raise Unauthenticated unless `given` equals `expected` (constant-time compare)."""
    if not given:
        raise Unauthenticated("missing metadata 'authorization: Bearer <token>' "
                              "(the token is in <workspace>/token)", "authorization")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
        raise Unauthenticated("wrong token; expected the content of <workspace>/token", "authorization")


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token from gRPC metadata `authorization: Bearer <token>`, or None."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


# ------------------------------------------------------------------ paths

def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_source(path: str, roots: Iterable[Path], field: str) -> Path:
    """A client-given raster path, resolved; it must be an existing file under an allowed root."""
    if not path or "\x00" in path:
        raise InvalidArgument(f"expected an absolute file path, got {path!r}", field)
    if not os.path.isabs(path):
        raise InvalidArgument(f"expected an absolute path, got {path!r}", field)
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(r)) for r in roots]
    if not any(_within(real, r) for r in roots):
        raise PermissionDenied(
            f"{path} is outside the allowed roots; expected a file under one of: "
            f"{', '.join(str(r) for r in roots)} (start the server with --allow-root DIR)", field)
    if not real.is_file():
        raise NotFound(f"no such file {path}", field)
    return real


def safe_join(base: str | os.PathLike, rel: str, field: str) -> Path:
    """`base/rel` for a client-given relative path; refuses anything that could leave `base`.

    Lexical checks (absolute, "..", NUL, backslash) raise InvalidArgument; a
    symlink pointing out of `base` raises PermissionDenied. The result may not exist.
    """
    if not rel or "\x00" in rel or "\\" in rel:
        raise InvalidArgument(f"expected a relative '/'-separated path, got {rel!r}", field)
    if rel.startswith("/") or os.path.isabs(rel) or re.match(r"^[A-Za-z]:", rel):
        raise InvalidArgument(f"expected a path relative to the job directory, got absolute {rel!r}", field)
    parts = rel.split("/")
    if any(p in ("..",) for p in parts):
        raise InvalidArgument(f"expected a path inside the job directory, got {rel!r} ('..' is not allowed)", field)
    base_real = Path(os.path.realpath(base))
    target = base_real.joinpath(*[p for p in parts if p not in ("", ".")])
    real = Path(os.path.realpath(target))
    if not _within(real, base_real):
        raise PermissionDenied(f"{rel!r} resolves outside the job directory", field)
    return real


def safe_filename(name: str, field: str) -> str:
    """A plain file name (no folders), e.g. "aoi.tif"; raises InvalidArgument otherwise."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.strip() != name:
        raise InvalidArgument(
            f"expected a plain file name such as 'aoi.tif' (letters, digits, '.', '_', '-', space; "
            f"no folders; at most 200 characters), got {name!r}", field)
    return name
