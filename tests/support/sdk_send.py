"""Sends known telemetry with the OpenTelemetry Python SDK and prints what it sent as JSON.

usage: sdk_send.py grpc|http ENDPOINT TAG
Traces: 3 parent spans named TAG-op-i each with one child; logs emitted inside the spans;
metrics: a counter TAG.requests (+7) and a histogram TAG.latency (3 values).
"""
import json
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
import logging

proto, endpoint, tag = sys.argv[1], sys.argv[2], sys.argv[3]
if proto == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    kw = dict(endpoint=endpoint, insecure=True)
    span_exp, metric_exp, log_exp = OTLPSpanExporter(**kw), OTLPMetricExporter(**kw), OTLPLogExporter(**kw)
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    span_exp = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
    metric_exp = OTLPMetricExporter(endpoint=endpoint + "/v1/metrics")
    log_exp = OTLPLogExporter(endpoint=endpoint + "/v1/logs")

resource = Resource.create({"service.name": f"sdk-{tag}", "service.namespace": "qa"})
tp = TracerProvider(resource=resource)
tp.add_span_processor(BatchSpanProcessor(span_exp))
lp = LoggerProvider(resource=resource)
lp.add_log_record_processor(BatchLogRecordProcessor(log_exp))
reader = PeriodicExportingMetricReader(metric_exp, export_interval_millis=3_600_000)
mp = MeterProvider(resource=resource, metric_readers=[reader])

logger = logging.getLogger(f"sdk.{tag}")
logger.setLevel(logging.INFO)
logger.propagate = False
logger.addHandler(LoggingHandler(logger_provider=lp))

tracer = tp.get_tracer("sdk-test", "1.2.3")
meter = mp.get_meter("sdk-test")
counter = meter.create_counter(f"{tag}.requests", unit="1")
hist = meter.create_histogram(f"{tag}.latency", unit="ms")

sent = {"spans": [], "logs": []}
for i in range(3):
    with tracer.start_as_current_span(f"{tag}-op-{i}", attributes={"i": i, "tag": tag}) as parent:
        with tracer.start_as_current_span(f"{tag}-child-{i}") as child:
            ctx = child.get_span_context()
            sent["spans"].append({"name": f"{tag}-child-{i}", "trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"})
            logger.info("log %s %d", tag, i)
            sent["logs"].append({"body": f"log {tag} {i}", "trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"})
        pctx = parent.get_span_context()
        sent["spans"].append({"name": f"{tag}-op-{i}", "trace_id": f"{pctx.trace_id:032x}", "span_id": f"{pctx.span_id:016x}"})
counter.add(7, {"route": "/x"})
for v in (1.0, 5.0, 250.0):
    hist.record(v, {"route": "/x"})

tp.shutdown()
lp.shutdown()
mp.shutdown()
print(json.dumps(sent))
