"""The zpages MCP endpoint (/mcp, streamable HTTP, rmcp) with the official Python MCP client:
it lists the tools, `recent` answers with the spans the OpenTelemetry SDK just sent (service
and trace-id filters checked), `wait_for` returns the error span sent while it waits and
times out with an error result, `status` names the pipeline, and a bad filter is an error
result naming it."""

import asyncio
import json
import subprocess
import time
import urllib.request

import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import free_port


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def gateway(watchtower_bin, tmp_path):
    for _ in range(3):
        http, zp = free_port(), free_port()
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"""receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
  debug: {{ verbosity: basic }}
extensions:
  zpages: {{ endpoint: 127.0.0.1:{zp} }}
service:
  extensions: [zpages]
  telemetry: {{ metrics: {{ address: "" }} }}
  pipelines:
    traces/app: {{ receivers: [otlp], exporters: [debug] }}
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


def provider(service, http_port):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")))
    return tp


def text_of(result):
    assert result.content, result
    return result.content[0].text


async def session_calls(gw):
    url = f"http://127.0.0.1:{gw['zpages']}/mcp"
    checkout = provider("checkout", gw["http"])
    cart = provider("cart", gw["http"])
    tr = checkout.get_tracer("test")
    with tr.start_as_current_span("GET /orders") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    with cart.get_tracer("test").start_as_current_span("GET /cart"):
        pass
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            tools = await s.list_tools()
            names = {t.name for t in tools.tools}
            assert names == {"status", "recent", "wait_for", "run_summary", "gate"}, names

            st = json.loads(text_of(await s.call_tool("status", {})))
            assert st["pipelines"][0]["name"] == "traces/app"

            r = await s.call_tool("recent", {"signal": "traces", "service": "checkout"})
            assert not r.is_error, r
            items = json.loads(text_of(r))["items"]
            assert [i["name"] for i in items] == ["GET /orders"]
            assert items[0]["trace_id"] == trace_id
            r = await s.call_tool("recent", {"trace_id": trace_id})
            items = json.loads(text_of(r))["items"]
            assert len(items) == 1 and items[0]["service"] == "checkout"
            spans = items[0]["otlp"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
            assert spans[0]["traceId"] == trace_id

            # wait_for: the error span sent while the tool waits
            async def send_later():
                await asyncio.sleep(0.5)
                def send():
                    from opentelemetry.trace import Status, StatusCode
                    with cart.get_tracer("test").start_as_current_span("POST /orders") as sp:
                        sp.set_status(Status(StatusCode.ERROR))
                    with tr.start_as_current_span("POST /orders") as sp:
                        sp.set_status(Status(StatusCode.ERROR))
                await asyncio.to_thread(send)
            sender = asyncio.create_task(send_later())
            r = await s.call_tool("wait_for", {"service": "checkout", "name": "POST /orders",
                                               "status": "error", "timeout_seconds": 20})
            await sender
            assert not r.is_error, r
            it = json.loads(text_of(r))
            assert (it["service"], it["name"], it["status"]) == ("checkout", "POST /orders", "error")

            t0 = time.monotonic()
            r = await s.call_tool("wait_for", {"service": "nobody", "timeout_seconds": 0.5})
            assert r.is_error and "timeout" in text_of(r)
            assert time.monotonic() - t0 < 10

            r = await s.call_tool("recent", {"signal": "spans"})
            assert r.is_error and "signal" in text_of(r)
            r = await s.call_tool("run_summary", {"id": "nope"})
            assert r.is_error
    checkout.shutdown()
    cart.shutdown()


def test_mcp_tools_with_python_client(gateway):
    asyncio.run(asyncio.wait_for(session_calls(gateway), timeout=60))
