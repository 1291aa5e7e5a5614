"""The multi-host scenario's gate: skipped with its reason where namespaces are unavailable, never silently in CI."""

from __future__ import annotations

import os

import netns
import pytest

from faults.harness import require_netns

pytestmark = pytest.mark.faults


def test_unavailable_netns_fails_in_ci_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "netns_unavailable_reason", lambda: "the ip tool is not installed")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run"):
        require_netns()


@pytest.mark.parametrize(("ci", "euid"), [("", 0), ("true", 1000), ("", 1000)])
def test_unavailable_netns_skips_with_reason_elsewhere(monkeypatch: pytest.MonkeyPatch, ci: str, euid: int) -> None:
    monkeypatch.setattr(netns, "netns_unavailable_reason", lambda: "network namespaces need root (ip netns add)")
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="need root"):
        require_netns()
