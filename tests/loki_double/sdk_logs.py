"""Emits known log records with the OpenTelemetry Python SDK (gRPC or HTTP exporter), some of
them inside a span, and prints what it sent as JSON for the Loki end-to-end test.

usage: sdk_logs.py grpc|http ENDPOINT TAG
"""
import json
import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

proto, endpoint, tag = sys.argv[1], sys.argv[2], sys.argv[3]
if proto == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint=endpoint + "/v1/logs")

resource = Resource.create({
    "service.name": f"loki-{tag}",
    "service.namespace": "qa",
    "k8s.pod.name": "pod-1",
    "team.id": "t7",
})
lp = LoggerProvider(resource=resource)
lp.add_log_record_processor(BatchLogRecordProcessor(exporter))
tracer = TracerProvider(resource=resource).get_tracer("loki-e2e", "0.1")

logger = logging.getLogger(f"e2e.{tag}")
logger.setLevel(logging.INFO)
logger.propagate = False
logger.addHandler(LoggingHandler(logger_provider=lp))

sent = []
for i in range(5):
    if i % 2 == 0:
        with tracer.start_as_current_span(f"{tag}-op-{i}") as span:
            ctx = span.get_span_context()
            logger.warning("in span %s %d", tag, i, extra={"order.id": f"o{i}"})
            sent.append({"body": f"in span {tag} {i}", "trace_id": f"{ctx.trace_id:032x}",
                         "span_id": f"{ctx.span_id:016x}", "severity": "WARN", "order_id": f"o{i}"})
    else:
        logger.info("plain %s %d", tag, i, extra={"order.id": f"o{i}"})
        sent.append({"body": f"plain {tag} {i}", "trace_id": None, "span_id": None,
                     "severity": "INFO", "order_id": f"o{i}"})

lp.shutdown()
print(json.dumps(sent))
