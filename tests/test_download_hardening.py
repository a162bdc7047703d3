"""Downloads under bad conditions, against scripted HTTP servers on 127.0.0.1: deadlines and stalls, files cut
short without a Content-Length, HTTP errors, concurrent fetches of one file (threads and processes, a crashed lock
holder), a cache that cannot be written, and no empty directories left behind."""

import contextlib
import encodings.cp437  # noqa: F401  (zipfile needs it; loaded before the test drops to an unprivileged user)
import hashlib
import http.server
import io
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vit_tf import download
from vit_tf.download import (CacheNotWritableError, DownloadError, DownloadTimeout, DownloadTooSlow, HTTPStatusError,
                             cache_path, fetch)

ROOT = Path(__file__).resolve().parents[1]


class ScriptedServer:
    """An HTTP server on 127.0.0.1 (random port, own thread) whose GET handlers are test functions `route(handler)`.

    Unknown paths get 404; `requests` lists the paths asked for. On exit `stop` is set, which ends every handler
    still waiting on it, and the server is shut down.
    """

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.stop = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                route = outer.routes.get(self.path)
                try:
                    if route is None:
                        self.send_error(404)
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first, as several tests intend

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def send(handler, data: bytes, length: bool = True, upto: int = None):
    """Answer 200 with `data` (the first `upto` bytes only, then close), with or without a Content-Length."""
    handler.send_response(200)
    if length:
        handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()  # HTTP/1.0: the connection closes after the body, which is how a length-less body ends
    handler.wfile.write(data if upto is None else data[:upto])
    handler.wfile.flush()


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in ("VIT_TF_MIRROR", "VIT_TF_OFFLINE", "VIT_TF_DOWNLOAD_DEADLINE", "VIT_TF_DOWNLOAD_TIMEOUT",
                 "VIT_TF_DOWNLOAD_SPEED_LIMIT", "VIT_TF_DOWNLOAD_SPEED_TIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIT_TF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


def entries(home):
    """Every file and directory under `home`, relative."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []


def source(server, route, sha256=None):
    return SimpleNamespace(url=f"{server.url}{route}", sha256=sha256)


def npz_bytes():
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, **{f"Transformer/encoderblock_{i}/kernel": rng.standard_normal((64, 64)) for i in range(8)})
    return buffer.getvalue()


def safetensors_bytes():
    from safetensors.numpy import save
    rng = np.random.default_rng(1)
    return save({f"blocks.{i}.weight": rng.standard_normal((64, 64)).astype(np.float32) for i in range(8)})


def pth_zip_bytes():
    """A zip container laid out as torch.save writes it since torch 1.6 (pickle plus one file per storage)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/data/0", np.random.default_rng(2).bytes(200_000))
    return buffer.getvalue()


FORMATS = {".npz": npz_bytes, ".safetensors": safetensors_bytes, ".pth": pth_zip_bytes}


# ---------------------------------------------------------------------------------------------------- deadlines


def trickle(server):
    """Headers for 1000 bytes, then one byte a second; ten at most."""
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(10):
            if server.stop.wait(1.0):
                return
            handler.wfile.write(b"x")
            handler.wfile.flush()
    return route


@pytest.mark.parametrize("via", ["argument", "environment"])
def test_deadline_stops_a_trickling_download(home, server, monkeypatch, via):
    server.routes["/slow.pth"] = trickle(server)
    if via == "environment":
        monkeypatch.setenv("VIT_TF_DOWNLOAD_DEADLINE", "2")
    start = time.monotonic()
    with pytest.raises(DownloadTimeout, match="did not finish within its deadline of 2 s") as info:
        fetch(source(server, "/slow.pth"), progress=False, **({"deadline": 2} if via == "argument" else {}))
    elapsed = time.monotonic() - start
    assert 1.9 < elapsed < 3.5  # each byte came well within the 60 s stall timeout: only the deadline stopped it
    assert f"{server.url}/slow.pth" in str(info.value) and "VIT_TF_DOWNLOAD_DEADLINE" in str(info.value)
    assert "bytes received" in str(info.value)
    assert server.requests == ["/slow.pth"]  # an overrun deadline is not retried
    assert entries(home) == []


def steady(server, rate, seconds, piece=50):
    """Headers for rate * seconds bytes, then `piece` bytes at a time at `rate` bytes per second."""
    total = int(rate * seconds)

    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        start, sent = time.monotonic(), 0
        while sent < total:
            if server.stop.wait(max(0.0, start + sent / rate - time.monotonic())):
                return
            handler.wfile.write(b"x" * min(piece, total - sent))
            handler.wfile.flush()
            sent += piece
    return route


@pytest.mark.parametrize("via", ["argument", "environment"])
def test_speed_limit_stops_a_trickle_long_before_the_deadline(home, server, monkeypatch, via):
    """curl's --speed-limit / --speed-time: 500 bytes/s against a limit of 2000 bytes/s over 1 s fails after about
    a second (every piece arrives well within the stall timeout and the deadline is an hour); it is not retried."""
    server.routes["/slow.npz"] = steady(server, rate=500, seconds=20)
    limits = {"speed_limit": 2000, "speed_time": 1}
    if via == "environment":
        monkeypatch.setenv("VIT_TF_DOWNLOAD_SPEED_LIMIT", "2000")
        monkeypatch.setenv("VIT_TF_DOWNLOAD_SPEED_TIME", "1")
    start = time.monotonic()
    with pytest.raises(DownloadTooSlow, match=r"too slow, \d+ bytes/s over the last 1\.\d s, below the limit of "
                                              r"2000 bytes/s over 1 s") as info:
        fetch(source(server, "/slow.npz"), progress=False, **(limits if via == "argument" else {}))
    assert 0.9 < time.monotonic() - start < 2.5
    message = str(info.value)
    assert f"{server.url}/slow.npz" in message and "bytes received" in message and "put it at" in message
    assert "VIT_TF_DOWNLOAD_SPEED_LIMIT" in message and "VIT_TF_DOWNLOAD_SPEED_TIME" in message
    assert isinstance(info.value, DownloadTimeout)  # callers that catch timeouts catch this one too
    assert server.requests == ["/slow.npz"] and entries(home) == []


def test_speed_limit_passes_a_download_above_it_and_zero_turns_it_off(home, server):
    """A steady 4000 bytes/s for 1.2 s stays above a 500 bytes/s limit over every 0.5 s window: it is cached. With
    the limit at 0 a 500 bytes/s trickle is stopped by the deadline instead."""
    server.routes["/steady.bin"] = steady(server, rate=4000, seconds=1.2)
    path = fetch(source(server, "/steady.bin"), progress=False, speed_limit=500, speed_time=0.5)
    assert path.read_bytes() == b"x" * 4800
    server.routes["/slow.bin"] = steady(server, rate=500, seconds=20)
    with pytest.raises(DownloadTimeout, match="did not finish within its deadline of 1.2 s"):
        fetch(source(server, "/slow.bin"), progress=False, deadline=1.2, speed_limit=0, speed_time=0.3)


def test_bad_speed_settings_are_named(home, server, monkeypatch):
    with pytest.raises(ValueError, match="speed_limit must be a non-negative number of bytes per second, got -1"):
        fetch(source(server, "/x.npz"), progress=False, speed_limit=-1)
    with pytest.raises(ValueError, match="speed_time must be a positive number of seconds, got 0"):
        fetch(source(server, "/x.npz"), progress=False, speed_time=0)
    monkeypatch.setenv("VIT_TF_DOWNLOAD_SPEED_LIMIT", "fast")
    with pytest.raises(DownloadError, match="VIT_TF_DOWNLOAD_SPEED_LIMIT='fast' is not a non-negative number"):
        fetch(source(server, "/x.npz"), progress=False)
    assert server.requests == [] and entries(home) == []


@pytest.mark.parametrize("when", ["before headers", "after headers"])
def test_stall_timeout_is_retried_once_then_fails(home, server, when):
    def silent(handler):
        if when == "after headers":
            handler.send_response(200)
            handler.send_header("Content-Length", "1000")
            handler.end_headers()
            handler.wfile.flush()
        server.stop.wait(10)  # says nothing more until the test ends

    server.routes["/silent.npz"] = silent
    start = time.monotonic()
    with pytest.raises(DownloadTimeout, match=r"no data for 0\.5 s, stalled before the first byte") as info:
        fetch(source(server, "/silent.npz"), progress=False, timeout=0.5)
    assert time.monotonic() - start < 3
    assert "Gave up after 2 attempts" in str(info.value) and "put it at" in str(info.value)
    assert server.requests == ["/silent.npz"] * download.ATTEMPTS
    assert entries(home) == []


def test_bad_time_settings_are_named(home, server, monkeypatch):
    monkeypatch.setenv("VIT_TF_DOWNLOAD_DEADLINE", "an hour")
    with pytest.raises(DownloadError, match="VIT_TF_DOWNLOAD_DEADLINE='an hour' is not a positive number"):
        fetch(source(server, "/x.npz"), progress=False)
    monkeypatch.delenv("VIT_TF_DOWNLOAD_DEADLINE")
    with pytest.raises(ValueError, match="deadline must be a positive number"):
        fetch(source(server, "/x.npz"), progress=False, deadline=0)
    assert server.requests == [] and entries(home) == []


# ------------------------------------------------------------------------------------------ no Content-Length


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_cut_without_content_length_is_not_cached(home, server, suffix):
    data = FORMATS[suffix]()
    server.routes[f"/cut{suffix}"] = lambda h: send(h, data, length=False, upto=len(data) // 2)
    server.routes[f"/whole{suffix}"] = lambda h: send(h, data, length=False)

    cut = source(server, f"/cut{suffix}")
    with pytest.raises(DownloadError, match=f"sent no Content-Length and the {len(data) // 2} bytes received do not "
                                            rf"open as a complete \{suffix} file") as info:
        fetch(cut, progress=False)
    assert cut.url in str(info.value) and f"put it at {cache_path(cut.url)}" in str(info.value)
    assert server.requests == [f"/cut{suffix}"] * download.ATTEMPTS  # a cut transfer is worth one more try
    assert entries(home) == []

    whole = fetch(source(server, f"/whole{suffix}"), progress=False)  # the same bytes, complete: accepted
    assert whole.read_bytes() == data
    assert (whole.parent / (whole.name + ".sha256")).read_text().strip() == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in whole.parent.iterdir()) == [whole.name, whole.name + ".sha256"]


def test_an_error_page_in_place_of_a_checkpoint_is_refused_at_once(home, server):
    page = b"<html><body>Please log in to the network</body></html>"
    server.routes["/ViT-B_16.npz"] = lambda h: send(h, page)
    with pytest.raises(DownloadError, match=rf"the {len(page)} bytes received do not open as a \.npz file "
                                            r"\(an error page"):
        fetch(source(server, "/ViT-B_16.npz"), progress=False)
    assert server.requests == ["/ViT-B_16.npz"]  # a complete answer: asking again gives the same page
    assert entries(home) == []


# ------------------------------------------------------------------------------------------------ HTTP errors


def test_404_fails_at_once_naming_the_url_and_the_cache_path(home, server):
    missing = source(server, "/deit/missing.pth")
    with pytest.raises(HTTPStatusError) as info:
        fetch(missing, progress=False)
    message = str(info.value)
    assert isinstance(info.value, OSError)
    assert f"{missing.url}: HTTP 404" in message and f"put it at {cache_path(missing.url)}" in message
    assert "\n" not in message
    assert server.requests == ["/deit/missing.pth"]
    assert entries(home) == []


def test_500_is_retried_once_then_fails_with_the_manual_hint(home, server):
    server.routes["/deit/broken.pth"] = lambda h: h.send_error(500)
    broken = source(server, "/deit/broken.pth")
    with pytest.raises(HTTPStatusError) as info:
        fetch(broken, progress=False)
    message = str(info.value)
    assert f"{broken.url}: HTTP 500" in message and "Gave up after 2 attempts" in message
    assert f"put it at {cache_path(broken.url)}" in message
    assert server.requests == ["/deit/broken.pth"] * download.ATTEMPTS
    assert entries(home) == []


def test_a_passing_500_is_survived(home, server):
    data = pth_zip_bytes()
    answers = iter([lambda h: h.send_error(500), lambda h: send(h, data)])
    server.routes["/deit/flaky.pth"] = lambda h: next(answers)(h)
    assert fetch(source(server, "/deit/flaky.pth"), progress=False).read_bytes() == data
    assert len(server.requests) == 2


def test_a_malformed_url_is_a_download_error(home):
    with pytest.raises(DownloadError, match="cannot download 'https://example.org/': not an http"):
        fetch(SimpleNamespace(url="https://example.org/"), progress=False)


# ------------------------------------------------------------------------------------ concurrent downloads


def gated(server, data, gate):
    """Serve `data` once `gate` is set (10 s at most)."""
    def route(handler):
        gate.wait(10)
        send(handler, data)
    return route


def wait_until(condition, seconds=10.0):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def run_in_thread(function):
    """Start `function` in a thread; returns a dict that gets its "result" or "error"."""
    outcome = {}

    def target():
        try:
            outcome["result"] = function()
        except BaseException as e:  # handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def test_two_threads_fetching_one_file_download_it_once(home, server, caplog):
    data, gate = npz_bytes(), threading.Event()
    server.routes["/vit/ViT-B_16.npz"] = gated(server, data, gate)
    src = source(server, "/vit/ViT-B_16.npz")
    with caplog.at_level("INFO", logger="vit_tf.download"):
        first = run_in_thread(lambda: fetch(src, progress=False))
        wait_until(lambda: server.requests)  # the first holds the lock and is downloading
        second = run_in_thread(lambda: fetch(src, progress=False))
        wait_until(lambda: any("waiting for another download" in r.getMessage() for r in caplog.records))
        assert "result" not in second and "error" not in second  # blocked on the lock, not downloading
        gate.set()
        for outcome in (first, second):
            outcome["thread"].join(10)
    assert first.get("result") == second.get("result") == cache_path(src.url), (first, second)
    assert cache_path(src.url).read_bytes() == data
    assert server.requests == ["/vit/ViT-B_16.npz"]  # the second found the first one's file
    assert sorted(p.name for p in cache_path(src.url).parent.iterdir()) == ["ViT-B_16.npz", "ViT-B_16.npz.sha256"]


def test_unlocked_concurrent_downloads_still_leave_one_good_file(home, server, monkeypatch):
    """Where flock is missing (Windows) two downloads of one file run at once: unique temporary names and an atomic
    rename still leave one complete file and no temporary ones."""
    @contextlib.contextmanager
    def no_lock(path, url, clock, made):
        made.make(path.parent)
        yield

    monkeypatch.setattr(download, "_exclusive", no_lock)
    data, both = safetensors_bytes(), threading.Barrier(2, timeout=10)

    def route(handler):
        both.wait()  # neither is answered before both have asked: the downloads overlap
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for i in range(0, len(data), 4096):  # in pieces, so that both write their temporary files at once
            handler.wfile.write(data[i:i + 4096])
            handler.wfile.flush()

    server.routes["/m/model.safetensors"] = route
    src = source(server, "/m/model.safetensors")
    outcomes = [run_in_thread(lambda: fetch(src, progress=False)) for _ in range(2)]
    for outcome in outcomes:
        outcome["thread"].join(10)
    assert [o.get("result") for o in outcomes] == [cache_path(src.url)] * 2, outcomes
    assert len(server.requests) == 2
    assert cache_path(src.url).read_bytes() == data
    assert sorted(p.name for p in cache_path(src.url).parent.iterdir()) == ["model.safetensors",
                                                                           "model.safetensors.sha256"]


# Imports vit_tf.download alone: `import vit_tf` would load TensorFlow (seconds) in each process.
FETCH_IN_A_PROCESS = """
import logging, sys, types
package = types.ModuleType("vit_tf")
package.__path__ = [sys.argv[1]]
sys.modules["vit_tf"] = package
from vit_tf.download import fetch
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
print(fetch(types.SimpleNamespace(url=sys.argv[2]), progress=False), flush=True)
"""


def read_until(stream, text, seconds=10.0):
    """Lines of a subprocess's unbuffered pipe up to the first holding `text`; fails after `seconds`."""
    seen, end = "", time.monotonic() + seconds
    while text not in seen:
        left = end - time.monotonic()
        assert left > 0, f"no {text!r} in {seen!r}"
        if select.select([stream], [], [], left)[0]:
            line = stream.readline()  # unbuffered: nothing read past the line is hidden from select
            assert line, f"stream ended without {text!r}: {seen!r}"
            seen += line.decode()
    return seen


def test_two_processes_fetching_one_file_download_it_once(home, server):
    data, gate = pth_zip_bytes(), threading.Event()
    server.routes["/deit/deit_tiny.pth"] = gated(server, data, gate)
    url = f"{server.url}/deit/deit_tiny.pth"
    command = [sys.executable, "-c", FETCH_IN_A_PROCESS, str(ROOT / "vit_tf"), url]
    processes = []
    try:
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0))
        wait_until(lambda: server.requests)
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0))
        read_until(processes[1].stderr, "waiting for another download")
        gate.set()
        outputs = [p.communicate(timeout=20) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert [out.decode().strip() for out, _ in outputs] == [str(cache_path(url))] * 2
    assert server.requests == ["/deit/deit_tiny.pth"]
    assert cache_path(url).read_bytes() == data
    assert sorted(p.name for p in cache_path(url).parent.iterdir()) == ["deit_tiny.pth", "deit_tiny.pth.sha256"]


HOLD_THE_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)
"""


def test_a_live_lock_holder_bounds_the_wait_and_a_killed_one_blocks_nothing(home, server, caplog):
    data = npz_bytes()
    server.routes["/vit/ViT-S.npz"] = lambda h: send(h, data)
    src = source(server, "/vit/ViT-S.npz")
    lock = download._lock_path(cache_path(src.url))
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(lock)], stdout=subprocess.PIPE, bufsize=0)
    try:
        read_until(holder.stdout, "locked")
        start = time.monotonic()
        with pytest.raises(DownloadTimeout, match="gave up after 1 s waiting for another download") as info:
            fetch(src, progress=False, deadline=1)
        assert 0.9 < time.monotonic() - start < 3
        assert str(lock) in str(info.value) and src.url in str(info.value)
        assert server.requests == []

        with caplog.at_level("INFO", logger="vit_tf.download"):
            waiting = run_in_thread(lambda: fetch(src, progress=False, deadline=20))
            wait_until(lambda: any("waiting for another download" in r.getMessage() for r in caplog.records))
            assert server.requests == [] and waiting["thread"].is_alive()
            holder.send_signal(signal.SIGKILL)  # dies holding the lock: the kernel drops it
            waiting["thread"].join(10)
    finally:
        holder.kill()
        holder.wait()
    assert waiting.get("result") == cache_path(src.url), waiting
    assert server.requests == ["/vit/ViT-S.npz"]
    assert sorted(p.name for p in lock.parent.iterdir()) == ["ViT-S.npz", "ViT-S.npz.sha256"]  # lock file gone


# ------------------------------------------------------------------------------------------ unwritable cache


def test_a_cache_under_a_regular_file_is_named_with_the_fix(tmp_path, server, monkeypatch):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("a file where the cache should be")
    monkeypatch.setenv("VIT_TF_HOME", str(blocker / "home"))
    server.routes["/x.npz"] = lambda h: send(h, npz_bytes())
    src = source(server, "/x.npz")
    with pytest.raises(CacheNotWritableError) as info:
        fetch(src, progress=False)
    message = str(info.value)
    assert f"cannot write to the checkpoint cache directory {cache_path(src.url).parent}" in message
    assert "Not a directory" in message and "Set VIT_TF_HOME to a writable directory" in message
    assert src.url in message
    assert server.requests == []  # nothing downloaded only to be thrown away
    assert blocker.read_text() == "a file where the cache should be"


@contextlib.contextmanager
def without_write_permission():
    """Run the block as user `nobody` when we are root (root may write anywhere); otherwise as we are."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.setegid(65534)
        os.seteuid(65534)
    except PermissionError:  # a container's root without CAP_SETUID
        os.setegid(0)
        from conftest import in_ci

        if in_ci():  # CI's machine is a plain root shell: this test must run there
            pytest.fail("CI runs as root without CAP_SETUID: the read-only cache case cannot be tested")
        pytest.skip("root cannot drop its write permission here; the regular-file case still runs")
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_read_only_cache_serves_good_files_and_names_itself_for_missing_ones(server, monkeypatch):
    data = npz_bytes()
    server.routes["/vit/new.npz"] = lambda h: send(h, data)
    # under /tmp itself: pytest's own temporary directories are closed to other users
    readonly = Path(tempfile.mkdtemp(prefix="vit_tf_readonly_"))
    try:
        monkeypatch.setenv("VIT_TF_HOME", str(readonly))
        good, missing = source(server, "/vit/good.npz"), source(server, "/vit/new.npz")
        cache_path(good.url).parent.mkdir(parents=True)
        cache_path(good.url).write_bytes(data)  # put there by hand, no record: checked by structure
        for directory in (readonly, *cache_path(good.url).parents):
            if directory.is_relative_to(readonly):
                directory.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        with without_write_permission():
            assert fetch(good, progress=False) == cache_path(good.url)  # reading needs no write
            with pytest.raises(CacheNotWritableError) as info:
                fetch(missing, progress=False)
        message = str(info.value)
        assert f"cannot write to the checkpoint cache directory {cache_path(missing.url).parent}" in message
        assert "Permission denied" in message and "Set VIT_TF_HOME to a writable directory" in message
        assert missing.url in message
        assert server.requests == []
    finally:
        for directory in (readonly, *readonly.rglob("*")):
            if directory.is_dir():
                directory.chmod(0o700)
        shutil.rmtree(readonly)


# ----------------------------------------------------------------------------------------- empty directories


def test_a_failed_download_removes_only_the_directories_it_made(home, server):
    fresh = source(server, "/a/b/c/missing.npz")
    with pytest.raises(HTTPStatusError):
        fetch(fresh, progress=False)
    assert not home.exists()  # it made the cache root too, and removed it again

    host = cache_path(fresh.url).parents[3]  # checkpoints/<host>, made by hand beforehand: stays
    (host / "other").mkdir(parents=True)
    server.routes["/a/b/cut.npz"] = lambda h: send(h, npz_bytes(), length=False, upto=1000)
    with pytest.raises(DownloadError, match="sent no Content-Length"):
        fetch(source(server, "/a/b/cut.npz"), progress=False)
    assert entries(home) == ["checkpoints", f"checkpoints/{host.name}", f"checkpoints/{host.name}/other"]


def test_offline_with_a_corrupt_copy_says_so_and_keeps_it(home, server, monkeypatch):
    src = source(server, "/vit/ViT-L.npz")
    cache_path(src.url).parent.mkdir(parents=True)
    cache_path(src.url).write_bytes(npz_bytes()[:500])
    monkeypatch.setenv("VIT_TF_OFFLINE", "1")
    with pytest.raises(DownloadError, match="ViT-L.npz is incomplete or corrupt in the cache and VIT_TF_OFFLINE"):
        fetch(src, progress=False)
    assert cache_path(src.url).stat().st_size == 500 and server.requests == []
