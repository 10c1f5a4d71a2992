"""The pseudonymisation key of a warehouse: where it is kept (`<db>.key` or `$HCODE_KEY`),
the checks a key must pass before it is used (at least MIN_KEY_CHARS characters; a key file
that is regular and private to its owner), and its fingerprint (docs/security.md)."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from hcode.errors import KeyRefused, WarehouseMissing

MIN_KEY_CHARS = 32
FINGERPRINT_TEXT = b"hcode key fingerprint v1"


def key_path(db: Path) -> Path:
    return Path(str(db) + ".key")


def fingerprint(key: str) -> str:
    """HMAC-SHA256 under the key of a fixed text: the same key always gives the same
    fingerprint, and the fingerprint is no shortcut to guessing the key."""
    return hmac.new(key.encode("utf-8"), FINGERPRINT_TEXT, hashlib.sha256).hexdigest()


def strong_key(key: str, source: str) -> str:
    if len(key) < MIN_KEY_CHARS:
        raise KeyRefused(f"the key from {source} has {len(key)} characters; a key needs at least {MIN_KEY_CHARS} characters "
                         "(`hcode init` writes 64 random hex characters; or use e.g. `openssl rand -hex 32`)")
    return key


def read_key(db: Path) -> str:
    """The key text: `$HCODE_KEY` when set, else the stripped content of `<db>.key`.

    Refused (`KeyRefused`): a key shorter than 32 characters, a key file that is a symbolic
    link, or one that its group or others may read or write."""
    env = os.environ.get("HCODE_KEY")
    if env:
        return strong_key(env, "$HCODE_KEY")
    kp = key_path(db)
    try:
        st = os.lstat(kp)
    except FileNotFoundError:
        raise WarehouseMissing(f"no key: set HCODE_KEY or run `hcode init --db {db}` to create {kp}") from None
    if stat.S_ISLNK(st.st_mode):
        raise KeyRefused(f"the key file {kp} is a symbolic link: refused (whoever can change the link chooses "
                         "the key); put the key file itself there, mode 600")
    if not stat.S_ISREG(st.st_mode):
        raise KeyRefused(f"the key file {kp} is not a regular file: refused")
    if st.st_mode & 0o077:
        raise KeyRefused(f"the key file {kp} is readable by its group or others (mode {stat.S_IMODE(st.st_mode):o}): "
                         f"refused; run `chmod 600 {kp}`, and change the key if others may have read it")
    fd = os.open(kp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, encoding="utf-8") as fh:
        return strong_key(fh.read().strip(), str(kp))


__all__ = ["FINGERPRINT_TEXT", "MIN_KEY_CHARS", "fingerprint", "key_path", "read_key", "strong_key"]
