"""A fallback for machines without kustomize or kubectl: renders the subset of Kustomize that
Bookshop's files use (resources, components, namespace, configMapGenerator with files and
options, images). Real kustomize is preferred whenever it is installed.

Usage: render.py DIR > rendered.yaml
"""

import copy
import os
import sys

import yaml


def load_kustomization(path):
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        candidate = os.path.join(path, name)
        if os.path.exists(candidate):
            return yaml.safe_load(open(candidate, encoding="utf-8"))
    raise SystemExit(f"render: no kustomization in {path}")


def build(path):
    k = load_kustomization(path)
    known = {"apiVersion", "kind", "resources", "components", "namespace",
             "configMapGenerator", "images"}
    unknown = set(k) - known
    if unknown:
        raise SystemExit(f"render: {path}: unsupported fields {sorted(unknown)}; install kustomize")
    docs = []
    for entry in k.get("resources", []) + k.get("components", []):
        target = os.path.normpath(os.path.join(path, entry))
        if os.path.isdir(target):
            docs.extend(build(target))
        else:
            docs.extend(d for d in yaml.safe_load_all(open(target, encoding="utf-8")) if d)
    for gen in k.get("configMapGenerator", []):
        data = {}
        for spec in gen.get("files", []):
            key, _, file = spec.partition("=")
            file = file or key
            key = os.path.basename(key)
            data[key] = open(os.path.join(path, file), encoding="utf-8").read()
        options = gen.get("options", {})
        if not options.get("disableNameSuffixHash"):
            raise SystemExit("render: name hashes are not implemented; install kustomize")
        meta = {"name": gen["name"]}
        if options.get("labels"):
            meta["labels"] = dict(options["labels"])
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    if "namespace" in k:
        for d in docs:
            if d["kind"] != "Namespace":
                d["metadata"]["namespace"] = k["namespace"]
    for image in k.get("images", []):
        for d in docs:
            pod = d.get("spec", {}).get("template", {}).get("spec", {})
            for c in pod.get("containers", []):
                repo, _, tag = c["image"].partition(":")
                if repo == image["name"]:
                    c["image"] = f"{image.get('newName', repo)}:{image.get('newTag', tag or 'latest')}"
    return [copy.deepcopy(d) for d in docs]


if __name__ == "__main__":
    yaml.safe_dump_all(build(sys.argv[1]), sys.stdout, sort_keys=False, allow_unicode=True)
