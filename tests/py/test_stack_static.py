"""Static checks of what ships for the stack: compose/, helm/, Grafana provisioning, mk/stack.mk."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from gotemplate import TemplateError, render_chart

TEMPLATES = Path("helm/watchtower/templates")


def _files(root, exts):
    out = []
    for top in ("compose", "helm"):
        for p in sorted((root / top).rglob("*")):
            rel = p.relative_to(root)
            if p.is_file() and p.suffix in exts and not str(rel).startswith(str(TEMPLATES)):
                out.append(rel)
    return out


def test_every_yaml_and_json_parses(root):
    yamls, jsons = _files(root, {".yaml", ".yml"}), _files(root, {".json"})
    assert len(yamls) >= 15 and len(jsons) >= 2, (yamls, jsons)
    for rel in yamls:
        docs = list(yaml.safe_load_all((root / rel).read_text()))
        assert docs and all(d is not None for d in docs), f"{rel}: empty document"
    for rel in jsons:
        json.loads((root / rel).read_text())


# ---- docker compose --------------------------------------------------------------------------
def _compose(root, venv_bin, files, env=None, profiles=()):
    exe = venv_bin / "docker-compose"
    assert exe.exists(), "docker-compose not installed: run ./.ci/setup-test-env.sh"
    cmd = [str(exe)]
    for f in files:
        cmd += ["-f", f]
    for p in profiles:
        cmd += ["--profile", p]
    cmd += ["config"]
    e = {k: v for k, v in os.environ.items() if k not in ("WATCHTOWER_CONFIG", "SUMO_OTLP_ENDPOINT")}
    e.update(env or {})
    r = subprocess.run(cmd, cwd=root / "compose", env=e, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def _published(svc):
    return {int(p["published"]) for p in svc.get("ports", [])}


def test_compose_default_stack(root, venv_bin):
    cfg = _compose(root, venv_bin, ["docker-compose.yml"])
    s = cfg["services"]
    default = {n for n, svc in s.items() if not svc.get("profiles")}
    assert default == {"watchtower", "tempo", "loki", "prometheus", "grafana"}
    assert s["sonarqube"]["profiles"] == ["sonarqube"]  # only with --profile sonarqube
    assert _published(s["watchtower"]) == {4317, 4318, 13133, 8888}
    assert _published(s["grafana"]) == {3000}
    assert _published(s["prometheus"]) == {9090}
    assert _published(s["loki"]) == {3100}
    assert _published(s["tempo"]) == {3200}
    assert s["watchtower"]["build"]["dockerfile"] == "Dockerfile"
    assert (root / "Dockerfile").is_file()
    assert s["watchtower"]["command"] == ["run", "--config", "/etc/watchtower/config.yaml"]
    prom = s["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" in prom and "--enable-feature=exemplar-storage" in prom
    # every file a service mounts from the repo exists
    for name, svc in s.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source")
            if src and src.startswith("/"):
                assert Path(src).exists(), f"{name} mounts missing {src}"


def test_compose_variants(root, venv_bin):
    dual = _compose(root, venv_bin, ["docker-compose.yml"],
                    env={"WATCHTOWER_CONFIG": "config-dualwrite.yaml", "SUMO_OTLP_ENDPOINT": "https://sumo.example/x"})
    wt = dual["services"]["watchtower"]
    assert wt["command"][-1] == "/etc/watchtower/config-dualwrite.yaml"
    assert wt["environment"]["SUMO_OTLP_ENDPOINT"] == "https://sumo.example/x"
    mimir = _compose(root, venv_bin, ["docker-compose.yml", "docker-compose.mimir.yml"])
    assert "mimir" in mimir["services"] and _published(mimir["services"]["mimir"]) == {9009}
    assert mimir["services"]["watchtower"]["command"][-1] == "/etc/watchtower/config-mimir.yaml"
    sonar = _compose(root, venv_bin, ["docker-compose.yml"], profiles=["sonarqube"])
    assert _published(sonar["services"]["sonarqube"]) == {9000}
    # every config the compose variants can select exists
    for f in ("config.yaml", "config-dualwrite.yaml", "config-mimir.yaml"):
        assert (root / "compose/watchtower" / f).is_file()


def test_dualwrite_config_shape(root):
    cfg = yaml.safe_load((root / "compose/watchtower/config-dualwrite.yaml").read_text())
    sumo = cfg["exporters"]["otlphttp/sumo"]
    assert sumo["endpoint"] == "${env:SUMO_OTLP_ENDPOINT}"
    assert sumo["sending_queue"]["full_policy"] == "drop_oldest"
    for p in cfg["service"]["pipelines"].values():
        assert "otlphttp/sumo" in p["exporters"]


# ---- Grafana provisioning --------------------------------------------------------------------
def _datasource_sets(root):
    compose = yaml.safe_load((root / "compose/grafana/provisioning/datasources/datasources.yaml").read_text())
    kind = yaml.safe_load((root / "helm/values/grafana.yaml").read_text())["datasources"]["datasources.yaml"]
    return {"compose": compose["datasources"], "kind": kind["datasources"]}


def test_datasources_fixed_uids_and_crosslinks(root):
    for where, dss in _datasource_sets(root).items():
        by_uid = {d["uid"]: d for d in dss}
        assert len(by_uid) == len(dss), f"{where}: duplicate uids"
        assert {"tempo", "loki"} <= set(by_uid) and ({"prometheus", "mimir"} & set(by_uid)), where
        tempo, loki = by_uid["tempo"]["jsonData"], by_uid["loki"]["jsonData"]
        assert tempo["tracesToLogsV2"]["datasourceUid"] == "loki" and tempo["tracesToLogsV2"]["filterByTraceID"]
        assert tempo["serviceMap"]["datasourceUid"] in by_uid
        assert by_uid[tempo["serviceMap"]["datasourceUid"]]["type"] == "prometheus"
        assert tempo["tracesToMetrics"]["datasourceUid"] in by_uid
        # logs -> trace: the trace_id structured metadata Watchtower's Loki mapping writes
        sm = [f for f in loki["derivedFields"] if f.get("matcherType") == "label"]
        assert sm and sm[0]["matcherRegex"] == "trace_id" and sm[0]["datasourceUid"] == "tempo"
        for d in dss:
            if d["type"] == "prometheus":
                ex = d["jsonData"]["exemplarTraceIdDestinations"]
                assert ex[0]["name"] == "trace_id" and ex[0]["datasourceUid"] == "tempo"
            assert d["url"].startswith("http://")
        assert sum(1 for d in dss if d.get("isDefault")) == 1, where


def _walk_datasources(node, found):
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            found.append(ds["uid"])
        elif isinstance(ds, str):
            found.append(ds)
        for k, v in node.items():
            if k != "datasource":
                _walk_datasources(v, found)
    elif isinstance(node, list):
        for v in node:
            _walk_datasources(v, found)


def _dashboards(root):
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "compose/grafana/dashboards").glob("*.json"))}


def test_dashboards_reference_only_provisioned_uids(root):
    dashboards = _dashboards(root)
    assert set(dashboards) >= {"service-red.json", "watchtower-gateway.json"}
    for where, dss in _datasource_sets(root).items():
        uids = {d["uid"]: d["type"] for d in dss}
        for name, dash in dashboards.items():
            ds_vars = {v["name"]: v for v in dash["templating"]["list"] if v["type"] == "datasource"}
            for v in ds_vars.values():
                # the variable's default must be a provisioned datasource of its type, or (where it
                # is absent, as Prometheus in the kind stack) Grafana falls back to the default one
                default = v["current"]["value"]
                default_ds = next(d for d in dss if d.get("isDefault"))
                assert (uids.get(default) == v["query"]) or default_ds["type"] == v["query"], (where, name)
            found = []
            _walk_datasources(dash, found)
            assert found, name
            for uid in found:
                m = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", uid)
                if m:
                    assert (m.group(1) or m.group(2)) in ds_vars, f"{name}: {uid} is not a datasource variable"
                else:
                    assert uid in uids, f"{where}: {name} references unprovisioned datasource uid {uid!r}"
        # the dashboard provider points where compose mounts the dashboards
    prov = yaml.safe_load((root / "compose/grafana/provisioning/dashboards/dashboards.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def _exprs(dash):
    return [t.get("expr") or t.get("query", "") for p in dash["panels"] for t in p.get("targets", [])] + [
        (v.get("definition") or "") for v in dash["templating"]["list"]]


def test_dashboards_use_the_metric_names_that_arrive(root):
    import generate

    red = " ".join(_exprs(_dashboards(root)["service-red.json"]))
    for name, (unit, kind, prom) in generate.METRICS.items():
        wanted = prom + "_bucket" if kind == "histogram" else prom
        assert wanted in red, f"RED dashboard does not query {wanted}"
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}," in red
    gw = " ".join(_exprs(_dashboards(root)["watchtower-gateway.json"]))
    for sig in ("spans", "metric_points", "log_records"):
        for m in ("otelcol_receiver_accepted_{}_total", "otelcol_receiver_refused_{}_total",
                  "otelcol_exporter_sent_{}_total", "otelcol_exporter_send_failed_{}_total",
                  "otelcol_exporter_enqueue_failed_{}_total"):
            assert m.format(sig) in gw, m.format(sig)
    for m in ("otelcol_exporter_queue_size", "otelcol_exporter_queue_capacity",
              "watchtower_exporter_dropped_items_total"):
        assert m in gw
    assert "by (exporter" in gw and "by (receiver" in gw


# ---- helm chart --------------------------------------------------------------------------------
def _docs(rendered):
    out = []
    for name, text in rendered.items():
        if name.endswith(".txt"):
            continue
        for d in yaml.safe_load_all(text):
            if d is not None:
                out.append(d)
    return out


def test_chart_renders_default_values(root):
    rendered, values = render_chart(root / "helm/watchtower")
    docs = _docs(rendered)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "Service"], kinds
    by = {d["kind"]: d for d in docs if not d["metadata"]["name"].endswith("-headless")}
    svc = by["Service"]
    # a ClusterIP Service by default; the kind values make it the NodePort kind maps
    assert svc["spec"]["type"] == "ClusterIP"
    assert all("nodePort" not in p for p in svc["spec"]["ports"])
    kind_values = yaml.safe_load((root / "helm/values/watchtower.yaml").read_text())
    kind_svc = next(d for d in _docs(render_chart(root / "helm/watchtower", [kind_values])[0])
                    if d["kind"] == "Service" and d["spec"].get("clusterIP") != "None")
    assert kind_svc["spec"]["type"] == "NodePort"
    ports = {p["name"]: p for p in kind_svc["spec"]["ports"]}
    assert ports["otlp-grpc"]["nodePort"] == 30317 and ports["otlp-http"]["nodePort"] == 30318
    dep = by["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    cports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert cports == {"otlp-grpc": 4317, "otlp-http": 4318, "metrics": 8888, "health": 13133}
    # readiness turns 503 while data is refused; liveness stays 200 (docs/memory.md)
    assert c["readinessProbe"]["httpGet"] == {"path": "/", "port": "health"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
    assert c["args"] == ["run", "--config", "/etc/watchtower/config.yaml"]
    assert pod["volumes"][0]["configMap"]["name"] == by["ConfigMap"]["metadata"]["name"]
    cfg = yaml.safe_load(by["ConfigMap"]["data"]["config.yaml"])
    assert cfg == values["config"]
    # health endpoint in the config matches the probed port
    assert cfg["extensions"]["health_check"]["endpoint"].endswith(":13133")
    assert by["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_chart_optional_objects(root):
    rendered, _ = render_chart(root / "helm/watchtower", [
        {"autoscaling": {"enabled": True}, "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
         "podDisruptionBudget": {"enabled": False}, "service": {"type": "ClusterIP"},
         "env": [{"name": "SUMO_OTLP_ENDPOINT", "value": "https://x"}]}])
    by = {d["kind"]: d for d in _docs(rendered)}
    assert set(by) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "ServiceMonitor"}
    by["Service"] = next(d for d in _docs(rendered) if d["kind"] == "Service" and d["spec"].get("clusterIP") != "None")
    assert "replicas" not in by["Deployment"]["spec"]
    assert by["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == by["Deployment"]["metadata"]["name"]
    assert by["ServiceMonitor"]["metadata"]["labels"]["release"] == "kps"
    assert by["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"
    assert all("nodePort" not in p for p in by["Service"]["spec"]["ports"])
    env = by["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["WATCHTOWER_RUNS_PEERS", "SUMO_OTLP_ENDPOINT"]


def test_renderer_rejects_what_it_does_not_know(root):
    from gotemplate import Renderer

    with pytest.raises(TemplateError):
        Renderer({"x": "{{ .Values.a | b64enc }}"}).render("x", {"Values": {"a": "1"}})


def test_renderer_functions_follow_sprig(root):
    from gotemplate import Renderer

    def r(src, values=None):
        return Renderer({"x": src}).render("x", {"Values": values or {}})

    # dict / hasKey / index (a map's missing key is nil); merge: dst's values win, src fills in
    assert r('{{ index (dict "a" 1 "b" "x") "b" }}') == "x"
    assert r('{{ hasKey (dict "a" 1) "a" }} {{ hasKey (dict "a" 1) "b" }}') == "true false"
    assert r('{{ index (dict "a" 1) "b" }}') == "<no value>"
    assert r('{{ toYaml (merge (dict "a" "dst") .Values.m) }}', {"m": {"a": "src", "b": "src"}}) == "a: dst\nb: src"
    assert r('{{ index ("k: v" | fromYaml) "k" }}') == "v"
    # lower, trim (strings.TrimSpace); contains and hasPrefix take the needle first
    assert r('{{ "NoNe" | lower }}|{{ "\n a b \n" | trim }}|') == "none|a b|"
    assert r('{{ contains ":" "::1" }} {{ contains ":" "a" }} {{ hasPrefix "[" "[::1]" }} {{ hasPrefix "[" "::1" }}') == "true false true false"
    with pytest.raises(TemplateError):
        r('{{ index (list 1) 3 }}')
    # `$x :=` prints nothing and is seen by the rest of its block and the blocks inside
    assert r('{{- $x := "v" }}[{{ $x }}]{{ if true }}{{ $x }}{{ end }}') == "[v]v"
    with pytest.raises(TemplateError):
        r('{{ .x := 1 }}')


def test_kind_maps_the_nodeports(root):
    kind = yaml.safe_load((root / "helm/kind/cluster-config.yaml").read_text())
    maps = {m["containerPort"]: m["hostPort"] for m in kind["nodes"][0]["extraPortMappings"]}
    chart = yaml.safe_load((root / "helm/watchtower/values.yaml").read_text())
    graf = yaml.safe_load((root / "helm/values/grafana.yaml").read_text())
    assert maps[chart["service"]["otlpGrpc"]["nodePort"]] == 4317
    assert maps[chart["service"]["otlpHttp"]["nodePort"]] == 4318
    assert maps[graf["service"]["nodePort"]] == 3000


def test_stock_chart_values_point_at_each_other(root):
    v = lambda n: yaml.safe_load((root / f"helm/values/{n}.yaml").read_text())  # noqa: E731
    loki, tempo, mimir = v("loki"), v("tempo"), v("mimir")
    assert loki["deploymentMode"] == "SingleBinary" and loki["loki"]["auth_enabled"] is False
    assert tempo["tempo"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    assert mimir["mimir"]["structuredConfig"]["multitenancy_enabled"] is False
    cfg = yaml.safe_load((root / "helm/watchtower/values.yaml").read_text())["config"]
    ex = cfg["exporters"]
    assert ex["otlphttp/tempo"]["endpoint"].startswith("http://tempo.watchtower.svc")
    assert ex["loki"]["endpoint"].startswith("http://loki.watchtower.svc") and ex["loki"]["endpoint"].endswith("/loki/api/v1/push")
    assert ex["prometheusremotewrite/mimir"]["endpoint"] == tempo["tempo"]["metricsGenerator"]["remoteWriteUrl"]


# ---- make targets ----------------------------------------------------------------------------
@pytest.mark.parametrize("target,expect", [
    ("docker-up", "docker compose -p watchtower -f compose/docker-compose.yml"),
    ("docker-down", " down"), ("docker-status", " ps"), ("docker-logs", "logs -f"),
    ("docker-clean", "down -v"), ("setup", "kind create cluster"), ("deploy", "helm upgrade --install watchtower"),
    ("deploy-tempo", "grafana/tempo"), ("deploy-loki", "grafana/loki"), ("deploy-mimir", "grafana/mimir-distributed"),
    ("deploy-grafana", "grafana/grafana"), ("deploy-watchtower", "helm/watchtower"), ("status", "kubectl get pods"),
    ("logs", "kubectl logs"), ("teardown", "kind delete cluster"), ("enable-local-only", "helm/values/watchtower.yaml"),
    ("disable-local-only", "watchtower-dualwrite.yaml"), ("test-data", "test-data/generate.py"),
])
def test_make_targets(root, target, expect):
    r = subprocess.run(["make", "-n", target], cwd=root, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout, r.stdout
    for path in re.findall(r"(?:helm|compose)/[\w./-]+\.ya?ml", r.stdout):
        assert (root / path).exists(), path
