"""Every Watchtower config shipped in compose/ and helm/ passes `watchtower validate`."""
import os
import subprocess

import pytest
import yaml

from gotemplate import deep_merge, render_chart


def _shipped_configs(root):
    """[(label, config text)]"""
    out = []
    for p in sorted((root / "compose/watchtower").glob("*.yaml")):
        out.append((str(p.relative_to(root)), p.read_text()))
    # the chart's ConfigMap as rendered from the default values (values.yaml `config:`)
    rendered, _ = render_chart(root / "helm/watchtower")
    cm = yaml.safe_load(rendered["configmap.yaml"])
    out.append(("helm/watchtower (default values)", cm["data"]["config.yaml"]))
    # kind release values, and the dual-write overlay merged as `helm -f a -f b` merges it
    base = yaml.safe_load((root / "helm/values/watchtower.yaml").read_text())
    dual = yaml.safe_load((root / "helm/values/watchtower-dualwrite.yaml").read_text())
    for label, ovs in (("helm/values/watchtower.yaml", [base]),
                       ("helm/values/watchtower.yaml + watchtower-dualwrite.yaml", [base, dual])):
        rendered, _ = render_chart(root / "helm/watchtower", ovs)
        out.append((label, yaml.safe_load(rendered["configmap.yaml"])["data"]["config.yaml"]))
    # the sidecar example's ConfigMap
    for doc in yaml.safe_load_all((root / "helm/examples/sidecar.yaml").read_text()):
        if doc and doc.get("kind") == "ConfigMap":
            out.append(("helm/examples/sidecar.yaml", doc["data"]["config.yaml"]))
    return out


def _validate(bin_, path, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([bin_, "validate", "--config", str(path)], capture_output=True, text=True,
                          timeout=30, env=env)


def test_shipped_configs_found(root):
    labels = [label for label, _ in _shipped_configs(root)]
    assert len(labels) == 7, labels


@pytest.mark.parametrize("idx", range(7))
def test_shipped_config_validates(root, watchtower_bin, tmp_path, idx):
    label, text = _shipped_configs(root)[idx]
    f = tmp_path / "config.yaml"
    f.write_text(text)
    r = _validate(watchtower_bin, f, {"SUMO_OTLP_ENDPOINT": "https://collectors.example/receiver/v1/otlp/TOKEN"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", f"{label}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"


def test_validate_rejects_an_unknown_key(root, watchtower_bin, tmp_path):
    """validate is not a no-op: a typo in a shipped config is caught."""
    cfg = yaml.safe_load((root / "compose/watchtower/config.yaml").read_text())
    cfg["exporters"]["loki"] = deep_merge(cfg["exporters"]["loki"], {"endpiont": "http://x"})
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(cfg))
    r = _validate(watchtower_bin, f)
    assert r.returncode != 0
    assert "endpiont" in (r.stdout + r.stderr)
