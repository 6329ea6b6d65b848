import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "test-data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def watchtower_bin() -> str:
    """The gateway binary: $WATCHTOWER_BIN (make test sets it), else target/debug/watchtower.
    A missing binary is a failure, not a skip."""
    path = os.environ.get("WATCHTOWER_BIN") or str(ROOT / "target" / "debug" / "watchtower")
    assert os.path.isfile(path) and os.access(path, os.X_OK), (
        f"watchtower binary not found at {path}: run `cargo build` (make test does) or set WATCHTOWER_BIN"
    )
    return path


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    return Path(sys.executable).parent
