"""Fixtures shared by the deployment tests (compose file, Dockerfile, systemd units, netns harness)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO = TESTS_DIR.parent

# tests/netns.py is a plain module next to the test packages; make it importable however pytest was started.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
