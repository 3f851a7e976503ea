"""Reading deploy/: rendered kustomizations, the Dockerfile's instructions, and the pieces
of both that the tests compare (the container, its mounts, its environment)."""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kustomize_lite import Resource, render

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/prod")


@functools.cache
def _rendered(directory: str) -> tuple[Resource, ...]:
    return tuple(render(K8S / directory))


def rendered(directory: str) -> list[Resource]:
    """The resources of ``base`` or ``overlays/<name>`` (a fresh copy each call)."""
    return copy.deepcopy(list(_rendered(directory)))


def overlay(name: str) -> list[Resource]:
    return rendered(f"overlays/{name}")


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    found = [r for r in resources if r["kind"] == kind and name in (None, r["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [r["metadata"]["name"] for r in found])
    return found[0]


def pod_spec(resources: list[Resource]) -> dict[str, Any]:
    spec: dict[str, Any] = one(resources, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(resources: list[Resource]) -> dict[str, Any]:
    (only,) = pod_spec(resources)["containers"]
    c: dict[str, Any] = only
    return c


def container_port(resources: list[Resource], port: int | str) -> int:
    """A port of the container by number or name."""
    for p in container(resources)["ports"]:
        if port in (p["containerPort"], p.get("name")):
            return int(p["containerPort"])
    raise AssertionError(f"the container has no port {port!r}")


def mounted_files(resources: list[Resource]) -> dict[str, str]:
    """Path in the container -> content, for every file of every mounted ConfigMap."""
    volumes = {v["name"]: v for v in pod_spec(resources)["volumes"]}
    files = {}
    for mount in container(resources)["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        data = one(resources, "ConfigMap", source["name"])["data"]
        for key, text in data.items():
            files[f"{mount['mountPath']}/{key}"] = text
    return files


def container_env(resources: list[Resource], secret_values: dict[str, str]) -> dict[str, str]:
    """The container's environment; a secretKeyRef is read from a Secret in ``resources``
    when the overlay ships one, else from ``secret_values`` (Secret key -> value)."""
    env = {}
    for var in container(resources)["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        shipped = [r for r in resources if r["kind"] == "Secret"]
        if shipped:
            encoded = one(resources, "Secret", ref["name"])["data"][ref["key"]]
            env[var["name"]] = base64.b64decode(encoded).decode()
        else:
            env[var["name"]] = secret_values[ref["key"]]
    return env


# -- the Dockerfile ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    name: str  # upper-cased: FROM, RUN, COPY, ...
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), self
        return [str(v) for v in value]

    def words(self) -> list[str]:
        return shlex.split(self.args)


def dockerfile_stages(path: Path = DEPLOY / "Dockerfile") -> list[list[Instruction]]:
    """The instructions of each stage (a stage starts at FROM); ARGs before the first FROM
    form stage 0's preamble and are dropped. Continuation lines are joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[list[Instruction]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, args = line.partition(" ")
        ins = Instruction(name.upper(), args.strip())
        if ins.name == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def final_stage() -> list[Instruction]:
    return dockerfile_stages()[-1]


def instructions(stage: list[Instruction], name: str) -> list[Instruction]:
    return [i for i in stage if i.name == name]


def image_env() -> dict[str, str]:
    """The final stage's ENV values (those not built from other variables)."""
    env = {}
    for ins in instructions(final_stage(), "ENV"):
        for word in ins.words():
            key, _, value = word.partition("=")
            if "$" not in value:
                env[key] = value
    return env
