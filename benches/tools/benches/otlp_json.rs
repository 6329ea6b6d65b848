//! OTLP/JSON decode throughput: the receiver's `json_to_protobuf` (pbjson-generated ProtoJSON
//! mapping) against the converter it replaced (serde_json `Value` + snake_case rewrite +
//! opentelemetry-proto's serde impls), measured alternately in one process so both see the
//! same machine load. `cargo bench -p watchtower-bench --bench otlp_json` prints items/s per
//! signal and the ratio.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;
use std::hint::black_box;
use std::time::{Duration, Instant};
use watchtower::pipeline::payload::Signal;
use watchtower::receiver::json::json_to_protobuf;
use watchtower_bench::content::{GenOpts, pool};

/// The previous converter, kept here only as the baseline.
mod baseline {
    use super::*;

    fn camelize(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('_')) {
                    let old = std::mem::take(map);
                    for (k, val) in old {
                        let key = if k.contains('_') { to_camel(&k) } else { k };
                        map.insert(key, val);
                    }
                }
                map.values_mut().for_each(camelize);
            }
            Value::Array(a) => a.iter_mut().for_each(camelize),
            _ => {}
        }
    }

    fn to_camel(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut upper = false;
        for c in s.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    }

    pub fn json_to_protobuf(signal: Signal, body: &[u8]) -> Result<Vec<u8>, String> {
        let mut v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        camelize(&mut v);
        let err = |e: serde_json::Error| e.to_string();
        Ok(match signal {
            Signal::Traces => serde_json::from_value::<ExportTraceServiceRequest>(v)
                .map_err(err)?
                .encode_to_vec(),
            Signal::Metrics => serde_json::from_value::<ExportMetricsServiceRequest>(v)
                .map_err(err)?
                .encode_to_vec(),
            Signal::Logs => serde_json::from_value::<ExportLogsServiceRequest>(v)
                .map_err(err)?
                .encode_to_vec(),
        })
    }
}

/// Items per second of `f` over `body` for about `dur`.
fn rate(dur: Duration, items: u64, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        black_box(f());
        n += 1;
    }
    (n * items) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rounds: usize = std::env::var("OTLP_JSON_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dur = Duration::from_millis(700);
    println!("signal   round  baseline items/s  pbjson items/s  ratio");
    for signal in Signal::ALL {
        let reqs = pool(
            &GenOpts {
                signal,
                items_per_request: 100,
                ..Default::default()
            },
            8,
            true,
        );
        let body = reqs[0].json.clone().expect("json body");
        let items = reqs[0].items;
        // both must agree before they are timed
        let a = baseline::json_to_protobuf(signal, &body).expect("baseline decodes");
        let b = json_to_protobuf(signal, &body).expect("pbjson decodes");
        assert_eq!(a, b, "{signal}: the two converters disagree");
        let (mut sum_a, mut sum_b) = (0.0, 0.0);
        for round in 0..rounds {
            let ra = rate(dur, items, || {
                baseline::json_to_protobuf(signal, black_box(&body))
                    .map(|v| v.len())
                    .unwrap_or(0)
            });
            let rb = rate(dur, items, || {
                json_to_protobuf(signal, black_box(&body))
                    .map(|v| v.len())
                    .unwrap_or(0)
            });
            sum_a += ra;
            sum_b += rb;
            println!(
                "{:<8} {round:>5}  {ra:>16.0}  {rb:>14.0}  {:.2}",
                signal.as_str(),
                rb / ra
            );
        }
        println!(
            "{:<8} mean   {:>16.0}  {:>14.0}  {:.2}",
            signal.as_str(),
            sum_a / rounds as f64,
            sum_b / rounds as f64,
            sum_b / sum_a
        );
    }
}
