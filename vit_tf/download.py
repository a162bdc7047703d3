"""Download official checkpoints into a verified cache.

Cache: `$VIT_TF_HOME` (default: the user cache dir from platformdirs + "vit_tf"), files under
`checkpoints/<host>/<path of the URL>` so that two releases with the same file name (the 2020 `ViT-B_16.npz` of
ImageNet-21k and of its ImageNet-1k fine-tune) do not collide. A download goes to a temporary name and is renamed
only when complete and verified; beside it, `<file>.sha256` records the digest it was verified with, so that a later
corrupt or partial file is noticed and fetched again.

Environment: `VIT_TF_HOME` (cache root), `VIT_TF_MIRROR` (a base URL serving `<host>/<path>`, as `wget -x` lays
files out), `VIT_TF_OFFLINE=1` (never touch the network).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import uuid
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

from .files import sha256_of

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
ATTEMPTS = 2  # a dropped connection is tried once more; a 404 or a checksum mismatch is not


class DownloadError(OSError):
    """A checkpoint could not be fetched or verified; the message says where to put the file by hand.

    `reason` is the failure alone (logged for a retry), `str(error)` adds the manual instructions."""

    def __init__(self, reason: str, hint: str = ""):
        super().__init__(f"{reason} {hint}".strip())
        self.reason = reason


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the published SHA-256."""


class HTTPStatusError(DownloadError):
    """The server answered with an error status (404, ...)."""


class UnreachableError(DownloadError):
    """The host could not be resolved or refused the connection: offline, asking again does not help."""


def cache_home() -> Path:
    """`$VIT_TF_HOME`, or the per-user cache directory."""
    env = os.environ.get("VIT_TF_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("vit_tf"))


def cache_path(url: str) -> Path:
    """Where the file of `url` lives in the cache."""
    parts = urllib.parse.urlsplit(url)
    relative = urllib.parse.unquote(parts.path).lstrip("/")
    if not parts.netloc or not relative or ".." in Path(relative).parts:
        raise ValueError(f"not a checkpoint URL: {url!r}")
    return cache_home() / "checkpoints" / parts.netloc / relative


def resolve_url(url: str) -> str:
    """The URL actually fetched: `$VIT_TF_MIRROR/<host>/<path>` when a mirror is set."""
    mirror = os.environ.get("VIT_TF_MIRROR")
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def expected_digest(source) -> Optional[str]:
    return getattr(source, "sha256", None) or getattr(source, "sha256_prefix", None)


def digest_matches(actual: str, expected: Optional[str]) -> bool:
    """A full digest must match; a prefix (torch.hub file names such as `deit_tiny_patch16_224-a1311bcf.pth`) must
    start it."""
    return expected is None or actual.startswith(expected.lower())


def structurally_complete(path: Path) -> bool:
    """Best check without a known digest: zip containers (.npz, torch .pth) must pass their CRC test, .safetensors
    must be as long as its header says."""
    try:
        if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):  # a cut zip loses its directory at the end
            with zipfile.ZipFile(path) as z:
                return z.testzip() is None
        if path.suffix == ".safetensors":
            import json
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            return path.stat().st_size == 8 + n + end
        return path.stat().st_size > 0  # legacy (non-zip) pickles carry no length; torch.load catches truncation
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return False


def cached_file_ok(path: Path, expected: Optional[str]) -> bool:
    """Verify a cached file against the published digest, else the digest recorded when it was downloaded, else
    its structure (a file put there by hand)."""
    if not path.is_file():
        return False
    record = path.with_name(path.name + ".sha256")
    recorded = record.read_text().strip() if record.is_file() else None
    if expected is None and recorded is None:
        return structurally_complete(path)
    actual = sha256_of(path)
    return digest_matches(actual, expected) and (recorded is None or actual == recorded)


def manual_hint(url: str, path: Path) -> str:
    return (f"To use it offline, download {url} elsewhere and put it at {path} "
            f"(or set VIT_TF_MIRROR to a server holding <host>/<path>, or pass a local file with --checkpoint).")


def fetch(source, progress: bool = True, timeout: float = 60.0) -> Path:
    """Path of the verified local copy of a registry `Source` (anything with `.url` and optional `.sha256` /
    `.sha256_prefix`), downloading it when the cache lacks a good copy.

    Raises:
        DownloadError (ChecksumError for a digest mismatch) saying where to put the file by hand.
    """
    url = source.url
    path = cache_path(url)
    expected = expected_digest(source)
    if path.exists():
        if cached_file_ok(path, expected):
            return path
        logger.warning("cached %s is incomplete or corrupt; fetching it again", path)
        path.unlink()
    if os.environ.get("VIT_TF_OFFLINE", "") not in ("", "0"):
        raise DownloadError(f"{path.name} is not in the cache and VIT_TF_OFFLINE is set.", manual_hint(url, path))
    path.parent.mkdir(parents=True, exist_ok=True)
    actual_url = resolve_url(url)
    last = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            digest = _download(actual_url, path, expected, progress, timeout)
            break
        except (ChecksumError, HTTPStatusError, UnreachableError):
            raise  # asking again gives the same answer
        except DownloadError as e:
            last = e
            if attempt < ATTEMPTS:
                logger.warning("attempt %d/%d failed: %s; trying again", attempt, ATTEMPTS, e.reason)
    else:
        raise last
    path.with_name(path.name + ".sha256").write_text(digest + "\n")
    return path


def _download(url: str, path: Path, expected: Optional[str], progress: bool, timeout: float) -> str:
    """Stream `url` to a temporary file beside `path`, verify length and digest, rename; returns the digest."""
    from tqdm.auto import tqdm

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    request = urllib.request.Request(url, headers={"User-Agent": "vit_tf"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total is not None else None
            digest, received = hashlib.sha256(), 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name,
                      disable=not progress) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DownloadError(f"{url}: connection closed after {received} of {total} bytes.",
                                manual_hint(url, path))
        actual = digest.hexdigest()
        if not digest_matches(actual, expected):
            raise ChecksumError(f"{url}: SHA-256 {actual} does not match the published {expected}; the download "
                                f"was discarded.", manual_hint(url, path))
        os.replace(tmp, path)
        return actual
    except urllib.error.HTTPError as e:
        raise HTTPStatusError(f"{url}: HTTP {e.code} {e.reason}.", manual_hint(url, path)) from None
    except (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        unreachable = isinstance(reason, (socket.gaierror, ConnectionRefusedError))
        error = UnreachableError if unreachable else DownloadError
        raise error(f"could not download {url} ({type(e).__name__}: {reason}).", manual_hint(url, path)) from e
    finally:
        if tmp.exists():
            tmp.unlink()
