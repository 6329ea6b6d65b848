"""Exports spans one at a time, at a steady pace, with the OpenTelemetry Python SDK's gRPC
exporter, and prints how many were sent and what each export returned, as JSON.

usage: sdk_paced.py ENDPOINT COUNT PAUSE_SECONDS
"""
import json
import sys
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

endpoint, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
inner = OTLPSpanExporter(endpoint=endpoint, insecure=True)
results = []


class Recording(SpanExporter):
    def export(self, spans):
        r = inner.export(spans)
        results.append(r.name)
        return r

    def shutdown(self):
        inner.shutdown()


tp = TracerProvider(resource=Resource.create({"service.name": "paced"}))
tp.add_span_processor(SimpleSpanProcessor(Recording()))
tracer = tp.get_tracer("paced")
for i in range(count):
    with tracer.start_as_current_span(f"paced-{i}"):
        pass
    time.sleep(pause)
tp.shutdown()
print(json.dumps({"sent": count, "results": results}))
