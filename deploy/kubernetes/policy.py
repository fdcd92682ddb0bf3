"""Checks rendered manifests against the rules docs/kubernetes.md promises.

Usage: policy.py RENDERED.yaml CATALOG.toml
"""

import sys

import yaml


def fail(message):
    sys.exit(f"policy: {message}")


def main(rendered, catalog_path):
    docs = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != "bookshop":
            fail(f"{doc['kind']}/{doc['metadata']['name']} is not in namespace bookshop")

    catalog = by_kind.get("ConfigMap", {}).get("bookshop-catalog")
    if catalog is None:
        fail("no ConfigMap bookshop-catalog (its name must not carry a hash suffix)")
    if catalog["data"].get("catalog.toml") != open(catalog_path, encoding="utf-8").read():
        fail("the catalog ConfigMap does not hold the repository's catalog.toml verbatim")

    deployments = by_kind.get("Deployment", {})
    expected = {"recommendations": 3, "marketplace": 2}
    for name, replicas in expected.items():
        d = deployments.get(name) or fail(f"no Deployment {name}")
        if d["spec"]["replicas"] != replicas:
            fail(f"{name} has {d['spec']['replicas']} replicas, expected {replicas}")
        pod = d["spec"]["template"]["spec"]
        if pod.get("enableServiceLinks") is not False:
            fail(f"{name}: enableServiceLinks must be false")
        sc = pod.get("securityContext", {})
        if not sc.get("runAsNonRoot"):
            fail(f"{name}: runAsNonRoot must be true")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        for c in pod["containers"]:
            where = f"{name}/{c['name']}"
            csc = c.get("securityContext", {})
            if csc.get("allowPrivilegeEscalation") is not False:
                fail(f"{where}: allowPrivilegeEscalation must be false")
            if csc.get("readOnlyRootFilesystem") is not True:
                fail(f"{where}: readOnlyRootFilesystem must be true")
            if csc.get("capabilities", {}).get("drop") != ["ALL"]:
                fail(f"{where}: capabilities must drop ALL")
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in c.get("resources", {}).get(kind, {}):
                        fail(f"{where}: resources.{kind}.{res} missing")
            # Tokio's worker threads from the container's own CPU limit (docs/kubernetes.md):
            # where Tokio cannot see the limit, it would start a thread per core of the node.
            env = {e["name"]: e for e in c.get("env", [])}
            threads = env.get("TOKIO_WORKER_THREADS", {})
            field = (threads.get("valueFrom") or {}).get("resourceFieldRef") or {}
            if (field.get("containerName"), field.get("resource")) != (c["name"], "limits.cpu"):
                fail(f"{where}: TOKIO_WORKER_THREADS must come from its own limits.cpu")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    fail(f"{where}: {probe} missing")
            for m in c.get("volumeMounts", []):
                if "subPath" in m:
                    fail(f"{where}: subPath mounts never receive ConfigMap updates")
        if grace < 10:
            fail(f"{name}: terminationGracePeriodSeconds {grace} leaves no room for a graceful stop")

    rec = deployments["recommendations"]["spec"]["template"]["spec"]
    probes = rec["containers"][0]
    if "grpc" not in probes["readinessProbe"] or "grpc" not in probes["livenessProbe"]:
        fail("recommendations must use native gRPC probes")
    volumes = {v["name"]: v for v in rec.get("volumes", [])}
    if volumes.get("catalog", {}).get("configMap", {}).get("name") != "bookshop-catalog":
        fail("recommendations must mount the bookshop-catalog ConfigMap as a volume")
    mp = deployments["marketplace"]["spec"]["template"]["spec"]["containers"][0]
    if mp["readinessProbe"].get("httpGet", {}).get("path") != "/readyz":
        fail("marketplace readiness must be GET /readyz")
    if mp["livenessProbe"].get("httpGet", {}).get("path") != "/healthz":
        fail("marketplace liveness must be GET /healthz")

    svc = by_kind.get("Service", {}).get("recommendations") or fail("no Service recommendations")
    if svc["spec"].get("clusterIP") != "None":
        fail("the recommendations Service must be headless (clusterIP: None)")
    pdbs = by_kind.get("PodDisruptionBudget", {})
    for name in expected:
        if name not in pdbs:
            fail(f"no PodDisruptionBudget for {name}")


if __name__ == "__main__":
    main(*sys.argv[1:])
