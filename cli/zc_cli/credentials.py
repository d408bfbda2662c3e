"""Where `zerocloud-cli login` keeps the API token, and the api it was checked against."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "zerocloud"


def token_path() -> Path:
    return config_dir() / "token"


def api_url_path() -> Path:
    return config_dir() / "api_url"


def _read(path: Path) -> str | None:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return value or None


def stored_token() -> str | None:
    return _read(token_path())


def stored_api_url() -> str | None:
    return _read(api_url_path())


def _write_private(path: Path, value: str) -> None:
    # Created 0600 rather than chmod-ed afterwards: the token is never readable by others,
    # not even for a moment; fchmod covers a file that existed with a looser mode.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (value + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def save(token: str, api_url: str) -> Path:
    """Store the token (mode 0600) and the api it belongs to; returns the token's path."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(token_path(), token)
    _write_private(api_url_path(), api_url)
    return token_path()


def forget() -> bool:
    """Remove the stored token; False when there was none."""
    removed = False
    for path in (token_path(), api_url_path()):
        try:
            path.unlink()
            removed = removed or path == token_path()
        except FileNotFoundError:
            pass
    return removed
