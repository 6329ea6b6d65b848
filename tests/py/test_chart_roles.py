"""The chart's two roles (docs/replicas.md): the gateway tier (Deployment + HPA, headless
Service for peer discovery, PDB, spread, drain on scale-down), the durable variant
(StatefulSet + a PVC per replica) and the sidecar example. Each is rendered, its objects
checked, and its Watchtower config passed through `watchtower validate`."""
import os
import re
import subprocess

import pytest
import yaml

from gotemplate import TemplateError, render_chart

GATEWAY_OVERLAYS = {
    "gateway": ["watchtower.yaml", "watchtower-gateway.yaml"],
    "gateway+durable": ["watchtower.yaml", "watchtower-gateway.yaml", "watchtower-durable.yaml"],
}


def _values(root, names):
    return [yaml.safe_load((root / "helm/values" / n).read_text()) for n in names]


def _render(root, role, extra=()):
    rendered, values = render_chart(root / "helm/watchtower", _values(root, GATEWAY_OVERLAYS[role]) + list(extra))
    docs = []
    for name, text in rendered.items():
        if name.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d is not None]
    return docs, values


def _seconds(d):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(d))
    assert m, d
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _mib(q):
    m = re.fullmatch(r"(\d+)(Mi|Gi)", q)
    assert m, q
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def _validate(bin_, tmp_path, text, env=None):
    f = tmp_path / "config.yaml"
    f.write_text(text)
    return subprocess.run([bin_, "validate", "--config", str(f)], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, **(env or {})))


def _workload(docs):
    w = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert len(w) == 1, [d["kind"] for d in docs]
    return w[0]


@pytest.mark.parametrize("role", sorted(GATEWAY_OVERLAYS))
def test_gateway_roles_render(root, role, watchtower_bin, tmp_path):
    docs, values = _render(root, role)
    kinds = sorted(d["kind"] for d in docs)
    wl = _workload(docs)
    durable = role.endswith("durable")
    assert wl["kind"] == ("StatefulSet" if durable else "Deployment")
    assert kinds == sorted(["ConfigMap", wl["kind"], "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "Service"])
    sel = wl["spec"]["selector"]["matchLabels"]
    # HPA on CPU and memory, targeting the workload; no fixed replica count with the HPA on
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": wl["kind"], "name": wl["metadata"]["name"]}
    # memory too, except with durable queues (page cache in the working set, no scale-in)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == ({"cpu"} if role.endswith("durable") else {"cpu", "memory"})
    assert hpa["spec"]["minReplicas"] >= 2 and "replicas" not in wl["spec"]
    # headless Service for peer discovery, listing not-ready pods too; the pods get its name
    svcs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    headless = svcs[f"{wl['metadata']['name']}-headless"]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"] == sel
    pod = wl["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["WATCHTOWER_RUNS_PEERS"] == f"dns+{headless['metadata']['name']}.watchtower.svc.cluster.local:13133"
    # PDB (never blocks a drain: a budget in pods that may go, unhealthy pods always evictable)
    # and spread
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == sel
    assert pdb["spec"]["maxUnavailable"] >= 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    keys = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert all(t["labelSelector"]["matchLabels"] == sel for t in pod["topologySpreadConstraints"])
    # drain on scale-down: grace > preStop + shutdown_timeout
    cfg = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"])
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep"
    pre = int(cmd[1])
    assert pod["terminationGracePeriodSeconds"] > pre + _seconds(cfg["service"]["shutdown_timeout"])
    # memory: the limiter's bound (limit + 64 MiB, docs/memory.md) fits the container limit;
    # request = limit; the HPA's memory target (of the request) is below the soft limit
    lim = cfg["processors"]["memory_limiter"]
    mem = _mib(c["resources"]["limits"]["memory"])
    assert mem * lim["limit_percentage"] / 100 + 64 <= mem
    assert _mib(c["resources"]["requests"]["memory"]) == mem
    soft = lim["limit_percentage"] - lim["spike_limit_percentage"]
    for mem_target in (m for m in hpa["spec"]["metrics"] if m["resource"]["name"] == "memory"):
        assert mem_target["resource"]["target"]["averageUtilization"] < soft
    # durable: the HPA never scales in (a replica scaled away would strand its queue)
    if durable:
        assert hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Disabled"
    else:
        assert "behavior" not in hpa["spec"]
    # gRPC connections age out so SDKs rebalance after a scale-up
    ka = cfg["receivers"]["otlp"]["protocols"]["grpc"]["keepalive"]["server_parameters"]
    assert _seconds(ka["max_connection_age"]) <= 600
    # and OTLP/HTTP keep-alive connections (sidecars' otlphttp exporters)
    assert _seconds(cfg["receivers"]["otlp"]["protocols"]["http"]["max_connection_age"]) <= 600
    # the runs extension is on and reads its peers from the chart's env var
    assert cfg["extensions"]["runs"]["peers"] == ["${env:WATCHTOWER_RUNS_PEERS:-}"]
    assert "runs" in cfg["service"]["extensions"]
    if durable:
        claims = wl["spec"]["volumeClaimTemplates"]
        assert [v["metadata"]["name"] for v in claims] == ["data"]
        assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
        mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["data"]
        assert wl["spec"]["serviceName"] == headless["metadata"]["name"]
        fs = cfg["extensions"]["file_storage"]["directory"]
        assert fs.startswith(mount + "/") and cfg["extensions"]["runs"]["directory"].startswith(mount + "/")
        for name, e in cfg["exporters"].items():
            if name != "runsummary":
                assert e["sending_queue"]["storage"] == "file_storage", name
    else:
        assert all(m["name"] != "data" for m in c["volumeMounts"])
    # the rendered config is valid, with and without the peers variable
    for extra in ({}, {"WATCHTOWER_RUNS_PEERS": env["WATCHTOWER_RUNS_PEERS"]}):
        r = _validate(watchtower_bin, tmp_path, yaml.safe_dump(cfg), extra)
        assert r.returncode == 0 and r.stdout.strip() == "ok", f"{role} {extra}: {r.stdout}{r.stderr}"


def test_the_pods_ports_follow_the_config_and_the_grace_period_follows_shutdown_timeout(root, watchtower_bin, tmp_path):
    over = {
        "fullnameOverride": "x" * 70,
        "config": {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:5317"}, "http": {"endpoint": "[::]:5318"}}}},
            "extensions": {"health_check": {"endpoint": "0.0.0.0:8080"}},
            "service": {"shutdown_timeout": "60s", "telemetry": {"metrics": {"address": "0.0.0.0:9090"}}},
        },
        "extraVolumes": [{"name": "tls", "secret": {"secretName": "watchtower-tls"}}],
        "extraVolumeMounts": [{"name": "tls", "mountPath": "/etc/watchtower/tls", "readOnly": True}],
    }
    for role in sorted(GATEWAY_OVERLAYS):
        docs, _ = _render(root, role, [over])
        wl = _workload(docs)
        pod = wl["spec"]["template"]["spec"]
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"otlp-grpc": 5317, "otlp-http": 5318, "health": 8080, "metrics": 9090}, role
        # the probes and the Services name the ports; the peers dial the pods' health port
        assert c["livenessProbe"]["httpGet"]["port"] == "health"
        for svc in (d for d in docs if d["kind"] == "Service"):
            assert all(p["targetPort"] in ports for p in svc["spec"]["ports"])
        peers = next(e["value"] for e in c["env"] if e["name"] == "WATCHTOWER_RUNS_PEERS")
        assert peers.endswith(":8080"), peers
        assert pod["terminationGracePeriodSeconds"] == 5 + 60 + 10
        # names stay within Kubernetes' 63 characters (a StatefulSet's revision label adds 11)
        for d in docs:
            assert len(d["metadata"]["name"]) <= 63, d["metadata"]["name"]
        assert len(wl["metadata"]["name"]) + 11 <= 63
        assert {"name": "tls", "mountPath": "/etc/watchtower/tls", "readOnly": True} in c["volumeMounts"]
        assert {"name": "tls", "secret": {"secretName": "watchtower-tls"}} in pod["volumes"]
    # a shutdown_timeout the chart cannot turn into seconds fails the render, naming it
    with pytest.raises(TemplateError, match="shutdown_timeout"):
        _render(root, "gateway", [{"config": {"service": {"shutdown_timeout": "1m"}}}])


def test_ports_the_chart_cannot_read_fail_the_render_and_readers_set_the_metrics_port(root):
    for bad in ({"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:${env:GRPC_PORT:-4317}"}}}}},
                {"extensions": {"health_check": {"endpoint": "${env:HEALTH}"}}}):
        with pytest.raises(TemplateError, match="write the port"):
            _render(root, "gateway", [{"config": bad}])
    # a host from the environment is fine
    docs, _ = _render(root, "gateway", [{"config": {"extensions": {"health_check": {"endpoint": "${env:MY_POD_IP}:13133"}}}}])
    assert {p["name"]: p["containerPort"] for p in _workload(docs)["spec"]["template"]["spec"]["containers"][0]["ports"]}["health"] == 13133
    # no health_check in service.extensions: probes and peers would reach nothing
    with pytest.raises(TemplateError, match="health_check"):
        _render(root, "gateway", [{"config": {"service": {"extensions": ["runs"]}}}])
    readers = {"config": {"service": {"telemetry": {"metrics": {"address": None, "readers": [
        {"pull": {"exporter": {"prometheus": {"host": "0.0.0.0", "port": 9464}}}}]}}}}}
    docs, _ = _render(root, "gateway", [readers])
    ports = {p["name"]: p["containerPort"] for p in _workload(docs)["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports["metrics"] == 9464


@pytest.mark.parametrize("role", sorted(GATEWAY_OVERLAYS))
def test_self_metrics_turned_off_render_no_metrics_port(root, role, watchtower_bin, tmp_path):
    # README: `address: ""` (with no readers) or `level: none` turns the endpoint off: no
    # container port, no Service port, no ServiceMonitor, and the config stays valid
    for metrics in ({"address": ""}, {"level": "none"}, {"level": "None", "address": "0.0.0.0:8888"}):
        docs, _ = _render(root, role, [{"config": {"service": {"telemetry": {"metrics": metrics}}}}])
        c = _workload(docs)["spec"]["template"]["spec"]["containers"][0]
        assert sorted(p["name"] for p in c["ports"]) == ["health", "otlp-grpc", "otlp-http"], metrics
        for svc in (d for d in docs if d["kind"] == "Service"):
            assert all(p["name"] != "metrics" and p["targetPort"] != "metrics" for p in svc["spec"]["ports"]), metrics
        assert all(d["kind"] != "ServiceMonitor" for d in docs)
        cfg = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"]
        r = _validate(watchtower_bin, tmp_path, cfg)
        assert r.returncode == 0 and r.stdout.strip() == "ok", f"{metrics}: {r.stdout}{r.stderr}"
    # a ServiceMonitor asked for with nothing to scrape fails the render, naming both keys
    for metrics, what in (({"address": ""}, 'config.service.telemetry.metrics.address is ""'),
                          ({"level": "NONE"}, 'config.service.telemetry.metrics.level is "NONE"')):
        with pytest.raises(TemplateError, match=re.escape(f"serviceMonitor.enabled is true, but {what}")):
            _render(root, role, [{"serviceMonitor": {"enabled": True}, "config": {"service": {"telemetry": {"metrics": metrics}}}}])
    # the readers form has no "off" spelling: an empty list leaves Watchtower's default
    # address (0.0.0.0:8888), a pull reader sets the port; the ServiceMonitor scrapes it
    for metrics, port in (({"address": None, "readers": []}, 8888),
                          ({"address": None, "readers": [{"pull": {"exporter": {"prometheus": {"host": "0.0.0.0", "port": 9464}}}}]}, 9464)):
        docs, _ = _render(root, role, [{"serviceMonitor": {"enabled": True}, "config": {"service": {"telemetry": {"metrics": metrics}}}}])
        c = _workload(docs)["spec"]["template"]["spec"]["containers"][0]
        assert {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"] == port
        assert next(d for d in docs if d["kind"] == "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
        svc = next(d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") != "None")
        assert "metrics" in {p["targetPort"] for p in svc["spec"]["ports"]}
        r = _validate(watchtower_bin, tmp_path, next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"])
        assert r.returncode == 0 and r.stdout.strip() == "ok", f"{metrics}: {r.stdout}{r.stderr}"


class _StrictLoader(yaml.SafeLoader):
    """Refuses a mapping that repeats a key (PyYAML keeps the last one silently)."""


def _no_duplicates(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dup = {k for k in keys if keys.count(k) > 1}
    assert not dup, f"duplicate keys {dup} at line {node.start_mark.line + 1}"
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


@pytest.mark.parametrize("role", sorted(GATEWAY_OVERLAYS))
def test_pod_labels_cannot_take_the_pods_out_of_their_selectors(root, role):
    docs, _ = _render(root, role)
    sel = _workload(docs)["spec"]["selector"]["matchLabels"]
    assert sel
    # another value for any selector label fails the render, naming the key and both values
    for key, value in sel.items():
        with pytest.raises(TemplateError, match=re.escape(f'podLabels["{key}"] is "other", but the chart selects its pods by {key}: "{value}"')):
            _render(root, role, [{"podLabels": {"team": "obs", key: "other"}}])
    # extra labels, and a selector label repeated with its own value, render once each
    same = dict(sel)
    rendered, _ = render_chart(root / "helm/watchtower", _values(root, GATEWAY_OVERLAYS[role]) + [{"podLabels": {"team": "obs", **same}}])
    docs = [d for name, text in rendered.items() if not name.endswith(".txt") for d in yaml.load_all(text, _StrictLoader) if d]
    wl = _workload(docs)
    labels = wl["spec"]["template"]["metadata"]["labels"]
    assert labels == {**sel, "team": "obs"}
    selectors = [wl["spec"]["selector"]["matchLabels"]] + [d["spec"]["selector"] for d in docs if d["kind"] == "Service"] + [
        d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert all(s == sel for s in selectors)


def _label_maps(obj, path=""):
    """Every labels / matchLabels / Service selector map in a rendered object, by path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{path}.{k}"
            if k in ("labels", "matchLabels") or p == ".spec.selector" and isinstance(v, dict) and "matchLabels" not in v:
                yield p, v
            else:
                yield from _label_maps(v, p)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _label_maps(v, f"{path}[{i}]")


@pytest.mark.parametrize("role", sorted(GATEWAY_OVERLAYS))
def test_every_rendered_label_value_is_a_string(root, role):
    # what a values file's YAML gives the chart: 1.10 is the number 1.1, 42 an int, true a bool;
    # Kubernetes refuses a label or annotation value that is not a string
    over = yaml.safe_load("podLabels: {version: 1.10, build: 42, canary: true, team: obs, quoted: '1.10'}\n"
                          "podAnnotations: {prometheus.io/port: 8888, sidecar.istio.io/inject: false, note: 'a: b'}\n"
                          "serviceMonitor: {enabled: true, labels: {release: 2, tier: 1.5}}\n"
                          "fullnameOverride: watchtower\n")
    assert over["podLabels"]["version"] == 1.1
    # a release name that reads as a number ("1.10" is a valid Helm release name; the objects
    # take their names from fullnameOverride, the instance label from the release)
    rendered, _ = render_chart(root / "helm/watchtower", _values(root, GATEWAY_OVERLAYS[role]) + [over], release="1.10")
    docs = [d for name, text in rendered.items() if not name.endswith(".txt") for d in yaml.load_all(text, _StrictLoader) if d]
    wl = _workload(docs)
    labels = wl["spec"]["template"]["metadata"]["labels"]
    assert {k: labels[k] for k in over["podLabels"]} == {
        "version": "1.1", "build": "42", "canary": "true", "team": "obs", "quoted": "1.10"}
    assert labels["app.kubernetes.io/instance"] == "1.10"
    notes = wl["spec"]["template"]["metadata"]["annotations"]
    assert {k: notes[k] for k in over["podAnnotations"]} == {
        "prometheus.io/port": "8888", "sidecar.istio.io/inject": "false", "note": "a: b"}
    assert set(notes) == {"checksum/config"} | set(over["podAnnotations"])
    assert all(d["metadata"]["name"].startswith("watchtower") for d in docs)
    sm = next(d for d in docs if d["kind"] == "ServiceMonitor")["metadata"]["labels"]
    assert sm["release"] == "2" and sm["tier"] == "1.5"
    seen = 0
    for d in docs:
        for path, m in _label_maps(d):
            seen += 1
            bad = {k: v for k, v in m.items() if not (isinstance(k, str) and isinstance(v, str))}
            assert not bad, f"{d['kind']} {path}: {bad}"
    assert seen >= 10


LOOPBACK = [
    ({"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}}}, "config.receivers.otlp.protocols.grpc.endpoint is 127.0.0.1:4317", "0.0.0.0:4317"),
    ({"receivers": {"otlp": {"protocols": {"http": {"endpoint": "localhost:4318"}}}}}, "config.receivers.otlp.protocols.http.endpoint is localhost:4318", "0.0.0.0:4318"),
    ({"receivers": {"otlp": {"protocols": {"http": {"endpoint": "[::1]:5318"}}}}}, "config.receivers.otlp.protocols.http.endpoint is [::1]:5318", "0.0.0.0:5318"),
    ({"extensions": {"health_check": {"endpoint": "127.0.0.2:13133"}}}, "config.extensions.health_check.endpoint is 127.0.0.2:13133", "0.0.0.0:13133"),
    ({"service": {"telemetry": {"metrics": {"address": "LocalHost:8888"}}}}, "config.service.telemetry.metrics.address is LocalHost:8888", "0.0.0.0:8888"),
    # a pull reader's host defaults to localhost, as in the Collector
    ({"service": {"telemetry": {"metrics": {"address": None, "readers": [{"pull": {"exporter": {"prometheus": {"port": 9464}}}}]}}}},
     "config.service.telemetry.metrics.readers[0].pull.exporter.prometheus host:port is localhost:9464", "0.0.0.0:9464"),
    # an IPv6 host is bracketed in the message, as Watchtower writes the reader's endpoint
    ({"service": {"telemetry": {"metrics": {"address": None, "readers": [{"pull": {"exporter": {"prometheus": {"host": "::1", "port": 9464}}}}]}}}},
     "config.service.telemetry.metrics.readers[0].pull.exporter.prometheus host:port is [::1]:9464", "0.0.0.0:9464"),
    # a fully qualified localhost, the Debian /etc/hosts names of ::1, a zone, IPv4-mapped
    # 127.0.0.0/8 (dotted and hex), ::1 written out
    ({"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "localhost.:4317"}}}}}, "config.receivers.otlp.protocols.grpc.endpoint is localhost.:4317", "0.0.0.0:4317"),
    ({"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "ip6-localhost:4317"}}}}}, "config.receivers.otlp.protocols.grpc.endpoint is ip6-localhost:4317", "0.0.0.0:4317"),
    ({"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "ip6-loopback:4317"}}}}}, "config.receivers.otlp.protocols.grpc.endpoint is ip6-loopback:4317", "0.0.0.0:4317"),
    ({"receivers": {"otlp": {"protocols": {"http": {"endpoint": "[::1%lo]:4318"}}}}}, "config.receivers.otlp.protocols.http.endpoint is [::1%lo]:4318", "0.0.0.0:4318"),
    ({"extensions": {"health_check": {"endpoint": "[::ffff:7f00:1]:13133"}}}, "config.extensions.health_check.endpoint is [::ffff:7f00:1]:13133", "0.0.0.0:13133"),
    ({"extensions": {"health_check": {"endpoint": "[::FFFF:127.0.0.1]:13133"}}}, "config.extensions.health_check.endpoint is [::FFFF:127.0.0.1]:13133", "0.0.0.0:13133"),
    ({"service": {"telemetry": {"metrics": {"address": "[0:0:0:0:0:ffff:7f12:3456]:8888"}}}}, "config.service.telemetry.metrics.address is [0:0:0:0:0:ffff:7f12:3456]:8888", "0.0.0.0:8888"),
    ({"service": {"telemetry": {"metrics": {"address": "[0:0:0:0:0:0:0:1]:8888"}}}}, "config.service.telemetry.metrics.address is [0:0:0:0:0:0:0:1]:8888", "0.0.0.0:8888"),
    # names under localhost (RFC 6761), and 127.0.0.0/8 as the C library's inet_aton also reads
    # it: fewer than four parts, octal or hex parts
    ({"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "otel.localhost:4317"}}}}}, "config.receivers.otlp.protocols.grpc.endpoint is otel.localhost:4317", "0.0.0.0:4317"),
    ({"receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.1:4318"}}}}}, "config.receivers.otlp.protocols.http.endpoint is 127.1:4318", "0.0.0.0:4318"),
    ({"extensions": {"health_check": {"endpoint": "127.0.1:13133"}}}, "config.extensions.health_check.endpoint is 127.0.1:13133", "0.0.0.0:13133"),
    ({"service": {"telemetry": {"metrics": {"address": "0x7f.0x1:8888"}}}}, "config.service.telemetry.metrics.address is 0x7f.0x1:8888", "0.0.0.0:8888"),
    ({"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0177.0.0.1:4317"}}}}}, "config.receivers.otlp.protocols.grpc.endpoint is 0177.0.0.1:4317", "0.0.0.0:4317"),
]

# hosts that look close to loopback but are not: rendered
NOT_LOOPBACK = ["[::ffff:10.0.0.1]", "[::ffff:a00:1]", "[fe80::1%eth0]", "[::1:0]", "localhost.example", "ip6-localnet", "[::]", "0.0.0.0",
                "mylocalhost", "128.1", "1270.0.0.1", "0x80.1", "127.example.com"]


@pytest.mark.parametrize("role", sorted(GATEWAY_OVERLAYS))
def test_listeners_bound_to_loopback_fail_the_render(root, role, watchtower_bin, tmp_path):
    for config, what, fix in LOOPBACK:
        with pytest.raises(TemplateError, match=re.escape(what) + ", a loopback address .*bind " + re.escape(fix)):
            _render(root, role, [{"config": config}])
    # any address, the pod's IP from the environment, or no host: rendered, and valid
    fine = {"config": {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": ":4317"}, "http": {"endpoint": "[::]:4318"}}}},
        "extensions": {"health_check": {"endpoint": "${env:MY_POD_IP}:13133"}},
        "service": {"telemetry": {"metrics": {"address": "0.0.0.0:8888"}}},
    }}
    docs, _ = _render(root, role, [fine])
    ports = {p["name"]: p["containerPort"] for p in _workload(docs)["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"otlp-grpc": 4317, "otlp-http": 4318, "health": 13133, "metrics": 8888}
    for host in NOT_LOOPBACK:
        near, _ = _render(root, role, [{"config": {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"{host}:4317"}}}}}}])
        c = _workload(near)["spec"]["template"]["spec"]["containers"][0]
        assert {p["name"]: p["containerPort"] for p in c["ports"]}["otlp-grpc"] == 4317, host
    cfg = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"]
    r = _validate(watchtower_bin, tmp_path, cfg, {"MY_POD_IP": "10.0.0.7"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    # the sidecar example is a plain manifest, not the chart: its receivers stay on loopback
    side = next(d for d in yaml.safe_load_all((root / "helm/examples/sidecar.yaml").read_text()) if d and d["kind"] == "ConfigMap")
    protos = yaml.safe_load(side["data"]["config.yaml"])["receivers"]["otlp"]["protocols"]
    assert {p["endpoint"].rsplit(":", 1)[0] for p in protos.values()} == {"127.0.0.1"}


def test_the_dual_write_overlay_keeps_the_run_summaries(root):
    rendered, values = render_chart(root / "helm/watchtower", _values(root, ["watchtower.yaml", "watchtower-dualwrite.yaml"]))
    for name, p in values["config"]["service"]["pipelines"].items():
        assert "runsummary" in p["exporters"], name


def test_one_replica_can_still_be_drained(root):
    rendered, _ = render_chart(root / "helm/watchtower")
    pdb = next(d for name, text in rendered.items() if not name.endswith(".txt")
               for d in yaml.safe_load_all(text) if d and d.get("kind") == "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1


def test_sidecar_example_is_sized_by_the_measured_figures(root, watchtower_bin, tmp_path):
    docs = [d for d in yaml.safe_load_all((root / "helm/examples/sidecar.yaml").read_text()) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    # a native sidecar: an init container that keeps running, started before the app and
    # stopped after it
    c = next(c for c in spec["initContainers"] if c["name"] == "watchtower")
    assert c["restartPolicy"] == "Always"
    assert all(x["name"] != "watchtower" for x in spec["containers"])
    # no readiness probe: the sidecar refusing data must not take the app out of its Service
    assert "readinessProbe" not in c and c["startupProbe"]["httpGet"]["path"] == "/"
    cfg = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"])
    req, lim = c["resources"]["requests"], c["resources"]["limits"]
    # docs/replicas.md: 5-7% of a core and ~11 MiB RSS at 10k spans/s; the request covers it,
    # the memory limit holds the limiter's bound (limit_mib + 64 MiB, docs/memory.md)
    cpu_m = int(req["cpu"].rstrip("m"))
    assert 60 <= cpu_m <= 100
    assert _mib(req["memory"]) >= 16
    ml = cfg["processors"]["memory_limiter"]
    assert ml["limit_mib"] + 64 <= _mib(lim["memory"])
    # the queue kept while the gateway is away fits under the soft limit
    q = cfg["exporters"]["otlphttp/gateway"]["sending_queue"]
    assert _mib(q["max_bytes"].replace("MiB", "Mi")) < ml["limit_mib"] - ml["spike_limit_mib"]
    r = _validate(watchtower_bin, tmp_path, yaml.safe_dump(cfg))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("role", sorted(GATEWAY_OVERLAYS))
def test_a_null_value_removes_a_default_as_helm_does(root, role, watchtower_bin, tmp_path):
    # `--set config.processors.batch=null` (or a values file's `batch: null`) deletes the
    # chart's default: the rendered config has no such key, and a pipeline still naming it
    # is the user's error, reported by validate
    docs, values = _render(root, role, [{"config": {"processors": {"batch": None}}}])
    assert "batch" not in values["config"]["processors"]
    cfg = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"])
    assert "batch" not in cfg["processors"]
    r = _validate(watchtower_bin, tmp_path, yaml.safe_dump(cfg), {"MY_POD_IP": "10.0.0.7"})
    named = [p for p, spec in cfg["service"]["pipelines"].items() if "batch" in spec.get("processors", [])]
    assert named and r.returncode != 0 and "batch" in r.stdout + r.stderr, r.stdout + r.stderr
