//! The zpages HTML: the web page at `/` (plain HTML and JavaScript embedded in the binary,
//! fed by `/api/v1/events` and `/api/v1/tap`), and the Collector's `/debug/pipelinez`,
//! `/debug/servicez`, `/debug/extensionz` (plus `/debug/configz`, the masked config), so
//! Collector users find what they know.

use super::api::Zpages;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;
use std::sync::Arc;

const INDEX: &str = include_str!("page.html");

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style>\
         </head><body><h1>{t}</h1>{body}<p><a href=\"/\">status page</a> · <a href=\"/debug/pipelinez\">pipelinez</a> · \
         <a href=\"/debug/servicez\">servicez</a> · <a href=\"/debug/extensionz\">extensionz</a> · <a href=\"/debug/configz\">configz</a></p></body></html>",
        t = esc(title)
    ))
}

async fn index() -> Html<&'static str> {
    Html(INDEX)
}

async fn pipelinez(State(z): State<Arc<Zpages>>) -> Html<String> {
    let mut b = String::from(
        "<table><tr><th>pipeline</th><th>receivers</th><th>processors</th><th>exporters</th></tr>",
    );
    for p in &z.topology.pipelines {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.name),
            esc(&p.receivers.join(", ")),
            esc(&p.processors.join(" → ")),
            esc(&p.exporters.join(", "))
        );
    }
    b.push_str("</table>");
    page("Pipelines", &b)
}

async fn servicez(State(z): State<Arc<Zpages>>) -> Html<String> {
    let s = z.status();
    let uptime = s["uptime_seconds"].as_f64().unwrap_or(0.0);
    let b = format!(
        "<table><tr><th>build</th><td>watchtower {}</td></tr><tr><th>uptime</th><td>{:.0} s</td></tr>\
         <tr><th>pipelines</th><td>{}</td></tr><tr><th>receivers</th><td>{}</td></tr>\
         <tr><th>exporters</th><td>{}</td></tr></table>",
        env!("CARGO_PKG_VERSION"),
        uptime,
        z.topology.pipelines.len(),
        z.topology.receivers.len(),
        z.topology.exporters.len()
    );
    page("Service", &b)
}

async fn extensionz(State(z): State<Arc<Zpages>>) -> Html<String> {
    let mut b = String::from("<table><tr><th>extension</th><th>type</th></tr>");
    for (id, ty) in &z.topology.extensions {
        let _ = write!(b, "<tr><td>{}</td><td>{}</td></tr>", esc(id), esc(ty));
    }
    b.push_str("</table>");
    page("Extensions", &b)
}

async fn configz(State(z): State<Arc<Zpages>>) -> Response {
    let text = serde_yaml::to_string(&z.config).unwrap_or_default();
    page(
        "Effective config (secrets masked)",
        &format!("<pre>{}</pre>", esc(&text)),
    )
    .into_response()
}

/// Routes of the pages.
pub fn router() -> axum::Router<Arc<Zpages>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(index))
        .route("/debug/pipelinez", get(pipelinez))
        .route("/debug/servicez", get(servicez))
        .route("/debug/extensionz", get(extensionz))
        .route("/debug/configz", get(configz))
}
