"""A small OTLP/HTTP capture server for tests: decodes every POST /v1/{traces,metrics,logs}
(protobuf, optionally gzip) with the opentelemetry-proto package and keeps the decoded requests.
Answers 200 with an empty Export*ServiceResponse, as an OTLP backend does."""
from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_KINDS = {
    "/v1/traces": ("traces", ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": ("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/logs": ("logs", ExportLogsServiceRequest, ExportLogsServiceResponse),
}


class Capture:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = {"traces": [], "metrics": [], "logs": []}
        self.errors: list[str] = []
        self.paths: list[str] = []

    # ---- views over what arrived -------------------------------------------------------------
    def spans(self):
        """[(service.name, Span)]"""
        out = []
        with self.lock:
            reqs = list(self.requests["traces"])
        for req in reqs:
            for rs in req.resource_spans:
                svc = _service(rs.resource)
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        out.append((svc, sp))
        return out

    def log_records(self):
        """[(service.name, LogRecord)]"""
        out = []
        with self.lock:
            reqs = list(self.requests["logs"])
        for req in reqs:
            for rl in req.resource_logs:
                svc = _service(rl.resource)
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        out.append((svc, lr))
        return out

    def metrics(self):
        """[(service.name, resource attrs dict, Metric)]"""
        out = []
        with self.lock:
            reqs = list(self.requests["metrics"])
        for req in reqs:
            for rm in req.resource_metrics:
                svc = _service(rm.resource)
                attrs = {kv.key: _anyvalue(kv.value) for kv in rm.resource.attributes}
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        out.append((svc, attrs, m))
        return out


def _anyvalue(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _service(resource) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return ""


def start_capture_server(host: str = "127.0.0.1", port: int = 0):
    """Returns (server, capture, base_url). Call server.shutdown() when done."""
    cap = Capture()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # quiet
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            with cap.lock:
                cap.paths.append(path)
            kind = _KINDS.get(path)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if kind is None or ctype != "application/x-protobuf":
                with cap.lock:
                    cap.errors.append(f"unexpected {path} {ctype}")
                self._reply(404 if kind is None else 415, b"", "text/plain")
                return
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            name, req_cls, resp_cls = kind
            req = req_cls()
            try:
                req.ParseFromString(body)
            except Exception as e:  # noqa: BLE001
                with cap.lock:
                    cap.errors.append(f"decode {path}: {e}")
                self._reply(400, b"", "text/plain")
                return
            with cap.lock:
                cap.requests[name].append(req)
            self._reply(200, resp_cls().SerializeToString(), "application/x-protobuf")

        def _reply(self, code, payload, ctype):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, cap, f"http://{host}:{server.server_address[1]}"
