#!/usr/bin/env python3
"""Synthetic OTLP telemetry for Watchtower: api-gateway -> order-service -> payment-service.

Every simulated request is one distributed trace across the three services (W3C trace context is
injected into a carrier by the caller and extracted by the callee, as it would be over HTTP), plus
metrics (request count, latency histogram, error count, recorded inside the server span so the
SDK attaches trace-id exemplars) and structured log records emitted inside spans (so they carry
the trace and span ids). Each service has its own TracerProvider, MeterProvider and LoggerProvider
with its own Resource, exactly like three separately deployed processes.

Failures are recorded as the semantic conventions say: an `exception` span event with
`exception.type`, `exception.message`, `exception.stacktrace`, and span status ERROR.

`--manifest FILE` writes what was generated (trace ids, spans/logs/exceptions per service,
metric measurements and the metric points the exporters actually sent) so a test or an analysis
tool can compare what arrived against what was sent. See README.md for the scenarios.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

try:  # SDK 1.45+: the log exporter interface is LogRecordExporter and returns LogRecordExportResult
    from opentelemetry.sdk._logs.export import LogRecordExporter as LogExporter
except ImportError:  # the pinned SDK (test-data/requirements.txt)
    from opentelemetry.sdk._logs.export import LogExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

SERVICES = ("api-gateway", "order-service", "payment-service")
SCENARIOS = ("baseline", "payment-timeout", "order-db-slow", "new-exception")
SCOPE = "watchtower.test-data"
SCOPE_VERSION = "1.0.0"

# Metric instruments (OpenTelemetry name, unit) and the name Prometheus' OTLP translation gives
# them (UnderscoreEscapingWithSuffixes, the default): units in braces are dropped, "ms" becomes
# "milliseconds", monotonic counters get "_total".
METRICS = {
    "http.server.request.count": ("{request}", "counter", "http_server_request_count_total"),
    "http.server.duration": ("ms", "histogram", "http_server_duration_milliseconds"),
    "http.server.error.count": ("{error}", "counter", "http_server_error_count_total"),
}


# ---------------------------------------------------------------------------------------------
# Exceptions the simulated services raise. Their __module__ is set so that `exception.type`
# (the SDK writes "<module>.<qualname>") reads like a real service's exception.
class PaymentDeclinedError(Exception):
    pass


class InventoryUnavailableError(Exception):
    pass


class PaymentProviderTimeoutError(TimeoutError):
    pass


class QueryTimeoutError(Exception):
    pass


class CurrencyConversionError(ValueError):
    pass


PaymentDeclinedError.__module__ = "payments.gateway"
PaymentProviderTimeoutError.__module__ = "payments.gateway"
CurrencyConversionError.__module__ = "payments.fx"
InventoryUnavailableError.__module__ = "orders.inventory"
QueryTimeoutError.__module__ = "orders.db"


def exception_type_name(exc_cls: type) -> str:
    """The value the Python SDK writes into `exception.type` (Span.record_exception)."""
    module, qualname = exc_cls.__module__, exc_cls.__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


# ---------------------------------------------------------------------------------------------
class SeededIdGenerator(IdGenerator):
    """Trace and span ids from a seeded RNG, shared by the three services' providers."""

    def __init__(self, seed: Optional[int]):
        self._rng = random.Random(None if seed is None else f"ids-{seed}")
        self._lock = threading.Lock()

    def _bits(self, n: int) -> int:
        with self._lock:
            while True:
                v = self._rng.getrandbits(n)
                if v:
                    return v

    def generate_span_id(self) -> int:
        return self._bits(64)

    def generate_trace_id(self) -> int:
        return self._bits(128)


class ExportTally:
    """Counts items each exporter reported as sent or failed (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts: Dict[str, Dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))

    def add(self, service: str, signal_name: str, ok: bool, n: int) -> None:
        with self._lock:
            self.counts[service][signal_name]["sent" if ok else "failed"] += n

    def as_dict(self) -> dict:
        with self._lock:
            return {
                svc: {sig: {"sent": c.get("sent", 0), "failed": c.get("failed", 0)} for sig, c in sigs.items()}
                for svc, sigs in self.counts.items()
            }

    def failed_total(self) -> int:
        with self._lock:
            return sum(c.get("failed", 0) for sigs in self.counts.values() for c in sigs.values())


def succeeded(result) -> bool:
    """True for an exporter's SUCCESS result, whatever the result's enum type: SDK 1.45 log
    exporters return `LogRecordExportResult`, older ones `LogExportResult`, and the span and
    metric exporters their own enums. All of them name the success member `SUCCESS`."""
    return getattr(result, "name", None) == "SUCCESS"


class CountingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, service: str, tally: ExportTally):
        self._inner, self._service, self._tally = inner, service, tally

    def export(self, spans: Sequence) -> SpanExportResult:
        result = self._inner.export(spans)
        self._tally.add(self._service, "spans", succeeded(result), len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class CountingLogExporter(LogExporter):
    def __init__(self, inner: LogExporter, service: str, tally: ExportTally):
        self._inner, self._service, self._tally = inner, service, tally

    def export(self, batch: Sequence):
        result = self._inner.export(batch)
        self._tally.add(self._service, "log_records", succeeded(result), len(batch))
        return result

    def shutdown(self):
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class CountingMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, service: str, tally: ExportTally):
        super().__init__(
            preferred_temporality=inner._preferred_temporality,  # cumulative by default
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner, self._service, self._tally = inner, service, tally

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        points = sum(
            len(m.data.data_points)
            for rm in metrics_data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
        result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self._tally.add(self._service, "metric_points", succeeded(result), points)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


# ---------------------------------------------------------------------------------------------
def make_exporters(protocol: str, endpoint: str, timeout: float):
    """(span exporter, log exporter, metric exporter) factories for one service."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        ep = endpoint.split("://", 1)[1] if "://" in endpoint else endpoint
        secure = endpoint.startswith("https://")
        return (
            OTLPSpanExporter(endpoint=ep, insecure=not secure, timeout=timeout),
            OTLPLogExporter(endpoint=ep, insecure=not secure, timeout=timeout),
            OTLPMetricExporter(endpoint=ep, insecure=not secure, timeout=timeout),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint if "://" in endpoint else f"http://{endpoint}"
    base = base.rstrip("/")
    return (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=timeout),
        OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=timeout),
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=timeout),
    )


class Service:
    """One simulated service: its own providers, tracer, meter, logger and instruments."""

    def __init__(self, name: str, args, ids: IdGenerator, tally: ExportTally):
        self.name = name
        attrs = {
            "service.name": name,
            "service.version": "1.4.2",
            "service.instance.id": f"{name}-0",
            "telemetry.sdk.language": "python",
        }
        if args.service_namespace:
            attrs["service.namespace"] = args.service_namespace
        attrs.update(args.resource_attrs)
        self.resource = Resource.create(attrs)
        span_exp, log_exp, metric_exp = make_exporters(args.protocol, args.endpoint, args.export_timeout)

        self.tracer_provider = TracerProvider(resource=self.resource, id_generator=ids)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(
                CountingSpanExporter(span_exp, name, tally),
                max_queue_size=200_000,
                max_export_batch_size=512,
                schedule_delay_millis=500,
            )
        )
        self.logger_provider = LoggerProvider(resource=self.resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                CountingLogExporter(log_exp, name, tally),
                max_queue_size=200_000,
                max_export_batch_size=512,
                schedule_delay_millis=500,
            )
        )
        reader = PeriodicExportingMetricReader(
            CountingMetricExporter(metric_exp, name, tally),
            export_interval_millis=int(args.metric_interval * 1000),
        )
        self.meter_provider = MeterProvider(resource=self.resource, metric_readers=[reader])

        self.tracer = self.tracer_provider.get_tracer(SCOPE, SCOPE_VERSION)
        self.logger = self.logger_provider.get_logger(SCOPE, SCOPE_VERSION)
        meter = self.meter_provider.get_meter(SCOPE, SCOPE_VERSION)
        self.requests = meter.create_counter(
            "http.server.request.count", unit="{request}", description="Requests handled by the service"
        )
        self.duration = meter.create_histogram(
            "http.server.duration", unit="ms", description="Duration of inbound HTTP requests"
        )
        self.errors = meter.create_counter(
            "http.server.error.count", unit="{error}", description="Requests that failed"
        )

    def shutdown(self) -> None:
        # Flush and stop everything so every span, log record and the final metric collection is
        # exported before the process exits.
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


# ---------------------------------------------------------------------------------------------
class Manifest:
    def __init__(self):
        self.traces: List[dict] = []
        self.spans = Counter()
        self.error_spans = Counter()
        self.logs = Counter()
        self.logs_by_severity: Dict[str, Counter] = defaultdict(Counter)
        self.exceptions_by_type = Counter()
        self.exceptions_by_service: Dict[str, Counter] = defaultdict(Counter)
        self.requests = Counter()
        self.service_errors = Counter()
        self.duration_records = Counter()
        self.series: Dict[str, set] = defaultdict(set)


# Named frames so every exception type has its own, realistic `exception.stacktrace`.
def reserve_inventory(exc):
    raise exc


def insert_order(exc):
    raise exc


def charge_card(exc):
    raise exc


def call_payment_provider(exc):
    raise exc


def convert_currency(exc):
    raise exc


_RAISERS = {
    InventoryUnavailableError: reserve_inventory,
    QueryTimeoutError: insert_order,
    PaymentDeclinedError: charge_card,
    PaymentProviderTimeoutError: call_payment_provider,
    CurrencyConversionError: convert_currency,
}


def _throw_and_catch(exc: BaseException) -> BaseException:
    """Raise and catch so the exception carries a real traceback (exception.stacktrace)."""
    try:
        _RAISERS[type(exc)](exc)
    except BaseException as caught:  # noqa: BLE001 - intended
        return caught
    raise AssertionError("unreachable")


class Simulator:
    def __init__(self, args, services: Dict[str, Service], manifest: Manifest):
        self.args = args
        self.svc = services
        self.m = manifest
        self.rng = random.Random(None if args.seed is None else f"scenario-{args.seed}")

    # -- helpers -------------------------------------------------------------------------------
    def _span(self, service: str, name: str, kind: SpanKind, start: int, context=None, attrs=None):
        span = self.svc[service].tracer.start_span(
            name, context=context, kind=kind, start_time=start, attributes=attrs or {}
        )
        self.m.spans[service] += 1
        return span

    def _end(self, service: str, span, end: int, error: Optional[str] = None, exc: Optional[BaseException] = None):
        if exc is not None:
            span.record_exception(exc, timestamp=end, escaped=True)
            t = exception_type_name(type(exc))
            self.m.exceptions_by_type[t] += 1
            self.m.exceptions_by_service[service][t] += 1
            if error is None:
                error = f"{t}: {exc}"
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
            self.m.error_spans[service] += 1
        span.end(end_time=end)

    def _log(self, service: str, span, ts: int, severity: SeverityNumber, body: str, attrs: dict):
        ctx = trace.set_span_in_context(span)
        self.svc[service].logger.emit(
            timestamp=ts,
            observed_timestamp=ts,
            context=ctx,
            severity_number=severity,
            severity_text=severity.name.rstrip("0123456789") or "INFO",
            body=body,
            attributes=attrs,
        )
        self.m.logs[service] += 1
        self.m.logs_by_severity[service][severity.name] += 1

    def _metrics(self, service: str, span, route: str, method: str, status: int, ms: float):
        ctx = trace.set_span_in_context(span)
        attrs = {"http.route": route, "http.request.method": method, "http.response.status_code": status}
        s = self.svc[service]
        s.requests.add(1, attrs, context=ctx)
        s.duration.record(ms, attrs, context=ctx)
        self.m.requests[service] += 1
        self.m.duration_records[service] += 1
        key = json.dumps(attrs, sort_keys=True)
        self.m.series[f"{service}|http.server.request.count"].add(key)
        self.m.series[f"{service}|http.server.duration"].add(key)
        if status >= 500 or status in (402, 409):
            s.errors.add(1, attrs, context=ctx)
            self.m.service_errors[service] += 1
            self.m.series[f"{service}|http.server.error.count"].add(key)

    def _ms(self, lo: float, hi: float) -> int:
        return int(self.rng.uniform(lo, hi) * 1_000_000)

    # -- the scenario: which failure (if any) this request hits ---------------------------------
    def plan_failure(self, progress: float) -> Optional[str]:
        sc, r = self.args.scenario, self.rng.random()
        if sc == "payment-timeout" and 0.3 <= progress < 0.6 and self.rng.random() < 0.9:
            return "payment-timeout"
        if sc == "new-exception" and progress >= 1 / 3 and self.rng.random() < 0.2:
            return "currency"
        if sc == "order-db-slow":
            # every query is slow; the ones over the 2 s statement timeout fail
            return "db-slow-fail" if self.rng.random() < 0.25 else "db-slow"
        if r < self.args.error_rate:
            return "declined" if self.rng.random() < 0.6 else "inventory"
        return None

    # -- one request ---------------------------------------------------------------------------
    def request(self, index: int, progress: float) -> None:
        failure = self.plan_failure(progress)
        amount = round(self.rng.uniform(5, 500), 2)
        order_id = f"ord-{index:07d}-{self.rng.randrange(16**6):06x}"
        customer = f"cust-{self.rng.randrange(1000):04d}"
        t0 = time.time_ns()
        gw = "api-gateway"

        g_srv = self._span(gw, "POST /api/orders", SpanKind.SERVER, t0, attrs={
            "http.request.method": "POST", "http.route": "/api/orders", "url.path": "/api/orders",
            "url.scheme": "http", "server.address": "api-gateway", "customer.id": customer,
        })
        self._log(gw, g_srv, t0 + 100_000, SeverityNumber.INFO, "request received",
                  {"http.route": "/api/orders", "customer.id": customer})
        t = t0 + self._ms(0.5, 2)
        g_cli = self._span(gw, "POST", SpanKind.CLIENT, t, context=trace.set_span_in_context(g_srv), attrs={
            "http.request.method": "POST", "server.address": "order-service", "server.port": 8080,
            "url.full": "http://order-service:8080/orders",
        })
        carrier: Dict[str, str] = {}
        inject(carrier, context=trace.set_span_in_context(g_cli))

        o_end, o_status = self.order_service(carrier, t + self._ms(0.2, 1), failure, order_id, amount)

        g_cli.set_attribute("http.response.status_code", o_status)
        self._end(gw, g_cli, o_end + self._ms(0.2, 1), error=str(o_status) if o_status >= 500 else None)
        g_status = 502 if o_status >= 500 else o_status
        g_end = o_end + self._ms(1, 3)
        g_srv.set_attribute("http.response.status_code", g_status)
        if g_status >= 400:
            self._log(gw, g_srv, g_end - 50_000, SeverityNumber.ERROR, "request failed",
                      {"http.route": "/api/orders", "http.response.status_code": g_status, "order.id": order_id})
        else:
            self._log(gw, g_srv, g_end - 50_000, SeverityNumber.INFO, "request completed",
                      {"http.route": "/api/orders", "http.response.status_code": g_status, "order.id": order_id})
        self._metrics(gw, g_srv, "/api/orders", "POST", g_status, (g_end - t0) / 1e6)
        self._end(gw, g_srv, g_end, error=f"HTTP {g_status}" if g_status >= 500 else None)

        tid = format(g_srv.get_span_context().trace_id, "032x")
        self.m.traces.append({
            "trace_id": tid,
            "index": index,
            "error": g_status >= 400,
            "status_code": g_status,
            "failure": failure,
        })

    def order_service(self, carrier, t0: int, failure, order_id: str, amount: float):
        """Authorizes the payment (payment-service), then reserves stock and writes the order, so
        every request reaches all three services whatever fails."""
        svc = "order-service"
        ctx = extract(carrier)
        srv = self._span(svc, "POST /orders", SpanKind.SERVER, t0, context=ctx, attrs={
            "http.request.method": "POST", "http.route": "/orders", "url.path": "/orders",
            "url.scheme": "http", "server.address": "order-service", "order.id": order_id,
        })
        self._log(svc, srv, t0 + 50_000, SeverityNumber.INFO, "creating order",
                  {"order.id": order_id, "order.amount": amount})
        sctx = trace.set_span_in_context(srv)

        # payment authorization
        t = t0 + self._ms(0.2, 1)
        cli = self._span(svc, "POST", SpanKind.CLIENT, t, context=sctx, attrs={
            "http.request.method": "POST", "server.address": "payment-service", "server.port": 8080,
            "url.full": "http://payment-service:8080/payments",
        })
        carrier2: Dict[str, str] = {}
        inject(carrier2, context=trace.set_span_in_context(cli))
        p_end, p_status = self.payment_service(carrier2, t + self._ms(0.2, 1), failure, order_id, amount)
        cli.set_attribute("http.response.status_code", p_status)
        t = p_end + self._ms(0.2, 1)
        self._end(svc, cli, t, error=str(p_status) if p_status >= 500 else None)

        exc: Optional[BaseException] = None
        if p_status >= 400:
            status = p_status if p_status == 402 else 502
        else:
            # stock reservation and database write
            t += self._ms(0.2, 1)
            db_ms = self.rng.uniform(800, 1900) if failure == "db-slow" else (
                2000.0 if failure == "db-slow-fail" else self.rng.uniform(3, 25))
            db = self._span(svc, "INSERT orders", SpanKind.CLIENT, t, context=sctx, attrs={
                "db.system.name": "postgresql", "db.namespace": "orders", "db.operation.name": "INSERT",
                "db.collection.name": "orders", "server.address": "orders-db", "server.port": 5432,
            })
            t_db = t + int(db_ms * 1_000_000)
            if failure == "inventory":
                exc = _throw_and_catch(InventoryUnavailableError(f"no stock reserved for order {order_id}"))
                status = 409
                self._end(svc, db, t_db)
            elif failure == "db-slow-fail":
                exc = _throw_and_catch(QueryTimeoutError(
                    "canceling statement due to statement timeout (2000 ms) on INSERT orders"))
                status = 500
                self._end(svc, db, t_db, error="statement timeout")
            else:
                status = 201
                self._end(svc, db, t_db)
                if failure == "db-slow":
                    self._log(svc, srv, t_db, SeverityNumber.WARN, "slow query",
                              {"order.id": order_id, "db.duration_ms": round(db_ms, 1)})
            t = t_db

        end = t + self._ms(0.5, 2)
        srv.set_attribute("http.response.status_code", status)
        if exc is not None:
            self._log(svc, srv, end - 20_000, SeverityNumber.ERROR, f"order failed: {exc}",
                      {"order.id": order_id, "exception.type": exception_type_name(type(exc))})
        elif status >= 400:
            self._log(svc, srv, end - 20_000, SeverityNumber.ERROR, "order failed: payment not completed",
                      {"order.id": order_id, "http.response.status_code": status})
        else:
            self._log(svc, srv, end - 20_000, SeverityNumber.INFO, "order created",
                      {"order.id": order_id, "order.amount": amount})
        self._metrics(svc, srv, "/orders", "POST", status, (end - t0) / 1e6)
        self._end(svc, srv, end, error=f"HTTP {status}" if status >= 500 else None, exc=exc)
        return end, status

    def payment_service(self, carrier, t0: int, failure, order_id: str, amount: float):
        svc = "payment-service"
        ctx = extract(carrier)
        srv = self._span(svc, "POST /payments", SpanKind.SERVER, t0, context=ctx, attrs={
            "http.request.method": "POST", "http.route": "/payments", "url.path": "/payments",
            "url.scheme": "http", "server.address": "payment-service", "order.id": order_id,
        })
        self._log(svc, srv, t0 + 50_000, SeverityNumber.INFO, "charging payment",
                  {"order.id": order_id, "payment.amount": amount, "payment.currency": "USD"})
        t = t0 + self._ms(0.2, 1)
        prov = self._span(svc, "POST", SpanKind.CLIENT, t, context=trace.set_span_in_context(srv), attrs={
            "http.request.method": "POST", "server.address": "api.payment-provider.example", "server.port": 443,
            "url.full": "https://api.payment-provider.example/v1/charges",
        })
        exc: Optional[BaseException] = None
        if failure == "payment-timeout":
            t_prov = t + 5_000_000_000
            exc = _throw_and_catch(PaymentProviderTimeoutError(
                "payment provider did not answer within 5000 ms"))
            self._end(svc, prov, t_prov, error="timeout")
            status = 504
        elif failure == "declined":
            t_prov = t + self._ms(40, 150)
            prov.set_attribute("http.response.status_code", 402)
            self._end(svc, prov, t_prov)
            exc = _throw_and_catch(PaymentDeclinedError(f"card declined by issuer for order {order_id}"))
            status = 402
        elif failure == "currency":
            t_prov = t + self._ms(2, 10)
            exc = _throw_and_catch(CurrencyConversionError(
                f"no exchange rate for currency 'XTS' (order {order_id})"))
            self._end(svc, prov, t_prov, error="conversion failed")
            status = 500
        else:
            t_prov = t + self._ms(40, 180)
            prov.set_attribute("http.response.status_code", 200)
            self._end(svc, prov, t_prov)
            status = 200
        end = t_prov + self._ms(0.5, 2)
        srv.set_attribute("http.response.status_code", status)
        if exc is not None:
            self._log(svc, srv, end - 20_000, SeverityNumber.ERROR, f"payment failed: {exc}",
                      {"order.id": order_id, "exception.type": exception_type_name(type(exc))})
        else:
            self._log(svc, srv, end - 20_000, SeverityNumber.INFO, "payment authorized",
                      {"order.id": order_id, "payment.amount": amount})
        self._metrics(svc, srv, "/payments", "POST", status, (end - t0) / 1e6)
        self._end(svc, srv, end, error=str(exc) if status >= 500 else None, exc=exc)
        return end, status


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default=None,
                   help="OTLP endpoint: host:port for grpc (default localhost:4317); base URL for http "
                        "(default http://localhost:4318; /v1/traces etc. are appended)")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--rate", type=float, default=10.0, help="requests per second (0 = as fast as possible)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--duration", type=float, help="seconds to run")
    g.add_argument("--count", type=int, help="number of requests (traces) to generate")
    p.add_argument("--error-rate", type=float, default=0.05, help="baseline failure probability")
    p.add_argument("--seed", type=int, default=None, help="seed: same seed and --count give the same ids and failures")
    p.add_argument("--scenario", choices=SCENARIOS, default="baseline")
    p.add_argument("--manifest", help="write a JSON manifest of what was generated to this file")
    p.add_argument("--service-namespace", default=None, help="service.namespace resource attribute")
    p.add_argument("--resource-attr", action="append", default=[], metavar="K=V",
                   help="extra resource attribute (repeatable)")
    p.add_argument("--metric-interval", type=float, default=5.0, help="metric export interval, seconds")
    p.add_argument("--export-timeout", type=float, default=10.0, help="per-export timeout, seconds")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.endpoint is None:
        args.endpoint = "localhost:4317" if args.protocol == "grpc" else "http://localhost:4318"
    if not 0 <= args.error_rate <= 1:
        p.error("--error-rate must be within [0, 1]")
    if args.count is not None and args.count < 0:
        p.error("--count must be >= 0")
    args.resource_attrs = {}
    for kv in args.resource_attr:
        if "=" not in kv or not kv.split("=", 1)[0]:
            p.error(f"--resource-attr expects K=V, got {kv!r}")
        k, v = kv.split("=", 1)
        args.resource_attrs[k] = v
    return args


def build_manifest(args, m: Manifest, tally: ExportTally, started: int, finished: int) -> dict:
    metric_series = {svc: {} for svc in SERVICES}
    for key, s in m.series.items():
        svc, metric = key.split("|", 1)
        metric_series[svc][metric] = len(s)
    return {
        "generator": "watchtower test-data/generate.py",
        "manifest_version": 1,
        "seed": args.seed,
        "scenario": args.scenario,
        "protocol": args.protocol,
        "endpoint": args.endpoint,
        "rate": args.rate,
        "error_rate": args.error_rate,
        "count": args.count,
        "duration": args.duration,
        "service_namespace": args.service_namespace,
        "resource_attributes": args.resource_attrs,
        "started_unix_nano": started,
        "finished_unix_nano": finished,
        "services": list(SERVICES),
        "requests": len(m.traces),
        "errors": sum(1 for t in m.traces if t["error"]),
        "trace_ids": [t["trace_id"] for t in m.traces],
        "traces": m.traces,
        "spans_total": sum(m.spans.values()),
        "spans_by_service": dict(m.spans),
        "error_spans_by_service": {s: m.error_spans.get(s, 0) for s in SERVICES},
        "log_records_total": sum(m.logs.values()),
        "log_records_by_service": dict(m.logs),
        "log_records_by_severity": {s: dict(c) for s, c in m.logs_by_severity.items()},
        "exceptions_total": sum(m.exceptions_by_type.values()),
        "exceptions_by_type": dict(m.exceptions_by_type),
        "exceptions_by_service": {s: dict(c) for s, c in m.exceptions_by_service.items()},
        "metrics": {
            "instruments": {
                name: {"unit": unit, "kind": kind, "prometheus_name": prom}
                for name, (unit, kind, prom) in METRICS.items()
            },
            "requests_by_service": {s: m.requests.get(s, 0) for s in SERVICES},
            "errors_by_service": {s: m.service_errors.get(s, 0) for s in SERVICES},
            "duration_records_by_service": {s: m.duration_records.get(s, 0) for s in SERVICES},
            "series_by_service": metric_series,
            "temporality": "cumulative",
            "points_exported_by_service": {
                s: tally.as_dict().get(s, {}).get("metric_points", {}).get("sent", 0) for s in SERVICES
            },
        },
        "export": tally.as_dict(),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ids = SeededIdGenerator(args.seed)
    tally = ExportTally()
    services = {name: Service(name, args, ids, tally) for name in SERVICES}
    manifest = Manifest()
    sim = Simulator(args, services, manifest)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    if not args.quiet:
        target = f"{args.count} requests" if args.count is not None else (
            f"{args.duration}s" if args.duration is not None else "until interrupted")
        print(f"generating {target} at {args.rate}/s, scenario={args.scenario}, "
              f"{args.protocol} -> {args.endpoint}", file=sys.stderr)
    started = time.time_ns()
    t_start = time.monotonic()
    i = 0
    last_report = t_start
    while not stop.is_set():
        now = time.monotonic()
        elapsed = now - t_start
        if args.count is not None:
            if i >= args.count:
                break
            progress = i / args.count if args.count else 0.0
        elif args.duration is not None:
            if elapsed >= args.duration:
                break
            progress = elapsed / args.duration
        else:
            progress = (elapsed % 60.0) / 60.0  # scenarios repeat every minute when unbounded
        if args.rate > 0:
            due = t_start + i / args.rate
            if due > now:
                stop.wait(due - now)
                if stop.is_set():
                    break
        sim.request(i, progress)
        i += 1
        if not args.quiet and time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            print(f"  {i} requests, {sum(1 for t in manifest.traces if t['error'])} errors", file=sys.stderr)

    finished = time.time_ns()
    for s in services.values():
        s.shutdown()
    doc = build_manifest(args, manifest, tally, started, finished)
    if args.manifest:
        with open(args.manifest, "w") as f:
            json.dump(doc, f, indent=1)
    failed = tally.failed_total()
    if not args.quiet:
        print(f"done: {doc['requests']} traces ({doc['spans_total']} spans), {doc['log_records_total']} log "
              f"records, {doc['errors']} failed requests, {doc['exceptions_total']} exceptions; "
              f"export failures: {failed} items", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
