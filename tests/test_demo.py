"""The README's first command, ``bin/demo``: builds the sample, mounts it, serves the mount and
prints a layer source that really serves a point annotation layer; stopping it unmounts."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests
from support import TIMEOUT, free_port, is_mounted

ROOT = Path(__file__).resolve().parent.parent


def test_demo_serves_the_sample_and_unmounts_on_stop(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / "bin" / "demo"), "--port", str(port), "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        source = None
        deadline = time.monotonic() + 5 * TIMEOUT
        while source is None and time.monotonic() < deadline:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, "bin/demo ended early"
            if line.startswith("layer source:"):
                source = line.split()[-1]
        assert source == f"precomputed://http://127.0.0.1:{port}/annotations"
        assert is_mounted(tmp_path / "mnt")
        url = source.removeprefix("precomputed://") + "/info"
        for _ in range(100):
            try:
                info = requests.get(url, timeout=TIMEOUT).json()
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert info["@type"] == "neuroglancer_annotations_v1" and info["annotation_type"] == "point"
        assert {p["id"] for p in info["properties"]} >= {"intensity", "rgb", "label"}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(TIMEOUT)
    assert not is_mounted(tmp_path / "mnt")
