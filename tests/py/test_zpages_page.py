"""The zpages web page in Debian's headless chromium (selenium): every pipeline and component
of the config is on the page by name, live rates rise while the OpenTelemetry Python SDK sends,
and the tap panel with a service filter shows the SDK's span (and not another service's),
opens it as OTLP/JSON, pauses and resumes. Saves target/zpages-page.png."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from conftest import ROOT, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def gateway(watchtower_bin, tmp_path):
    for _ in range(3):
        grpc, http, zp = free_port(), free_port(), free_port()
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"""receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 50ms }}
exporters:
  debug: {{ verbosity: basic }}
  debug/audit: {{ verbosity: basic }}
extensions:
  zpages: {{ endpoint: 127.0.0.1:{zp} }}
service:
  extensions: [zpages]
  telemetry: {{ metrics: {{ address: "" }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [debug, debug/audit] }}
    logs/audit: {{ receivers: [otlp], exporters: [debug/audit] }}
""")
        p = subprocess.Popen([watchtower_bin, "run", "--config", str(cfg)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and p.poll() is None:
            try:
                get_json(f"http://127.0.0.1:{zp}/api/v1/status")
                yield {"http": http, "zpages": zp}
                p.terminate()
                p.wait(timeout=10)
                return
            except OSError:
                time.sleep(0.05)
        p.kill()
        p.wait()
    pytest.fail("gateway with zpages did not start")


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="wt-chromium-")
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1600", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    d = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    d.set_page_load_timeout(20)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def tracer(service, http_port):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")))
    return tp


def wait_for(cond, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_shows_graph_rates_and_tapped_span(gateway, browser):
    zp = f"http://127.0.0.1:{gateway['zpages']}"
    browser.get(zp + "/")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".pipeline"), what="the graph")
    for name in ["traces", "logs/audit"]:
        assert browser.find_elements(By.CSS_SELECTOR, f'[data-pipeline="{name}"]'), name
    for comp in ["receiver/otlp", "processor/batch", "exporter/debug", "exporter/debug/audit"]:
        nodes = browser.find_elements(By.CSS_SELECTOR, f'[data-component="{comp}"]')
        assert nodes, comp
        assert comp.split("/", 1)[1] in nodes[0].text
    page_text = browser.find_element(By.TAG_NAME, "body").text
    assert "debug/audit" in page_text and "logs/audit" in page_text

    # tap panel: filter on service checkout, then start
    browser.find_element(By.ID, "tap-service").send_keys("checkout")
    browser.find_element(By.ID, "tap-start").click()
    wait_for(lambda: get_json(zp + "/api/v1/status")["tap"]["viewers"] == 1, what="the tap viewer")

    checkout = tracer("checkout", gateway["http"])
    cart = tracer("cart", gateway["http"])
    stop = threading.Event()

    def send():
        while not stop.is_set():
            with checkout.get_tracer("t").start_as_current_span("POST /orders"):
                pass
            with cart.get_tracer("t").start_as_current_span("GET /cart"):
                pass
            time.sleep(0.05)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        def receiver_rate():
            node = browser.find_element(By.CSS_SELECTOR, '[data-pipeline="traces"] [data-component="receiver/otlp"] .rate')
            txt = node.text  # "accepted 12.0/s, refused 0.0/s"
            try:
                return float(txt.split("accepted ")[1].split("/s")[0]) > 0
            except (IndexError, ValueError):
                return False
        wait_for(receiver_rate, what="a rising receiver rate")

        rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#taprows tr.item"),
                        what="a tapped span")
        services = {r.get_attribute("data-service") for r in browser.find_elements(By.CSS_SELECTOR, "#taprows tr.item")}
        assert services == {"checkout"}, services
        assert rows[0].get_attribute("data-name") == "POST /orders"
        browser.save_screenshot(str(ROOT / "target" / "zpages-page.png"))

        # pause: no new rows while data still flows
        browser.find_element(By.ID, "tap-pause").click()
        time.sleep(0.2)
        n = len(browser.find_elements(By.CSS_SELECTOR, "#taprows tr.item"))
        time.sleep(0.6)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#taprows tr.item")) == n

        # a row opens to the item as OTLP/JSON
        first = browser.find_elements(By.CSS_SELECTOR, "#taprows tr.item")[0]
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", first)
        first.click()
        pre = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#taprows tr.detail pre"), what="detail")
        otlp = json.loads(pre[0].text)
        assert otlp["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == "POST /orders"
        attrs = otlp["resourceSpans"][0]["resource"]["attributes"]
        assert {"key": "service.name", "value": {"stringValue": "checkout"}} in attrs

        # resume: the held rows appear
        browser.find_element(By.ID, "tap-pause").click()
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#taprows tr.item")) > n, what="rows after resume")
    finally:
        stop.set()
        t.join(timeout=5)
        checkout.shutdown()
        cart.shutdown()
    # exporter state table names every exporter
    for exp in ["debug", "debug/audit"]:
        assert browser.find_elements(By.CSS_SELECTOR, f'#exporters tr[data-exporter="{exp}"]'), exp
