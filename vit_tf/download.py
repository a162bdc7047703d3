"""Download official checkpoints into a verified cache.

Cache: `$VIT_TF_HOME` (default: the user cache dir from platformdirs + "vit_tf"), files under
`checkpoints/<host>/<path of the URL>` so that two releases with the same file name (the 2020 `ViT-B_16.npz` of
ImageNet-21k and of its ImageNet-1k fine-tune) do not collide. A download goes to a uniquely named temporary file
beside its target and is renamed (atomically) only when complete and verified: against the published SHA-256, else,
when none is published, by opening it as its format (`structurally_complete`), so that a transfer cut short is
never cached. Beside the file, `<file>.sha256` records the digest it was verified with, so that a later corrupt or
partial file is noticed and fetched again. A lock file (`.<file>.lock`, flock) makes concurrent fetches of one file
(threads or processes) download it once; the kernel releases it when its holder dies, so a crash blocks no one.
A failed download leaves neither temporary files nor the empty directories it made.

Environment: `VIT_TF_HOME` (cache root), `VIT_TF_MIRROR` (a base URL serving `<host>/<path>`, as `wget -x` lays
files out), `VIT_TF_OFFLINE=1` (never touch the network), `VIT_TF_DOWNLOAD_TIMEOUT` (seconds without a byte before
a download counts as stalled, default 60), `VIT_TF_DOWNLOAD_DEADLINE` (seconds one fetch may take in all, waiting
for another process's download and the retry included, default 3600), `VIT_TF_DOWNLOAD_SPEED_LIMIT` and
`VIT_TF_DOWNLOAD_SPEED_TIME` (abort when fewer than that many bytes per second arrived over the last that many
seconds, as curl's `--speed-limit` / `--speed-time`; defaults 1024 and 60, a limit of 0 turns it off).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import http.client
import logging
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Iterator, Optional

from .files import atomic_file, sha256_of

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
ATTEMPTS = 2  # a dropped connection, a stall or a 5xx is tried once more; a 404 or a checksum mismatch is not
DEFAULT_TIMEOUT = 60.0
DEFAULT_DEADLINE = 3600.0
DEFAULT_SPEED_LIMIT = 1024.0  # bytes per second ...
DEFAULT_SPEED_TIME = 60.0  # ... averaged over this many seconds: a trickle fails in about a minute, not an hour
LOCK_POLL = 0.1  # seconds between tries of a lock held by another download


class DownloadError(OSError):
    """A checkpoint could not be fetched or verified; the message says where to put the file by hand.

    `reason` is the failure alone (logged for a retry), `str(error)` adds the manual instructions; `retry` says
    whether asking again may help."""

    def __init__(self, reason: str, hint: str = "", retry: bool = False):
        super().__init__(f"{reason} {hint}".strip())
        self.reason = reason
        self.hint = hint
        self.retry = retry


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the published SHA-256."""


class HTTPStatusError(DownloadError):
    """The server answered with an error status (404, 500, ...)."""


class UnreachableError(DownloadError):
    """The host could not be resolved or refused the connection: offline, asking again does not help."""


class DownloadTimeout(DownloadError):
    """No byte arrived within the stall timeout, or the whole fetch overran its deadline."""


class DownloadTooSlow(DownloadTimeout):
    """Fewer bytes per second than the speed limit arrived over the speed time (curl's --speed-limit/--speed-time)."""


class CacheNotWritableError(DownloadError):
    """The cache directory cannot be created or written."""


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


ZIP_MAGIC = b"PK\x03\x04"


def structurally_complete(path: Path) -> bool:
    """Best check without a known digest: zip containers (.npz, torch .pth) must pass their CRC test, .safetensors
    must be as long as its header says, anything else must not be empty."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        # by content as well as by name: a cut zip has lost its central directory, so is_zipfile no longer knows it
        if path.suffix.lower() == ".npz" or magic == ZIP_MAGIC:
            with zipfile.ZipFile(path) as z:
                return z.testzip() is None
        if path.suffix.lower() == ".safetensors":
            import json
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
            return path.stat().st_size == 8 + n + end
        return path.stat().st_size > 0  # legacy (non-zip) pickles carry no length; torch.load catches truncation
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile, EOFError):
        return False


def cached_file_ok(path: Path, expected: Optional[str]) -> bool:
    """Verify a cached file against the published digest, else the digest recorded when it was downloaded, else
    its structure (a file put there by hand)."""
    try:
        if not path.is_file():
            return False
        record = _record_path(path)
        recorded = record.read_text().strip() if record.is_file() else None
        if expected is None and recorded is None:
            return structurally_complete(path)
        actual = sha256_of(path)
        return digest_matches(actual, expected) and (recorded is None or actual == recorded)
    except (OSError, ValueError):  # unreadable file or record: not a usable copy
        return False


def manual_hint(url: str, path: Path) -> str:
    return (f"To use it offline, download {url} elsewhere and put it at {path} "
            f"(or set VIT_TF_MIRROR to a server holding <host>/<path>, or pass a local file with --checkpoint).")


def fetch(source, progress: bool = True, timeout: Optional[float] = None,
          deadline: Optional[float] = None, speed_limit: Optional[float] = None,
          speed_time: Optional[float] = None) -> Path:
    """Path of the verified local copy of a registry `Source` (anything with `.url` and optional `.sha256` /
    `.sha256_prefix`), downloading it when the cache lacks a good copy.

    Args:
        timeout: seconds without a byte before the download counts as stalled (and is tried once more);
            default `$VIT_TF_DOWNLOAD_TIMEOUT` or 60.
        deadline: seconds this call may take in all (waiting for a concurrent download of the same file and the
            retry included); default `$VIT_TF_DOWNLOAD_DEADLINE` or 3600.
        speed_limit, speed_time: the download is abandoned (DownloadTooSlow, not retried) when fewer than
            `speed_limit` bytes per second arrived on average over the last `speed_time` seconds of the transfer
            (curl's `--speed-limit` / `--speed-time`; judged when bytes arrive, so at most a stall timeout late);
            defaults `$VIT_TF_DOWNLOAD_SPEED_LIMIT` or 1024 (0: no limit) and `$VIT_TF_DOWNLOAD_SPEED_TIME` or 60.

    Raises:
        DownloadError (ChecksumError, HTTPStatusError, UnreachableError, DownloadTimeout, DownloadTooSlow,
        CacheNotWritableError) naming the URL and saying where to put the file by hand.
    """
    url = source.url
    try:
        path = cache_path(url)
    except ValueError:
        raise DownloadError(f"cannot download {url!r}: not an http(s) URL with a host and a file path.") from None
    expected = expected_digest(source)
    if cached_file_ok(path, expected):  # no lock and no write: a read-only cache of good files works
        return path
    if os.environ.get("VIT_TF_OFFLINE", "") not in ("", "0"):
        state = "is incomplete or corrupt in the cache" if path.exists() else "is not in the cache"
        raise DownloadError(f"{path.name} {state} and VIT_TF_OFFLINE is set.", manual_hint(url, path))
    timeout = _seconds(timeout, "VIT_TF_DOWNLOAD_TIMEOUT", DEFAULT_TIMEOUT, "timeout")
    budget = _seconds(deadline, "VIT_TF_DOWNLOAD_DEADLINE", DEFAULT_DEADLINE, "deadline")
    clock = _Clock(budget, _SpeedLimit(
        _number(speed_limit, "VIT_TF_DOWNLOAD_SPEED_LIMIT", DEFAULT_SPEED_LIMIT, "speed_limit", "bytes per second",
                zero=True),
        _seconds(speed_time, "VIT_TF_DOWNLOAD_SPEED_TIME", DEFAULT_SPEED_TIME, "speed_time")))
    made = _MadeDirs(cache_home())
    try:
        with _exclusive(path, url, clock, made):
            if cached_file_ok(path, expected):  # another thread or process fetched it while we waited
                return path
            if path.exists():
                logger.warning("cached %s is incomplete or corrupt; fetching it again", path)
                path.unlink()
            _record_path(path).unlink(missing_ok=True)  # belongs to the file just removed, or to none
            digest = _download_with_retry(url, path, expected, progress, timeout, clock)
            with atomic_file(_record_path(path)) as tmp:
                Path(tmp).write_text(digest + "\n")
            return path
    except DownloadError:
        made.remove_empty(path.parent)
        raise
    except OSError as e:  # a local failure outside the download itself (removing a corrupt copy, the record)
        made.remove_empty(path.parent)
        raise _local_error(e, url, path) from e


def _download_with_retry(url, path, expected, progress, timeout, clock) -> str:
    actual_url = resolve_url(url)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _download(actual_url, url, path, expected, progress, timeout, clock)
        except DownloadError as e:
            if not e.retry:
                raise  # asking again gives the same answer
            if attempt == ATTEMPTS:
                raise type(e)(f"{e.reason} Gave up after {ATTEMPTS} attempts.", e.hint) from e
            logger.warning("attempt %d/%d failed: %s Trying again.", attempt, ATTEMPTS, e.reason)
    raise AssertionError("unreachable")


def _download(url: str, source_url: str, path: Path, expected: Optional[str], progress: bool, timeout: float,
              clock: "_Clock") -> str:
    """Stream `url` to a uniquely named temporary file beside `path`, verify length and digest (or, with no
    digest, structure), rename; returns the digest."""
    from tqdm.auto import tqdm

    hint = manual_hint(source_url, path)
    # unique per call, so concurrent downloads never share a file; the real suffix last, for the structural check
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part{path.suffix}")
    request = urllib.request.Request(url, headers={"User-Agent": "vit_tf"})
    received = 0
    try:
        try:
            response = urllib.request.urlopen(request, timeout=clock.wait(timeout, url, received, hint))
        except urllib.error.HTTPError as e:
            e.close()
            server_side = e.code >= 500  # may be passing; a 4xx is the answer
            raise HTTPStatusError(f"{url}: HTTP {e.code} {e.reason}.", hint, retry=server_side) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise _network_error(e, url, received, timeout, clock, hint) from e
        with response:
            speed = clock.speed.start()
            total = response.headers.get("Content-Length")
            total = int(total) if total is not None and total.isdigit() else None
            sock = _socket_of(response)
            digest = hashlib.sha256()
            try:
                out = open(tmp, "wb")
            except OSError as e:
                raise _local_error(e, source_url, path) from e
            with out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name,
                           disable=not progress) as bar:
                while True:
                    wait = clock.wait(timeout, url, received, hint)
                    if sock is not None:
                        sock.settimeout(wait)  # a trickle of bytes must not outlive the deadline
                    try:
                        chunk = response.read1(CHUNK)  # one recv: a read never waits for a full chunk
                    except (http.client.HTTPException, OSError) as e:
                        raise _network_error(e, url, received, timeout, clock, hint) from e
                    if not chunk:
                        break
                    try:
                        out.write(chunk)
                    except OSError as e:
                        raise _local_error(e, source_url, path) from e
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                    speed.check(received, url, hint)
        if total is not None and received != total:
            raise DownloadError(f"{url}: connection closed after {received} of {total} bytes.", hint, retry=True)
        actual = digest.hexdigest()
        if not digest_matches(actual, expected):
            raise ChecksumError(f"{url}: SHA-256 {actual} does not match the published {expected}; the download "
                                f"was discarded.", hint)
        if expected is None and not structurally_complete(tmp):
            kind = path.suffix or "checkpoint"
            if total is None:  # no length to check: a transfer cut short looks like a complete one
                raise DownloadError(f"{url}: the server sent no Content-Length and the {received} bytes received do "
                                    f"not open as a complete {kind} file (cut short?); the download was discarded.",
                                    hint, retry=True)
            raise DownloadError(f"{url}: the {received} bytes received do not open as a {kind} file (an error "
                                f"page instead of the checkpoint?); the download was discarded.", hint)
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise _local_error(e, source_url, path) from e
        return actual
    finally:
        tmp.unlink(missing_ok=True)


def _network_error(e: BaseException, url: str, received: int, timeout: float, clock: "_Clock",
                   hint: str) -> DownloadError:
    """The DownloadError for an exception of urlopen or a read."""
    reason = getattr(e, "reason", e)
    if isinstance(reason, TimeoutError):
        if clock.expired():
            return clock.error(url, received, hint)
        when = f"after {received} bytes" if received else "before the first byte"
        return DownloadTimeout(f"{url}: no data for {timeout:g} s, stalled {when} (set VIT_TF_DOWNLOAD_TIMEOUT "
                               f"for a slower connection).", hint, retry=True)
    import socket
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
        return UnreachableError(f"could not download {url} ({type(e).__name__}: {reason}).", hint)
    transient = isinstance(reason, OSError) or isinstance(e, http.client.HTTPException)  # not a bad URL scheme
    return DownloadError(f"could not download {url} ({type(e).__name__}: {reason}).", hint, retry=transient)


def _local_error(e: OSError, url: str, path: Path) -> DownloadError:
    """The DownloadError for a failure to write into the cache."""
    detail = e.strerror or str(e)
    if e.filename and Path(e.filename) != path.parent:
        detail += f": {e.filename}"
    return CacheNotWritableError(
        f"cannot download {url}: cannot write to the checkpoint cache directory {path.parent} ({detail}).",
        f"Set VIT_TF_HOME to a writable directory (the cache root now is {cache_home()}). {manual_hint(url, path)}")


def _seconds(value: Optional[float], env: str, default: float, name: str) -> float:
    """A positive number of seconds: `value`, else `$env`, else `default`."""
    return _number(value, env, default, name, "seconds")


def _number(value: Optional[float], env: str, default: float, name: str, unit: str, zero: bool = False) -> float:
    """A positive (or, with `zero`, non-negative) finite number: `value`, else `$env`, else `default`; a bad value
    is an error naming the argument or the variable."""
    kind = "a non-negative" if zero else "a positive"

    def ok(x):
        return x >= 0 if zero else x > 0  # NaN fails both

    if value is not None:
        try:
            good = ok(float(value))
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ValueError(f"{name} must be {kind} number of {unit}, got {value!r}")
        return float(value)
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if not ok(number):
        raise DownloadError(f"{env}={raw!r} is not {kind} number of {unit}.")
    return number


def _socket_of(response):
    """The socket under an http.client response, to tighten its timeout per read; None where it is not exposed."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    return sock if hasattr(sock, "settimeout") else None


class _Clock:
    """The deadline of one fetch, and its speed limit (None: none)."""

    def __init__(self, budget: float, speed: Optional["_SpeedLimit"] = None):
        self.budget = budget
        self.end = time.monotonic() + budget
        self.speed = speed or _SpeedLimit(0, DEFAULT_SPEED_TIME)

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0.01  # a socket timeout set to the remainder fires a hair early

    def wait(self, timeout: float, url: str, received: int, hint: str) -> float:
        """Seconds the next network wait may take: the stall timeout, cut to what is left of the deadline."""
        if self.expired():
            raise self.error(url, received, hint)
        return min(timeout, self.remaining())

    def error(self, url: str, received: int, hint: str) -> DownloadTimeout:
        return DownloadTimeout(f"{url}: the download did not finish within its deadline of {self.budget:g} s "
                               f"({received} bytes received); the partial file was discarded (set "
                               f"VIT_TF_DOWNLOAD_DEADLINE for a slow connection).", hint)


class _SpeedLimit:
    """curl's --speed-limit / --speed-time for one fetch: `limit` bytes per second over a sliding `seconds` window."""

    def __init__(self, limit: float, seconds: float):
        self.limit, self.seconds = limit, seconds

    def start(self) -> "_SpeedLimit._Transfer":
        """Watch one transfer (each attempt starts afresh when its response arrives)."""
        return self._Transfer(self)

    class _Transfer:
        def __init__(self, rule: "_SpeedLimit"):
            self.rule = rule
            self.samples = collections.deque([(time.monotonic(), 0)])  # (time, bytes received), oldest first

        def check(self, received: int, url: str, hint: str) -> None:
            """Record `received` bytes now; raise DownloadTooSlow when the last `seconds` brought too few."""
            if not self.rule.limit:
                return
            now = time.monotonic()
            self.samples.append((now, received))
            # the newest sample at least `seconds` old is the start of the window; older ones are not needed
            while len(self.samples) > 1 and now - self.samples[1][0] >= self.rule.seconds:
                self.samples.popleft()
            then, before = self.samples[0]
            if now - then < self.rule.seconds:
                return  # not yet a whole window since the transfer began
            rate = (received - before) / (now - then)
            if rate < self.rule.limit:
                raise DownloadTooSlow(
                    f"{url}: too slow, {rate:.0f} bytes/s over the last {now - then:.1f} s, below the limit of "
                    f"{self.rule.limit:g} bytes/s over {self.rule.seconds:g} s ({received} bytes received); the "
                    f"partial file was discarded (set VIT_TF_DOWNLOAD_SPEED_LIMIT lower, or 0 to turn the limit "
                    f"off, or VIT_TF_DOWNLOAD_SPEED_TIME longer, for a slow connection).", hint)


class _MadeDirs:
    """The directories a fetch created under the cache root, to remove again if they stay empty."""

    def __init__(self, root: Path):
        self.root = root
        self.top: Optional[Path] = None

    def make(self, directory: Path) -> None:
        missing = None
        for d in (directory, *directory.parents):
            if d.is_dir():
                break
            missing = d
        directory.mkdir(parents=True, exist_ok=True)
        if missing is not None and (self.top is None or len(missing.parts) < len(self.top.parts)):
            self.top = missing

    def remove_empty(self, directory: Path) -> None:
        """Remove `directory` and its parents up to the highest one made, while they are empty."""
        if self.top is None:
            return
        for d in (directory, *directory.parents):
            if len(d.parts) < len(self.top.parts):
                return
            try:
                d.rmdir()  # fails unless empty: a directory another download uses stays
            except OSError:
                return


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def _exclusive(path: Path, url: str, clock: _Clock, made: _MadeDirs) -> Iterator[None]:
    """Hold the lock file of `path` (creating its directory) for one download; waits at most until the deadline.

    flock locks belong to an open file, so two threads exclude each other as two processes do, and the kernel drops
    the lock of a process that dies. The holder deletes the lock file; a waiter that then gets the lock of the
    deleted file sees so and locks the new one."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): unique temporary names and an atomic rename still keep the cache sound
        fcntl = None
    lock = _lock_path(path)
    hint = manual_hint(url, path)
    told = False
    while True:
        try:
            made.make(path.parent)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            if clock.expired():  # directories keep vanishing: a failing download elsewhere tidies up; try again
                raise clock.error(url, 0, hint) from None
            time.sleep(0.01)
            continue
        except OSError as e:
            raise _local_error(e, url, path) from e
        try:
            if fcntl is not None:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if clock.expired():
                            raise DownloadTimeout(
                                f"{url}: gave up after {clock.budget:g} s waiting for another download of it into "
                                f"{path} (lock file {lock}, held by a running process; set VIT_TF_DOWNLOAD_DEADLINE "
                                f"to wait longer).", hint) from None
                        if not told:
                            logger.info("waiting for another download of %s (lock file %s)", url, lock)
                            told = True
                        time.sleep(min(LOCK_POLL, max(clock.remaining(), 0)))
                    except OSError as e:  # a file system without flock: go on unlocked, as without fcntl
                        logger.debug("cannot lock %s (%s); downloading without a lock", lock, e)
                        break
            try:
                current = os.stat(lock)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
                os.close(fd)  # the previous holder deleted this lock file; lock the current one
                continue
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        break
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            lock.unlink()
        made.remove_empty(path.parent)
        raise
    else:
        with contextlib.suppress(OSError):
            lock.unlink()
    finally:
        os.close(fd)
