"""Sends spans and logs for the processing tests with the OpenTelemetry Python SDK (OTLP/HTTP)
and prints what it sent as JSON.

usage: sdk_processing.py ENDPOINT
Traces: 3 health-check server spans (http.route=/healthz) and 2 checkout spans.
Logs: 3 records whose bodies carry an e-mail address.
"""
import json
import logging
import sys

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

endpoint = sys.argv[1]
resource = Resource.create({"service.name": "shop", "deployment.environment": "qa"})
tp = TracerProvider(resource=resource)
tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
lp = LoggerProvider(resource=resource)
lp.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint + "/v1/logs")))
logger = logging.getLogger("shop")
logger.setLevel(logging.INFO)
logger.propagate = False
logger.addHandler(LoggingHandler(logger_provider=lp))
tracer = tp.get_tracer("shop", "1.0")

sent = {"health": [], "checkout": [], "logs": []}
for i in range(3):
    with tracer.start_as_current_span("GET /healthz", kind=SpanKind.SERVER, attributes={"http.route": "/healthz"}) as s:
        sent["health"].append(f"{s.get_span_context().span_id:016x}")
for i in range(2):
    with tracer.start_as_current_span(f"checkout-{i}", kind=SpanKind.SERVER, attributes={"http.route": "/checkout"}) as s:
        sent["checkout"].append(f"{s.get_span_context().span_id:016x}")
for i, user in enumerate(["alice@example.com", "bob.smith@corp.example.org", "carol@example.net"]):
    body = f"order {i} paid by {user}"
    logger.info(body)
    sent["logs"].append(body)
tp.shutdown()
lp.shutdown()
print(json.dumps(sent))
