"""The access token of the groundsynth.v1 contract, shared by server and clients.

Every call to GroundSynth carries the metadata `authorization: Bearer <token>`.
The token is 32 random bytes (URL-safe text) in `<workspace>/token`, mode 0600,
created at server start, compared in constant time.
"""
from __future__ import annotations

import hmac
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from groundsynth.request.errors import InvalidArgument, NotFound, Unauthenticated

TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{32,256}$")


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
