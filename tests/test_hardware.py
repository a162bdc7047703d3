"""vit_tf.hardware: the bfloat16 unit read from the CPU flags, and the one warning for an emulated bfloat16 model."""

from __future__ import annotations

import logging

import pytest

import vit_tf
from vit_tf import hardware


@pytest.mark.parametrize("flags,unit,path", [
    ({"avx2", "avx512f", "amx_tile", "amx_bf16", "avx512_bf16"}, "amx_bf16", "CPU with AMX"),
    ({"avx2", "avx512f", "avx512_bf16"}, "avx512_bf16", "CPU with AVX-512-BF16"),
    ({"avx2", "fma"}, None, "CPU, emulated"),
    (set(), None, "CPU, emulated"),
])
def test_bfloat16_unit_from_flags(monkeypatch, flags, unit, path):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    assert hardware.cpu_bfloat16_unit() == unit
    assert hardware.bfloat16_path() == path  # the tests run with no GPU visible (conftest)


def test_an_emulated_bfloat16_model_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(hardware, "_warned", False)
    small = dict(depth=1, img_size=32, patch_size=16, num_classes=2)
    with caplog.at_level(logging.WARNING, logger="vit_tf.hardware"):
        vit_tf.create_model("vit_tiny_patch16_224", **small)  # float32: nothing to say
        assert not caplog.records
        vit_tf.create_model("vit_tiny_patch16_224", dtype="bfloat16", **small)
        vit_tf.create_model("vit_tiny_patch16_224", dtype="mixed_bfloat16", **small)
    assert len(caplog.records) == 1 and "emulated" in caplog.records[0].getMessage()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(hardware, "_warned", False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vit_tf.hardware"):
        vit_tf.create_model("vit_tiny_patch16_224", dtype="bfloat16", **small)
    assert not caplog.records
