"""A small kustomize: renders deploy/k8s without kubectl, for the manifest tests.

It knows exactly the features deploy/k8s uses: ``resources`` (files and directories),
``components``, ``configMapGenerator`` and ``secretGenerator`` (``files``, ``literals``,
``options.labels``) with ``generatorOptions.disableNameSuffixHash: true``, and JSON 6902
``patches`` (inline or from a file) targeted by kind and name, and ``images`` (``newName``,
``newTag``) for Deployments' containers. Any other field is an error,
so a kustomization that starts using a new feature fails here instead of rendering wrong;
when kubectl is installed, test_manifests.py also checks this output against
``kubectl kustomize``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

Resource = dict[str, Any]
FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "generatorOptions",
    "configMapGenerator",
    "secretGenerator",
    "patches",
    "images",
}


class Unsupported(ValueError):
    """A kustomization uses something this renderer does not implement."""


def render(directory: Path) -> list[Resource]:
    """Every resource the kustomization in ``directory`` produces, patches applied."""
    spec = _kustomization(directory)
    out: list[Resource] = []
    for entry in spec.get("resources", []):
        out += _resource(directory / entry)
    out += _generated(directory, spec)
    for entry in spec.get("components", []):
        out += render(directory / entry)
    for patch in spec.get("patches", []):
        _patch(directory, patch, out)
    for image in spec.get("images", []):
        _set_image(directory, image, out)
    return out


def _kustomization(directory: Path) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - FIELDS
    if unknown:
        raise Unsupported(f"{directory}: {sorted(unknown)}")
    options = spec.get("generatorOptions", {})
    if (spec.get("configMapGenerator") or spec.get("secretGenerator")) and options != {
        "disableNameSuffixHash": True
    }:
        raise Unsupported(f"{directory}: generatorOptions must be {{disableNameSuffixHash: true}}")
    return spec


def _resource(path: Path) -> list[Resource]:
    if path.is_dir():
        return render(path)
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _generated(directory: Path, spec: dict[str, Any]) -> list[Resource]:
    out = []
    for gen in spec.get("configMapGenerator", []):
        out.append(_generate("ConfigMap", directory, gen, lambda v: v))
    for gen in spec.get("secretGenerator", []):
        secret = _generate(
            "Secret", directory, gen, lambda v: base64.b64encode(v.encode()).decode()
        )
        secret["type"] = "Opaque"
        out.append(secret)
    return out


def _generate(kind: str, directory: Path, gen: dict[str, Any], encode: Any) -> Resource:
    unknown = set(gen) - {"name", "files", "literals", "options"}
    if unknown or set(gen.get("options", {})) - {"labels"}:
        raise Unsupported(f"{directory}: {kind} generator fields {sorted(gen)}")
    data: dict[str, str] = {}
    for entry in gen.get("files", []):
        key, _, source = entry.rpartition("=") if "=" in entry else (Path(entry).name, "", entry)
        data[key] = encode((directory / source).read_text())
    for literal in gen.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = encode(value)
    metadata: dict[str, Any] = {"name": gen["name"]}
    labels = gen.get("options", {}).get("labels")
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": kind, "metadata": metadata, "data": data}


def _patch(directory: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    target = patch["target"]
    if set(target) - {"kind", "name"} or set(patch) - {"target", "patch", "path"}:
        raise Unsupported(f"{directory}: patch {patch}")
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    ops = yaml.safe_load(text)
    if not isinstance(ops, list):
        raise Unsupported(f"{directory}: only JSON 6902 patches (a list of operations)")
    matched = [
        i
        for i, r in enumerate(resources)
        if r["kind"] == target["kind"] and r["metadata"]["name"] == target["name"]
    ]
    if not matched:
        raise ValueError(f"{directory}: patch target {target} matches nothing")
    for i in matched:
        resources[i] = jsonpatch.apply_patch(resources[i], ops)


def _set_image(directory: Path, image: dict[str, str], resources: list[Resource]) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise Unsupported(f"{directory}: image {image}")
    for r in resources:
        if r["kind"] != "Deployment":
            continue
        for c in r["spec"]["template"]["spec"]["containers"]:
            name, _, tag = c["image"].partition(":")
            if name == image["name"]:
                c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
