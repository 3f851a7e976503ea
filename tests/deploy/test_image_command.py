"""The container's command, run the way the image runs it: the image's CMD and ENV, the
ConfigMap's config.yaml at the path the Deployment mounts it, the Secret's keys in the
environment. (Only --host/--port are added to ``serve``, to stay on loopback.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deploy_files import container_env, final_stage, image_env, instructions, mounted_files, overlay

SECRETS = {"upstream-api-key": "sk-upstream", "api-keys": "client-key"}


def image_command(root: Path, overlay_name: str) -> tuple[list[str], dict[str, str]]:
    """The CMD with its config path moved under ``root``, where the ConfigMap's files are
    written; and the environment: ours, the image's ENV, the container's env."""
    resources = overlay(overlay_name)
    for path, text in mounted_files(resources).items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_text(text)
    (cmd,) = instructions(final_stage(), "CMD")
    argv = cmd.exec_form()
    config_at = argv.index("--config") + 1
    argv[config_at] = str(root / argv[config_at].lstrip("/"))
    script = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    entry = [script] if script else [sys.executable, "-c", "from proxy.cli import main; main()"]
    env = {**os.environ, **image_env(), **container_env(resources, SECRETS)}
    return [*entry, *argv[1:]], env


def test_check_accepts_the_configmap_config(tmp_path: Path) -> None:
    argv, env = image_command(tmp_path, "prod")
    check = [*argv[: argv.index("serve")], "check", *argv[argv.index("serve") + 1 :]]
    result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout.split("\n", 1)[1])
    assert effective["server"]["host"] == "0.0.0.0"
    assert effective["server"]["workers"] == 2
    assert effective["upstream"]["base_url"] == "http://vllm:8000/v1"
    assert effective["configs"]["default"]["output"] == ["secrets", "banned"]
    assert "sk-upstream" not in result.stdout
    assert "client-key" not in result.stdout


def test_serve_starts_answers_probes_and_stops_on_sigterm(tmp_path: Path) -> None:
    argv, env = image_command(tmp_path, "dev")
    log = tmp_path / "railproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--host", "127.0.0.1", "--port", "0"], env=env, stdout=out, stderr=out
        )
    try:
        port = _listening_port(proc, log)
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _listening_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    """The port from the "railproxy listening" log line (15 s at most)."""
    for _ in range(300):
        if m := re.search(r'"url": ?"http://127\.0\.0\.1:(\d+)"', log.read_text()):
            return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"railproxy did not start: {log.read_text()}")
