"""Downloads against a real HTTP server on 127.0.0.1: verified cache, 404, a connection cut mid-file, a wrong
checksum, corrupt cache files fetched again, offline hints, and the registry's official URLs through a mirror."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from conftest import extra

import vit_tf
from vit_tf import download
from vit_tf.download import ChecksumError, DownloadError, HTTPStatusError, cache_path, fetch
from conversion_helpers import TINY, FileServer, cli, google_npz
from vit_tf import registry
from vit_tf.registry import Source


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_TF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIT_TF_MIRROR", raising=False)
    monkeypatch.delenv("VIT_TF_OFFLINE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    (root / "deit").mkdir(parents=True)
    data = np.random.default_rng(0).bytes(300_000)
    digest = hashlib.sha256(data).hexdigest()
    name = f"deit_tiny_patch16_224-{digest[:8]}.pth"
    (root / "deit" / name).write_bytes(data)
    with FileServer(root) as server:
        yield server, f"deit/{name}", data, digest


def leftovers(home):
    return sorted(p.name for p in home.rglob("*") if p.is_file())


def test_fetch_verifies_prefix_caches_and_shows_progress(home, served, capsys):
    server, rel, data, digest = served
    source = Source(f"{server.url}/{rel}", "deit_pth", sha256_prefix=digest[:8])
    path = fetch(source)
    assert path == cache_path(source.url) and path.is_relative_to(home / "checkpoints")
    assert path.read_bytes() == data
    assert (path.parent / (path.name + ".sha256")).read_text().strip() == digest
    assert path.name in capsys.readouterr().err  # tqdm progress bar on stderr
    assert fetch(source) == path and len(server.requests) == 1  # second call: cache hit, verified, no request


def test_wrong_checksum_is_discarded(home, served):
    server, rel, _, _ = served
    with pytest.raises(ChecksumError, match="does not match the published 0000"):
        fetch(Source(f"{server.url}/{rel}", "deit_pth", sha256="0000" + "f" * 60), progress=False)
    assert leftovers(home) == []
    assert len(server.requests) == 1  # not retried: the same bytes would come back


def test_404_says_where_to_put_the_file(home, served):
    server, _, _, _ = served
    source = Source(f"{server.url}/deit/missing.pth", "deit_pth")
    with pytest.raises(HTTPStatusError, match="HTTP 404") as info:
        fetch(source, progress=False)
    assert str(cache_path(source.url)) in str(info.value)
    assert leftovers(home) == [] and len(server.requests) == 1


def test_connection_cut_mid_file_leaves_nothing(home, served):
    server, rel, _, _ = served
    with pytest.raises(DownloadError, match=r"connection closed after 150000 of 300000 bytes"):
        fetch(Source(f"{server.url}/cut/{rel}", "deit_pth"), progress=False)
    assert leftovers(home) == []
    assert len(server.requests) == download.ATTEMPTS  # retried a bounded number of times


def test_corrupt_or_partial_cache_is_fetched_again(home, served):
    server, rel, data, digest = served
    with_digest = Source(f"{server.url}/{rel}", "deit_pth", sha256_prefix=digest[:8])
    path = fetch(with_digest, progress=False)
    path.write_bytes(data[:1000])  # partial file
    assert fetch(with_digest, progress=False).read_bytes() == data
    assert len(server.requests) == 2

    no_digest = Source(f"{server.url}/{rel}", "deit_pth")  # verified against the digest recorded at download
    path.write_bytes(b"x" * len(data))  # same size, corrupt
    assert fetch(no_digest, progress=False).read_bytes() == data
    assert len(server.requests) == 3


def test_hand_placed_files_are_checked_by_structure(home, served, tmp_path, monkeypatch):
    server, _, _, _ = served
    google_npz(tmp_path / "good.npz", vit_tf.create_model("vit_tiny_patch16_224", **TINY).config)
    good = (tmp_path / "good.npz").read_bytes()
    www = tmp_path / "www" / "vit_models"
    www.mkdir()
    (www / "ViT-Ti.npz").write_bytes(good)
    source = Source(f"{server.url}/vit_models/ViT-Ti.npz", "vit_npz")  # no published digest
    target = cache_path(source.url)
    target.parent.mkdir(parents=True)
    target.write_bytes(good[: len(good) - 100])  # a truncated copy put there by hand: CRC test fails
    assert fetch(source, progress=False).read_bytes() == good
    assert len(server.requests) == 1

    (target.parent / (target.name + ".sha256")).unlink()
    monkeypatch.setenv("VIT_TF_OFFLINE", "1")  # a complete hand-placed file is used without the network
    assert fetch(source, progress=False).read_bytes() == good
    assert len(server.requests) == 1


def test_offline_and_unreachable_say_where_to_put_the_file(home, served, monkeypatch):
    server, rel, _, _ = served
    source = Source(f"{server.url}/{rel}", "deit_pth")
    monkeypatch.setenv("VIT_TF_OFFLINE", "1")
    with pytest.raises(DownloadError, match="VIT_TF_OFFLINE") as info:
        fetch(source, progress=False)
    assert f"put it at {cache_path(source.url)}" in str(info.value)
    monkeypatch.delenv("VIT_TF_OFFLINE")

    server.httpd.shutdown()
    server.httpd.server_close()  # nothing listens on the port any more
    with pytest.raises(DownloadError, match="could not download") as info:
        fetch(source, progress=False)
    assert f"put it at {cache_path(source.url)}" in str(info.value)
    assert leftovers(home) == []


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    """Two registry entries shrunk to tiny configs whose official URLs are served by a local mirror."""
    from conversion_helpers import random_timm_state_dict
    torch = extra("torch")
    extra("timm")

    root = tmp_path / "mirror"
    entries = {}
    vit = registry.WEIGHTS["vit_tiny_patch16_224.augreg_in21k_ft_in1k"]
    vit = dataclasses.replace(vit, config=vit.config.replace(**TINY))
    url = vit.sources[0].url
    local = root / url.split("://", 1)[1]
    local.parent.mkdir(parents=True)
    google_npz(local, vit.config)
    entries[vit.name] = vit

    deit = registry.WEIGHTS["deit_tiny_patch16_224.fb_in1k"]
    deit = dataclasses.replace(deit, config=deit.config.replace(**TINY))
    local = root / "dl.fbaipublicfiles.com" / "deit" / "payload.pth"
    local.parent.mkdir(parents=True)
    torch.save({"model": random_timm_state_dict(deit.config)}, local)
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    name = f"deit_tiny_patch16_224-{digest[:8]}.pth"  # the torch.hub convention the real files follow
    local.rename(local.with_name(name))
    deit = dataclasses.replace(deit, sources=(Source(f"https://dl.fbaipublicfiles.com/deit/{name}", "deit_pth",
                                                     sha256_prefix=digest[:8]),))
    entries[deit.name] = deit
    monkeypatch.setattr(registry, "WEIGHTS", entries)
    with FileServer(root) as server:
        monkeypatch.setenv("VIT_TF_MIRROR", server.url)
        yield server, entries


def test_pretrained_and_convert_all_through_a_mirror(home, tiny_registry, tmp_path, capsys):
    server, entries = tiny_registry
    model = vit_tf.create_model("deit_tiny_patch16_224.fb_in1k", pretrained=True)
    filename = entries["deit_tiny_patch16_224.fb_in1k"].sources[0].filename
    assert server.requests == [f"/dl.fbaipublicfiles.com/deit/{filename}"]
    assert model.get_layer("head").kernel.shape == (48, 10)

    assert cli(["convert", "--all", "--output", tmp_path / "all", "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == set(entries)
    assert all(r == "ok (parity passed)" for r in results.values()), results
    assert len(server.requests) == 2  # the DeiT file came from the cache
    for name in entries:
        config = json.loads((tmp_path / "all" / name / "config.json").read_text())
        assert config["sources"][0]["url"] == entries[name].sources[0].url


def test_convert_from_a_checkpoint_url(home, tmp_path):
    from safetensors.numpy import save_file

    from conversion.convert import convert
    from conversion_helpers import timm_layout

    name = "vit_small_patch16_224.augreg_in1k"
    (tmp_path / "www").mkdir()
    save_file(timm_layout(vit_tf.create_model(name, **TINY).config), str(tmp_path / "www" / "model.safetensors"))
    with FileServer(tmp_path / "www") as server:
        url = f"{server.url}/model.safetensors"
        convert(name, tmp_path / "out", checkpoint=url, parity=False, progress=False, **TINY)
    source = json.loads((tmp_path / "out" / "config.json").read_text())["sources"][0]
    assert source["url"] == url and source["format"] == "timm"
    assert source["path"] == str(cache_path(url))
    assert source["sha256"] == hashlib.sha256((tmp_path / "www" / "model.safetensors").read_bytes()).hexdigest()


def test_unreachable_host_fails_at_once_with_the_manual_hint(home, caplog):
    import socket
    with socket.socket() as s:  # a port nothing listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = Source(f"http://127.0.0.1:{port}/deit/x.pth", "deit_pth")
    with caplog.at_level("WARNING"), pytest.raises(download.UnreachableError) as err:
        fetch(source, progress=False)
    assert "Connection refused" in str(err.value) and "put it at" in str(err.value)
    assert str(cache_path(source.url)) in str(err.value)
    assert not [r for r in caplog.records if "attempt" in r.getMessage()]  # offline: no pointless retry
    assert leftovers(home) == []
