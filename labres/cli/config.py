"""Where the CLI finds the portal and its token: flags, then LABRES_URL / LABRES_TOKEN, then the file `labres login` writes."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from .errors import CliError

TYPE_CHECKING = False  # typing is for mypy only: the CLI starts fast without importing it
if TYPE_CHECKING:
    from typing import Any

NOT_LOGGED_IN = "not logged in: run `labres login` or set LABRES_TOKEN"


def config_path() -> Path:
    """~/.config/labres/config.json, or the file LABRES_CONFIG names."""
    override = os.environ.get("LABRES_CONFIG")
    return Path(override).expanduser() if override else Path.home() / ".config" / "labres" / "config.json"


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/labres, else ~/.cache/labres (made 0700, its files 0600: see write_private)."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base and os.path.isabs(base) else Path.home() / ".cache") / "labres"


def read_config() -> dict[str, Any]:
    """The saved settings ({} when there is no file yet)."""
    path = config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror.lower()}") from None  # type: ignore[union-attr]  # the OS's errors carry one
    try:
        data = json.loads(text)
    except ValueError:
        raise CliError(f"{path} is not valid JSON; run `labres login` again") from None
    return data if isinstance(data, dict) else {}


def write_config(data: dict[str, Any]) -> Path:
    """Save the settings readable by the owner only: the folder 0700, the file 0600, replaced atomically."""
    path = config_path()
    write_private(path, json.dumps(data, indent=2) + "\n")
    return path


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # the umask may have narrowed it; never widen
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def normalize_url(url: str | None) -> str:
    """'https://labres.example.org/' and '…/api/v1/' both mean the portal at https://labres.example.org."""
    url = (url or "").strip().rstrip("/")
    if url.endswith("/api/v1"):
        url = url[: -len("/api/v1")]
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise CliError(f"'{url}' is not the portal's address; write e.g. https://labres.example.org")
    return url


class Portal:
    """Where to send requests, with which token, and (when the saved token is used) whose it is."""

    def __init__(self, url: str, token: str, username: str | None = None) -> None:
        self.url, self.token, self.username = url, token, username


def portal(url_flag: str | None = None, token_flag: str | None = None) -> Portal:
    """The Portal to talk to, or a CliError saying what is missing.

    A saved token is used only for the portal it was issued by, so pointing LABRES_URL
    somewhere else never sends it there.
    """
    saved = read_config()
    url = url_flag or os.environ.get("LABRES_URL") or saved.get("url")
    if not url:
        raise CliError("no portal configured: run `labres login` or set LABRES_URL")
    url = normalize_url(url)
    token = token_flag or os.environ.get("LABRES_TOKEN")
    if token:
        return Portal(url, token)
    if saved.get("token") and _same_portal(saved.get("url"), url):
        return Portal(url, saved["token"], saved.get("username"))
    raise CliError(NOT_LOGGED_IN)


def _same_portal(saved_url: str | None, url: str) -> bool:
    try:
        return bool(saved_url) and normalize_url(saved_url) == url
    except CliError:
        return False


def default_server() -> str:
    """The server this command runs on: LABRES_SERVER, else this host's short name."""
    return os.environ.get("LABRES_SERVER") or socket.gethostname().split(".")[0]
