//! The other replicas of a gateway tier, for the runs API. Several replicas behind one
//! Service must give the same answer whichever one a CD pipeline reaches, so every runs API
//! call is fanned out over plain HTTP to the peers (the same API, marked as forwarded so the
//! peer answers from its own state only), and the answers are merged ([`crate::runs::replicas`]).
//! No consensus protocol: a run is opened on every reachable replica, summaries are merged on
//! read, and an answer that lacks a replica says so.
//!
//! Peers come from `extensions.runs.peers`: `host:port` entries as they are,
//! `dns+name:port` entries resolved on every call to all their A/AAAA records (the
//! Kubernetes headless Service form, as Prometheus, Thanos and Loki spell DNS discovery) by
//! the system's resolver, and `dnssrv+name` entries resolved to their SRV records (RFC 2782:
//! each target's A/AAAA records with the record's port; a headless Service publishes
//! `_<port name>._tcp.<service>.<namespace>.svc.<cluster domain>`) by a DNS client reading
//! the system's `/etc/resolv.conf` (`hickory-resolver`; answers cached at most a second, so
//! every fan-out sees the tier of that moment).
//! Whether an address is this replica itself is learnt from the `x-watchtower-replica`
//! header of its answers, so one config can list every replica including itself.
//!
//! When the runs API is protected (`extensions.runs.auth`), every call to a peer carries the
//! credential of `extensions.runs.peer_auth` (by default the same extension, when it can
//! send one), so replicas of one config authenticate to each other.

use crate::extension::auth::ClientAuthenticator;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Request header marking a call forwarded by a peer (value: the caller's replica id): the
/// receiver answers from its own state and does not fan out again.
pub const FORWARDED: &str = "x-watchtower-peer";
/// Response header carrying the answering replica's id.
pub const REPLICA: &str = "x-watchtower-replica";

/// One peer's answer, or why there is none.
#[derive(Debug)]
pub enum Reply {
    /// HTTP status, body, and the answering replica's id when the answer came from a runs
    /// API of the tier (its `x-watchtower-replica` header: a `404` without it is not "no such
    /// run" but a server that is not a replica, such as a wrong port)
    Answer(u16, bytes::Bytes, Option<String>),
    /// unreachable, timed out, or a DNS name that did not resolve
    Missing(String),
}

/// Most addresses [`Peers::id_at`] remembers.
const MAX_SEEN: usize = 4096;

/// The peer set and the client used to reach it.
pub struct Peers {
    entries: Vec<String>,
    client: reqwest::Client,
    /// a client without idle connections, for calls that must not be applied twice
    /// ([`Peers::post`]): a kept-alive connection the peer closed meanwhile fails a call in a
    /// way that cannot be told from a call that reached it
    fresh: reqwest::Client,
    /// the replica id that last answered from each address (learnt from every answer), so
    /// an address that no longer answers can still be told whose it was
    seen: Mutex<std::collections::BTreeMap<String, String>>,
    timeout: Duration,
    /// this replica's id (random per process)
    pub self_id: String,
    /// addresses that turned out to be this replica
    myself: Mutex<BTreeSet<String>>,
    /// the header every peer call carries when the runs API is protected
    credential: OnceLock<Arc<dyn ClientAuthenticator>>,
    /// the DNS client of `dnssrv+` entries, made on first use (it reads the system's
    /// resolver configuration; a failure is retried at the next lookup)
    srv: Mutex<Option<hickory_resolver::TokioResolver>>,
}

impl Peers {
    /// `entries` as configured (`host:port`, `dns+name:port` or `dnssrv+name`); `timeout` bounds each call
    /// beyond the extra time a caller adds (e.g. run-end's drain).
    pub fn new(entries: Vec<String>, timeout: Duration) -> Result<Peers, String> {
        Self::check_entries(&entries)?;
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            // shorter than the whole call's: a connection that never completes fails as a
            // connect error (the call cannot have reached the peer), not as a timeout
            .connect_timeout(timeout / 2)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("peers: http client: {e}"))?;
        let fresh = reqwest::Client::builder()
            .connect_timeout(timeout / 2)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| format!("peers: http client: {e}"))?;
        Ok(Peers {
            entries,
            client,
            fresh,
            seen: Mutex::new(Default::default()),
            timeout,
            self_id: format!("{:016x}", rand::random::<u64>()),
            myself: Mutex::new(BTreeSet::new()),
            credential: OnceLock::new(),
            srv: Mutex::new(None),
        })
    }

    /// The same peers with `id` as this replica's id (one kept across restarts).
    pub fn with_self_id(mut self, id: String) -> Peers {
        self.self_id = id;
        self
    }

    /// Sets the credential every later peer call carries (once; the first one set stays).
    pub fn set_credential(&self, c: Arc<dyn ClientAuthenticator>) {
        let _ = self.credential.set(c);
    }

    /// Checks that every entry is `host:port`, `dns+name:port` (port 1-65535) or
    /// `dnssrv+name` (a DNS name without a port: the SRV records give the ports).
    pub fn check_entries(entries: &[String]) -> Result<(), String> {
        for e in entries {
            if let Some(name) = e.strip_prefix("dnssrv+") {
                // letters, digits, `-` and `_` (SRV labels: `_health._tcp`) in dot-separated
                // labels of 1 to 63 characters; a trailing dot (a rooted name) is allowed
                let labels = name.strip_suffix('.').unwrap_or(name);
                let valid = !labels.is_empty()
                    && labels.len() <= 253
                    && labels.split('.').all(|l| {
                        (1..=63).contains(&l.len())
                            && !l.starts_with('-')
                            && !l.ends_with('-')
                            && l.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    });
                if !valid {
                    return Err(format!(
                        "peers: {e:?} is not dnssrv+name (an SRV name such as _health._tcp.watchtower-headless.ns.svc.cluster.local, without a port)"
                    ));
                }
                continue;
            }
            let hp = e.strip_prefix("dns+").unwrap_or(e);
            match hp.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {}
                _ => {
                    return Err(format!(
                        "peers: {e:?} is not host:port, dns+name:port or dnssrv+name"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The DNS client of `dnssrv+` entries: the system's resolver configuration, answers
    /// cached at most one second. Made at the first lookup; when the configuration cannot be
    /// read, the next lookup tries again.
    fn srv_resolver(&self) -> Result<hickory_resolver::TokioResolver, String> {
        let mut slot = self.srv.lock();
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let mut b = hickory_resolver::TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?;
        let opts = b.options_mut();
        opts.positive_max_ttl = Some(Duration::from_secs(1));
        opts.negative_max_ttl = Some(Duration::from_secs(1));
        let r = b.build();
        *slot = Some(r.clone());
        Ok(r)
    }

    /// The `ip:port` addresses of SRV name `name` (every target's A/AAAA records with its
    /// record's port), and the targets that did not resolve, each with why (their replicas
    /// are missing, not absent).
    async fn resolve_srv(
        &self,
        name: &str,
    ) -> Result<(Vec<String>, Vec<(String, String)>), String> {
        let dns = self.srv_resolver()?;
        let records = dns.srv_lookup(name).await.map_err(|e| {
            if e.is_nx_domain() {
                format!("no such DNS name {name}")
            } else if e.is_no_records_found() {
                format!("no SRV records for {name}")
            } else {
                format!("cannot resolve SRV {name}: {e}")
            }
        })?;
        let targets = records.iter().map(|srv| {
            let dns = dns.clone();
            async move {
                let ips = dns.lookup_ip(srv.target().clone()).await;
                (srv.target().to_string(), srv.port(), ips)
            }
        });
        let (mut out, mut failed) = (Vec::new(), Vec::new());
        for (target, port, ips) in futures::future::join_all(targets).await {
            match ips {
                Ok(ips) => out.extend(
                    ips.iter()
                        .map(|ip| std::net::SocketAddr::new(ip, port).to_string()),
                ),
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => failed.push((
                    format!("{target}:{port}"),
                    format!("SRV target of {name} without an address"),
                )),
                Err(e) => failed.push((
                    format!("{target}:{port}"),
                    format!("SRV target of {name}: {e}"),
                )),
            }
        }
        Ok((out, failed))
    }

    /// The peers' addresses now (DNS names resolved), without the ones known to be this
    /// replica, plus the DNS entries that did not resolve (reported missing).
    pub async fn resolve(&self) -> (Vec<String>, Vec<(String, String)>) {
        let mut out = BTreeSet::new();
        let mut failed = Vec::new();
        for e in &self.entries {
            if let Some(name) = e.strip_prefix("dnssrv+") {
                let result = tokio::time::timeout(self.timeout, self.resolve_srv(name)).await;
                if !matches!(result, Ok(Ok(_))) {
                    // the next lookup reads the system's DNS configuration again (it may
                    // have been fixed since)
                    *self.srv.lock() = None;
                }
                match result {
                    Ok(Ok((addrs, unresolved))) => {
                        out.extend(addrs);
                        failed.extend(unresolved);
                    }
                    Ok(Err(err)) => failed.push((e.clone(), err)),
                    Err(_) => failed.push((e.clone(), "DNS SRV lookup timed out".into())),
                }
                continue;
            }
            match e.strip_prefix("dns+") {
                None => {
                    out.insert(e.clone());
                }
                Some(name) => {
                    match tokio::time::timeout(self.timeout, tokio::net::lookup_host(name)).await {
                        Ok(Ok(addrs)) => out.extend(addrs.map(|a| a.to_string())),
                        Ok(Err(err)) => failed.push((e.clone(), format!("cannot resolve: {err}"))),
                        Err(_) => failed.push((e.clone(), "DNS lookup timed out".into())),
                    }
                }
            }
        }
        let me = self.myself.lock();
        (
            out.into_iter().filter(|a| !me.contains(a)).collect(),
            failed,
        )
    }

    /// The replica id that last answered from `addr`, if any did (since this process started).
    pub fn id_at(&self, addr: &str) -> Option<String> {
        self.seen.lock().get(addr).cloned()
    }

    /// The addresses among the peers found to be this replica (learnt from its own answers
    /// to a fan-out), sorted.
    pub fn own_addresses(&self) -> Vec<String> {
        self.myself.lock().iter().cloned().collect()
    }

    /// Sends `method path` (with a JSON body if any) to every peer at once and returns each
    /// peer's reply, keyed by address. Answers from this replica itself are dropped (and its
    /// address remembered), and so is a second answer from one replica (two entries naming
    /// it, such as `localhost:p` and `127.0.0.1:p`, or a DNS name and a static entry): every
    /// replica counts once. `extra` is added to the timeout (for calls that wait).
    pub async fn fan_out(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        extra: Duration,
    ) -> Vec<(String, Reply)> {
        let (addrs, failed) = self.resolve().await;
        let calls = addrs.into_iter().map(|addr| {
            let (method, body) = (method.clone(), body.clone());
            async move {
                let reply = self
                    .call_raw(&addr, method, path, body, extra, false)
                    .await
                    .map_err(|e| e.why);
                (addr, reply)
            }
        });
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (addr, reply) in futures::future::join_all(calls).await {
            match reply {
                Ok((Some(who), _, _)) if who == self.self_id => {
                    self.myself.lock().insert(addr);
                }
                Ok((Some(who), _, _)) if !seen.insert(who.clone()) => {
                    tracing::debug!(peer = %addr, replica = %who, "runs: a replica listed twice in peers answered once more");
                }
                Ok((who, status, b)) => out.push((addr, Reply::Answer(status, b, who))),
                Err(e) => out.push((addr, Reply::Missing(e))),
            }
        }
        out.extend(failed.into_iter().map(|(a, e)| (a, Reply::Missing(e))));
        out
    }

    /// Sends `method path` to the peer at `addr` alone (a resolved `host:port`).
    pub async fn call(
        &self,
        addr: &str,
        method: reqwest::Method,
        path: &str,
        extra: Duration,
    ) -> Reply {
        match self.call_raw(addr, method, path, None, extra, false).await {
            Ok((who, status, b)) => Reply::Answer(status, b, who),
            Err(e) => Reply::Missing(e.why),
        }
    }

    /// `POST path` with a JSON `body` to the peer at `addr` alone, on a connection of its own:
    /// the answering replica's id, the status and the body; or why there is none, and whether
    /// the call may have reached the peer all the same (anything but a connection that could
    /// not be made: a call that must not be applied twice is then not sent elsewhere).
    pub async fn post(
        &self,
        addr: &str,
        path: &str,
        body: String,
    ) -> Result<(Option<String>, u16, bytes::Bytes), CallError> {
        self.call_raw(
            addr,
            reqwest::Method::POST,
            path,
            Some(body),
            Duration::ZERO,
            true,
        )
        .await
    }

    /// One call: the answering replica's id (its `x-watchtower-replica` header), the status
    /// and the body; or why there is no answer.
    async fn call_raw(
        &self,
        addr: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        extra: Duration,
        fresh: bool,
    ) -> Result<(Option<String>, u16, bytes::Bytes), CallError> {
        let unsent = |why: String| CallError {
            why,
            maybe_reached: false,
        };
        let credential = self
            .credential
            .get()
            .map(|c| c.credential())
            .transpose()
            .map_err(|e| unsent(format!("no credential for the peers: {e}")))?;
        let client = if fresh { &self.fresh } else { &self.client };
        let mut req = client
            .request(method, format!("http://{addr}{path}"))
            .timeout(self.timeout + extra)
            .header(FORWARDED, &self.self_id);
        if let Some((name, value)) = credential {
            req = req.header(name, value);
        }
        if let Some(b) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let r = req.send().await.map_err(|e| CallError {
            maybe_reached: !e.is_connect(),
            why: e.to_string(),
        })?;
        let who = r
            .headers()
            .get(REPLICA)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if let Some(w) = &who {
            let mut seen = self.seen.lock();
            if seen.len() < MAX_SEEN || seen.contains_key(addr) {
                seen.insert(addr.to_string(), w.clone());
            }
        }
        let status = r.status().as_u16();
        let b = r.bytes().await.map_err(|e| CallError {
            maybe_reached: true,
            why: e.to_string(),
        })?;
        Ok((who, status, b))
    }
}

/// Why a call to a peer has no answer.
#[derive(Debug)]
pub struct CallError {
    /// what went wrong, for the log
    pub why: String,
    /// false only when the call cannot have reached the peer (no connection, no credential)
    pub maybe_reached: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_must_be_host_port() {
        let t = Duration::from_secs(1);
        assert!(
            Peers::new(
                vec![
                    "10.0.0.1:13133".into(),
                    "dns+wt-headless.ns:13133".into(),
                    "dnssrv+_health._tcp.wt-headless.ns.svc.cluster.local".into(),
                ],
                t
            )
            .is_ok()
        );
        for bad in [
            "nohost",
            ":80",
            "h:0",
            "h:99999",
            "dns+name",
            "dnssrv+",
            "dnssrv+_health._tcp.wt:13133",
            "dnssrv+a..b",
            "dnssrv+-bad-.x",
            "dnssrv+dns+x",
            "dnssrv+x\ty",
            " dnssrv+_h._tcp.x",
        ] {
            assert!(Peers::new(vec![bad.into()], t).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn dns_entries_resolve_to_every_address_and_unreachable_peers_are_missing() {
        let p = Peers::new(
            vec![
                "dns+localhost:1".into(),
                "dns+no-such-host.invalid:1".into(),
            ],
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (addrs, failed) = p.resolve().await;
        assert!(addrs.iter().any(|a| a == "127.0.0.1:1"), "{addrs:?}");
        assert_eq!(failed.len(), 1, "{failed:?}");
        let replies = p
            .fan_out(reqwest::Method::GET, "/runs", None, Duration::ZERO)
            .await;
        assert!(
            replies.iter().all(|(_, r)| matches!(r, Reply::Missing(_))),
            "{replies:?}"
        );
        assert!(
            replies
                .iter()
                .any(|(a, _)| a == "dns+no-such-host.invalid:1")
        );
    }
}
