// Sends known spans, metric points and log records with the OpenTelemetry Node.js SDK through
// one of its OTLP exporters, then prints what it sent as JSON (doubles in JavaScript's shortest
// round-trip form) so the test can compare item by item at the destination.
// usage: node otlp_send.mjs json|proto|grpc ENDPOINT TAG
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { LoggerProvider, BatchLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { SeverityNumber } from '@opentelemetry/api-logs';
import * as traceHttp from '@opentelemetry/exporter-trace-otlp-http';
import * as traceProto from '@opentelemetry/exporter-trace-otlp-proto';
import * as traceGrpc from '@opentelemetry/exporter-trace-otlp-grpc';
import * as metricsHttp from '@opentelemetry/exporter-metrics-otlp-http';
import * as metricsProto from '@opentelemetry/exporter-metrics-otlp-proto';
import * as metricsGrpc from '@opentelemetry/exporter-metrics-otlp-grpc';
import * as logsHttp from '@opentelemetry/exporter-logs-otlp-http';
import * as logsProto from '@opentelemetry/exporter-logs-otlp-proto';
import * as logsGrpc from '@opentelemetry/exporter-logs-otlp-grpc';

const [protocol, endpoint, tag] = process.argv.slice(2);
const modules = {
  json: [traceHttp, metricsHttp, logsHttp],
  proto: [traceProto, metricsProto, logsProto],
  grpc: [traceGrpc, metricsGrpc, logsGrpc],
}[protocol];
if (!modules) throw new Error(`protocol ${protocol}`);
const url = (path) => (protocol === 'grpc' ? endpoint : `${endpoint}${path}`);

// deterministic doubles of every shape: 17 significant digits, tiny, huge, whole >= 2^63
let seed = 20261129;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const doubles = [];
for (let i = 0; i < 12; i++) doubles.push(rand() * 10, (rand() - 0.5) * 1e-300, rand() * 1e300);
doubles.push(2 ** 63, 2 ** 64 * 3, 1e21, 123456789.0, 0.1 + 0.2, Number.MAX_VALUE, Number.MIN_VALUE);

// the SDK writes whole numbers as `intValue` attributes: attributes get the fractional ones
const fractional = doubles.filter((d) => !Number.isInteger(d));

const resource = resourceFromAttributes({ 'service.name': tag });
const sent = { spans: [], points: [], logs: [] };

// traces
const tp = new BasicTracerProvider({
  resource,
  spanProcessors: [new BatchSpanProcessor(new modules[0].OTLPTraceExporter({ url: url('/v1/traces') }))],
});
const tracer = tp.getTracer('watchtower-test', '1.0.0');
fractional.forEach((d, i) => {
  const span = tracer.startSpan(`span-${i}`, {
    kind: [SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL][i % 3],
    attributes: { 'd': d, 'i': i * 1000003, 's': `v${i}`, 'b': i % 2 === 0, 'arr': [d, -d] },
  });
  span.addEvent('ev', { 'ed': d });
  if (i % 4 === 0) span.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
  span.end();
  const ctx = span.spanContext();
  sent.spans.push({ name: `span-${i}`, trace_id: ctx.traceId, span_id: ctx.spanId, kind: [2, 3, 1][i % 3], d, i: i * 1000003 });
});
await tp.forceFlush();
await tp.shutdown();

// metrics: one gauge point per double, a counter, a histogram
const reader = new PeriodicExportingMetricReader({
  exporter: new modules[1].OTLPMetricExporter({ url: url('/v1/metrics') }),
  exportIntervalMillis: 3600000,
});
const mp = new MeterProvider({ resource, readers: [reader] });
const meter = mp.getMeter('watchtower-test');
const gauge = meter.createGauge('wt.gauge');
doubles.forEach((d, i) => {
  gauge.record(d, { series: i });
  sent.points.push({ name: 'wt.gauge', series: i, value: d });
});
meter.createCounter('wt.count').add(7, { series: 0 });
sent.points.push({ name: 'wt.count', series: 0, value: 7 });
await mp.shutdown(); // one collection and export (a flush first would export it twice)

// logs
const lp = new LoggerProvider({
  resource,
  processors: [new BatchLogRecordProcessor(new modules[2].OTLPLogExporter({ url: url('/v1/logs') }))],
});
const logger = lp.getLogger('watchtower-test');
fractional.forEach((d, i) => {
  logger.emit({
    severityNumber: SeverityNumber.WARN,
    severityText: 'WARN',
    body: `log-${i}`,
    attributes: { 'd': d, 'i': i },
  });
  sent.logs.push({ body: `log-${i}`, d, severity: SeverityNumber.WARN });
});
await lp.forceFlush();
await lp.shutdown();

process.stdout.write(JSON.stringify(sent));
