"""One policy for the test extra: locally a missing torch/timm skips the parity proofs; in CI it fails the run."""

import pytest

import conftest


def test_missing_reference_stack_fails_in_ci_only(monkeypatch):
    monkeypatch.setattr(conftest, "REFERENCE_STACK", ("torch", "no_such_module_for_vit_tf"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.UsageError, match=r"\['no_such_module_for_vit_tf'\] cannot be imported"):
        conftest.pytest_sessionstart(None)
    monkeypatch.setenv("CI", "")
    conftest.pytest_sessionstart(None)  # locally the parity tests skip with their own message instead

