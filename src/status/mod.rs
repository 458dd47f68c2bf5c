//! The status endpoint (protocol.md §7): read-only HTTP on `status.listen`.
//!
//! | route | answer |
//! |---|---|
//! | `/healthz` | 200 `ok` while the scheduler publishes and the store answers and commits; 503 otherwise |
//! | `/status` | JSON: version, uptime, identity, mode, document, buffer, counts per state |
//! | `/devices`, `/services` | the explain report joined with the live state |
//! | `/metrics` | Prometheus text format |
//! | `/` | a small HTML page for the technician |
//! | `/maintenances`, `/inventory`, `/history` | maintenances in force, R18's counts of today, a service's state changes |
//!
//! A request from a loopback address (`status.no_token_from`) needs no token. Any other needs `Authorization: Bearer`
//! with a token of the settings; a token scoped to a node sees only that node's subtree: its
//! devices, services, counts and problems. What cannot be scoped (the buffer, the link, the
//! document's errors, `/metrics`) is for unscoped tokens only: `/status` leaves it out and
//! `/metrics` answers 403.
//! Handlers ask the scheduler for a snapshot (built on demand, shared for a second) and the
//! store for its figures; they never lock either. No answer carries a secret: tokens are compared, never printed, and the plan's
//! SNMP blocks and HTTP passwords are not part of any view.

mod html;
mod inventory;
mod listen;
mod maintenances;
mod prometheus;
mod session;
mod stream;
pub mod tls;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::central::SyncState;
use crate::explain::Report;
use crate::record::StateType;
use crate::rules::{NodeIdx, Plan};
use crate::schedule::{Detail, Figures, Metrics, ServiceView, Snapshot, Snapshots, ViewState};
use crate::settings::{Network, Token};
use crate::source::DocumentState;
use crate::store::Store;

const JSON: &str = "application/json";

/// Services not OK listed by `/status`, at most (the rest are counted).
const PROBLEMS_LISTED: usize = 100;

/// Everything the handlers read.
#[derive(Clone)]
pub struct Shared {
    pub document: watch::Receiver<DocumentState>,
    pub snapshots: Snapshots,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    pub tokens: Arc<Vec<Token>>,
    /// Peers that need no token.
    pub no_token_from: Arc<Vec<Network>>,
    pub mode: &'static str,
    /// The link to the central server, when there is one.
    pub sync: Option<Arc<SyncState>>,
    /// What the box delivers itself (R17).
    pub notify: Arc<crate::notify::NotifyState>,
    /// HTTPS off loopback (protocol.md §7); `None`: plain HTTP.
    pub tls: Option<Arc<tls::ServerTls>>,
    pub listen: SocketAddr,
    /// Browsers' sessions and failed logins.
    pub sessions: Arc<session::Sessions>,
    /// How far back `/history` may look.
    pub history_hours: u32,
    /// The trap receiver's counters and last unmatched notifications.
    pub traps: Arc<crate::traps::TrapStats>,
}

/// Who is asking: everyone (loopback or an unscoped token) or one node's subtree.
#[derive(Debug, Clone, Copy)]
enum Scope {
    All,
    Subtree(NodeIdx),
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/services", get(services))
        .route("/devices", get(devices))
        .route("/metrics", get(metrics))
        .route("/history", get(history))
        .route("/maintenances", get(maintenances::maintenances))
        .route("/inventory", get(inventory::inventory))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .with_state(shared)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = shared.tls.clone();
    listen::serve(listener, router(shared), tls, shutdown).await
}

/// Renews a certificate the box made once it nears expiry; looks once a day.
pub async fn renew_daily(tls: Arc<tls::ServerTls>, cancel: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
        }
        tls.renew_if_due(jiff::Timestamp::now());
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy)]
enum Denied {
    NoToken,
    UnknownNode,
    /// The scheduler did not answer (stopping, or stuck).
    Busy,
    /// A node-scoped token asked for what covers the whole box.
    BoxWide,
    /// Too many failed logins from this address: retry after this many seconds.
    TooMany(u64),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            // Basic too: a browser then asks for the token itself (as the password).
            Denied::NoToken => {
                let mut response = (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
                let headers = response.headers_mut();
                headers.append(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"snbox status\", charset=\"UTF-8\""),
                );
                headers.append(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                response
            }
            Denied::TooMany(after) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, after.to_string())],
                "too many failed logins from this address: try again later\n",
            )
                .into_response(),
            Denied::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the scheduler does not answer; try again\n",
            )
                .into_response(),
            Denied::BoxWide => (
                StatusCode::FORBIDDEN,
                "this covers the whole box: a token scoped to a node cannot read it\n",
            )
                .into_response(),
            // A token scoped to a node this document does not have sees nothing.
            Denied::UnknownNode => (
                StatusCode::FORBIDDEN,
                "this token's node is not in the monitoring document\n",
            )
                .into_response(),
        }
    }
}

/// The caller's scope, once its address and token are checked, and the snapshot it was judged
/// against (a node index means something only in its own plan): the handlers' first argument.
struct Caller {
    scope: Scope,
    snapshot: Arc<Snapshot>,
}

impl axum::extract::FromRequestParts<Shared> for Caller {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, shared: &Shared) -> Result<Caller, Denied> {
        caller(parts, shared, Detail::Summary).await
    }
}

/// A caller whose answer shows every service: its snapshot has a view of each.
struct WithStates(Caller);

impl axum::extract::FromRequestParts<Shared> for WithStates {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, shared: &Shared) -> Result<WithStates, Denied> {
        caller(parts, shared, Detail::States).await.map(WithStates)
    }
}

/// A caller whose answer shows availability: its snapshot has every service's figures.
struct WithAvailability(Caller);

impl axum::extract::FromRequestParts<Shared> for WithAvailability {
    type Rejection = Denied;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        shared: &Shared,
    ) -> Result<WithAvailability, Denied> {
        caller(parts, shared, Detail::Availability).await.map(WithAvailability)
    }
}

async fn caller(parts: &axum::http::request::Parts, shared: &Shared, detail: Detail) -> Result<Caller, Denied> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .ok_or(Denied::NoToken)?;
    let over_tls = parts.extensions.get::<listen::OverTls>().is_some_and(|t| t.0);
    let token = admitted(shared, peer, &parts.headers, over_tls)?;
    let snapshot = shared.snapshots.get(detail).await.ok_or(Denied::Busy)?;
    let scope = match token {
        None | Some(Token { node: None, .. }) => Scope::All,
        Some(Token { node: Some(node), .. }) => snapshot
            .plan
            .tree
            .get(node)
            .map(Scope::Subtree)
            .ok_or(Denied::UnknownNode)?,
    };
    Ok(Caller { scope, snapshot })
}

/// Whether the request may be answered: from a trusted address (`None`), or with the token it
/// presented. A wrong token counts against its address, which is refused for a while after
/// [`session::MAX_FAILURES`].
fn admitted<'a>(
    shared: &'a Shared,
    peer: SocketAddr,
    headers: &HeaderMap,
    over_tls: bool,
) -> Result<Option<&'a Token>, Denied> {
    if trusted(shared, peer) {
        return Ok(None);
    }
    if let Some(after) = shared.sessions.blocked_for(peer.ip()) {
        return Err(Denied::TooMany(after));
    }
    match presented(shared, headers, over_tls) {
        Presented::Token(token) => Ok(Some(token)),
        Presented::Nothing => Err(Denied::NoToken),
        Presented::Wrong => {
            shared.sessions.failed(peer.ip());
            tracing::warn!(%peer, "a status request with a token that is not one of status.tokens: refused");
            Err(Denied::NoToken)
        }
    }
}

enum Presented<'a> {
    Nothing,
    Wrong,
    Token(&'a Token),
}

/// The token a request presents: `Authorization: Bearer T`, `Authorization: Basic` with the
/// token as password, or (over HTTPS only) a session cookie.
fn presented<'a>(shared: &'a Shared, headers: &HeaderMap, over_tls: bool) -> Presented<'a> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let candidate = value.to_str().ok().and_then(|v| {
            if let Some(bearer) = v.strip_prefix("Bearer ") {
                Some(bearer.trim().to_string())
            } else {
                let basic = v.strip_prefix("Basic ")?;
                let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, basic.trim()).ok()?;
                let text = String::from_utf8(decoded).ok()?;
                Some(text.split_once(':')?.1.to_string())
            }
        });
        return match candidate.and_then(|c| token_matching(shared, &c)) {
            Some(token) => Presented::Token(token),
            None => Presented::Wrong,
        };
    }
    if over_tls
        && let Some(id) = session::ids(headers).next()
        && let Some(token) = shared.sessions.token_of(id).and_then(|i| shared.tokens.get(i))
    {
        return Presented::Token(token);
    }
    Presented::Nothing
}

/// Requests from `status.no_token_from` need no token.
fn trusted(shared: &Shared, peer: SocketAddr) -> bool {
    shared.no_token_from.iter().any(|n| n.contains(peer.ip()))
}

/// The settings' token equal to `presented`.
fn token_matching<'a>(shared: &'a Shared, presented: &str) -> Option<&'a Token> {
    shared
        .tokens
        .iter()
        .find(|t| crate::secret::same(t.token.expose().as_bytes(), presented.as_bytes()))
}

fn sees(plan: &Plan, scope: Scope, node: Option<NodeIdx>) -> bool {
    match scope {
        Scope::All => true,
        Scope::Subtree(root) => node.is_some_and(|n| plan.tree.is_ancestor_or_self(root, n)),
    }
}

/// Off the trusted addresses, `/healthz` too needs a token (any of them): protocol.md §7.
async fn healthz(
    AxumState(shared): AxumState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(over_tls): axum::Extension<listen::OverTls>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = admitted(&shared, peer, &headers, over_tls.0) {
        return denied.into_response();
    }
    let fresh = shared.snapshots.alive().await;
    let store_ok = tokio::time::timeout(Duration::from_secs(2), shared.store.stats())
        .await
        .is_ok_and(|r| r.is_ok_and(|s| s.healthy()));
    let sync_ok = shared.sync.as_ref().is_none_or(|s| s.is_alive());
    if fresh && store_ok && sync_ok {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n").into_response()
    }
}

async fn status(AxumState(shared): AxumState<Shared>, caller: Caller) -> Response {
    axum::Json(status_json(&shared, &caller).await).into_response()
}

async fn status_json(shared: &Shared, Caller { scope, snapshot }: &Caller) -> Value {
    let (plan, scope) = (&snapshot.plan, *scope);
    let document = shared.document.borrow().clone();
    let mut counts = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    let mut problems_more = 0u64;
    for (device, state) in &snapshot.tally {
        if sees(plan, scope, plan.devices[*device as usize].node) {
            *counts.entry(state.as_str()).or_insert(0u64) += 1;
        }
    }
    for view in visible_views(plan, snapshot, scope) {
        if view.state.is_problem() {
            if problems.len() < PROBLEMS_LISTED {
                problems.push(json!({
                    "service": view.id, "device": view.device, "state": view.state,
                    "state_type": view.state_type, "since": crate::record::rfc3339_millis(view.since),
                    "output": view.output,
                }));
            } else {
                problems_more += 1;
            }
        }
    }
    let devices = plan.devices.iter().filter(|d| sees(plan, scope, d.node));
    let (accepted, rejected) = devices.fold(
        (0, 0),
        |(a, r), d| {
            if d.outcome.is_ok() { (a + 1, r) } else { (a, r + 1) }
        },
    );
    let mut status = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": shared.started.elapsed().as_secs(),
        "box": { "id": plan.box_id, "node": plan.tree.id(plan.box_node) },
        "mode": shared.mode,
        "config": { "version": plan.version },
        "devices": { "accepted": accepted, "rejected": rejected },
        "services": { "polled": counts.values().sum::<u64>(), "states": counts, "problems": problems, "problems_more": problems_more },
    });
    // What cannot be scoped to a subtree (the link, the document's errors, the buffer, the
    // scheduler) is shown to the whole box's readers only: it may name another customer.
    if matches!(scope, Scope::All) {
        let buffer = shared.store.stats().await.ok();
        let lateness = &shared.metrics.lateness;
        let whole = json!({
            "central": shared.sync.as_ref().map(|s| {
                let link = s.link();
                json!({
                    "url": link.url, "box_id": link.box_id, "state": link.state,
                    "last_sync": link.last_sync.map(crate::record::rfc3339_millis),
                    "last_error": link.last_error,
                    "last_error_at": link.last_error_at.map(crate::record::rfc3339_millis),
                    "clock_skew_s": link.clock_skew_s, "clock_warning": link.clock_warning,
                    "acked_seq": link.acked_seq,
                    "records_sent": s.records_sent.load(std::sync::atomic::Ordering::Relaxed),
                    "sync_errors": s.sync_errors.load(std::sync::atomic::Ordering::Relaxed),
                })
            }),
            "config": {
                "version": plan.version, "source": document.source,
                "applied_at": crate::record::rfc3339_millis(document.applied_at),
                "last_error": document.last_error,
                "last_error_at": document.last_error_at.map(crate::record::rfc3339_millis),
            },
            "buffer": buffer.map(|b| json!({
                "records": b.records, "bytes": b.bytes,
                "oldest_ts": b.oldest_ts.and_then(|t| jiff::Timestamp::from_millisecond(t).ok()).map(crate::record::rfc3339_millis),
                "dropped": b.dropped, "last_seq": b.last_seq,
                "cap_bytes": b.cap_bytes, "disk_full": b.disk_full, "unsaved": b.unsaved,
                "healthy": b.healthy(), "failing_s": b.failing_s, "commit_error": b.commit_error,
            })),
            "notify": notify_json(&shared.notify.view()),
            "traps": shared.traps.view(),
            "endpoint": endpoint_json(shared),
            "scheduling": { "lateness_p50_ms": lateness.quantile_ms(0.5), "lateness_p99_ms": lateness.quantile_ms(0.99) },
        });
        if let (Some(status), Value::Object(whole)) = (status.as_object_mut(), whole) {
            status.extend(whole);
        }
        status["services"]["running"] = json!(snapshot.running);
    }
    status
}

/// `/status.endpoint`: where the endpoint listens and, over HTTPS, the certificate's
/// fingerprint for the technician to compare (protocol.md §7).
fn endpoint_json(shared: &Shared) -> Value {
    let cert = shared.tls.as_ref().and_then(|t| t.view());
    json!({
        "listen": shared.listen.to_string(),
        "https": shared.tls.is_some(),
        "fingerprint": cert.as_ref().map(|c| c.fingerprint.clone()),
        "not_after": cert.as_ref().and_then(|c| c.not_after).map(crate::record::rfc3339_millis),
        "generated": cert.as_ref().map(|c| c.generated),
    })
}

/// `/status.notify` (R17): channels without credentials, and the deliveries' figures.
fn notify_json(view: &crate::notify::View) -> Value {
    json!({
        "channels": view.channels,
        "delivering": view.delivering,
        "central_unreachable_since": view.central_unreachable_since.map(crate::record::rfc3339_millis),
        "pending": view.pending, "delivered": view.delivered, "failed": view.failed,
        "last_error": view.last_error,
        "last_error_at": view.last_error_at.map(crate::record::rfc3339_millis),
    })
}

fn visible_views<'a>(
    plan: &'a Plan,
    snapshot: &'a Snapshot,
    scope: Scope,
) -> impl Iterator<Item = &'a ServiceView> + 'a {
    snapshot
        .services
        .iter()
        .filter(move |v| sees(plan, scope, plan.devices[v.device_index as usize].node))
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    service: String,
    hours: Option<u32>,
}

/// State changes kept per service, at most; a flapping service's older ones are left out.
const HISTORY_CHANGES: usize = 10_000;

/// `/history?service=ID&hours=24`: the service's state changes in the last hours, oldest
/// first, and its state now. A service the caller may not see is unknown to it (404).
async fn history(
    AxumState(shared): AxumState<Shared>,
    WithStates(caller): WithStates,
    axum::extract::Query(query): axum::extract::Query<HistoryQuery>,
) -> Response {
    let snapshot = &caller.snapshot;
    let plan = &snapshot.plan;
    let visible = plan
        .services
        .iter()
        .find(|s| s.id == query.service)
        .is_some_and(|s| sees(plan, caller.scope, s.device.and_then(|d| plan.devices[d].node)));
    if !visible {
        return (StatusCode::NOT_FOUND, "no such service\n").into_response();
    }
    let hours = query.hours.unwrap_or(24).clamp(1, shared.history_hours.max(24));
    let now = jiff::Timestamp::now();
    let since = now - jiff::SignedDuration::from_hours(i64::from(hours));
    let changes = match shared
        .store
        .history(Some(query.service.clone()), since, HISTORY_CHANGES)
        .await
    {
        Ok(changes) => changes,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store does not answer: {e}\n"),
            )
                .into_response();
        }
    };
    let now_view = snapshot.services.iter().find(|v| *v.id == *query.service);
    axum::Json(json!({
        "service": query.service,
        "hours": hours,
        "from": crate::record::rfc3339_millis(since),
        "to": crate::record::rfc3339_millis(now),
        "state": now_view.map(|v| v.state),
        "state_type": now_view.map(|v| v.state_type),
        "changes": changes.iter().map(|c| json!({
            "ts": crate::record::rfc3339_millis(c.ts), "from": c.from, "to": c.to, "state_type": c.state_type,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_string())]).into_response();
    if let Some(cookie) = cookie
        && let Ok(value) = cookie.parse()
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn login_form() -> Response {
    Html(session::login_page(None)).into_response()
}

/// `POST /login` with `token=…`: a session cookie for a token of `status.tokens`, over HTTPS.
async fn login(
    AxumState(shared): AxumState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(over_tls): axum::Extension<listen::OverTls>,
    body: axum::body::Bytes,
) -> Response {
    if !over_tls.0 {
        return (
            StatusCode::FORBIDDEN,
            Html(session::login_page(Some(
                "Signing in needs HTTPS: this endpoint speaks plain HTTP. Send the token in an Authorization header instead.",
            ))),
        )
            .into_response();
    }
    if let Some(after) = shared.sessions.blocked_for(peer.ip()) {
        return Denied::TooMany(after).into_response();
    }
    let token = url::form_urlencoded::parse(&body[..body.len().min(4096)])
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let index = shared
        .tokens
        .iter()
        .position(|t| crate::secret::same(t.token.expose().as_bytes(), token.as_bytes()));
    match index.and_then(|i| shared.sessions.open(i).map(|id| (i, id))) {
        Some((i, id)) => {
            tracing::info!(%peer, node = ?shared.tokens[i].node, "signed in to the status page");
            see_other("/", Some(session::set_cookie(&id)))
        }
        None => {
            shared.sessions.failed(peer.ip());
            tracing::warn!(%peer, "a sign-in to the status page with a wrong token: refused");
            (
                StatusCode::UNAUTHORIZED,
                Html(session::login_page(Some("This token is not one of the box's."))),
            )
                .into_response()
        }
    }
}

async fn logout(AxumState(shared): AxumState<Shared>, headers: HeaderMap) -> Response {
    for id in session::ids(&headers) {
        shared.sessions.close(id);
    }
    see_other("/login", Some(session::clear_cookie()))
}

/// Runs `render` on the blocking pool: the daemon's tasks share one thread, and a report of
/// 50,000 services must not hold up the checks.
async fn off_thread(render: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(render)
        .await
        .unwrap_or_else(|_| Denied::Busy.into_response())
}

async fn services(WithAvailability(caller): WithAvailability) -> Response {
    stream::streamed(JSON, move |out| {
        let Caller { scope, snapshot } = &caller;
        let plan = &snapshot.plan;
        let live: HashMap<&str, Live> = snapshot
            .services
            .iter()
            .zip(&snapshot.availability)
            .map(|(view, availability)| (&*view.id, Live { view, availability }))
            .collect();
        let report = Report::of_plan(plan, Some(snapshot.at));
        let Report::Plan(r) = &report else {
            return io::Write::write_all(out, b"[]");
        };
        let visible = plan
            .services
            .iter()
            .filter(|s| sees(plan, *scope, s.device.and_then(|d| plan.devices[d].node)));
        stream::json_array(
            out,
            visible.map(|s| WithLive {
                entry: r.service(s),
                live: live.get(s.id.as_str()),
            }),
        )
    })
}

/// An explain entry with what the scheduler knows of it now.
#[derive(Serialize)]
struct WithLive<E, L> {
    #[serde(flatten)]
    entry: E,
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<L>,
}

/// A service's live state with its availability, as `/services` shows it.
#[derive(Serialize)]
struct Live<'a> {
    #[serde(flatten)]
    view: &'a ServiceView,
    availability: &'a [Figures; 3],
}

/// A device's service as `/devices` lists it.
#[derive(Serialize)]
struct ServiceState<'a> {
    service: &'a str,
    state: ViewState,
    state_type: StateType,
}

/// What `/devices` adds to a device's explain entry: the names a person groups by (its node's
/// and its top company's) and its services' states.
#[derive(Serialize)]
struct DeviceLive<'a> {
    node_name: Option<&'a str>,
    company: Option<&'a str>,
    company_name: Option<&'a str>,
    services: Vec<ServiceState<'a>>,
}

async fn devices(WithStates(caller): WithStates) -> Response {
    stream::streamed(JSON, move |out| {
        let Caller { scope, snapshot } = &caller;
        let plan = &snapshot.plan;
        let mut by_device: HashMap<&str, Vec<ServiceState>> = HashMap::new();
        for v in &snapshot.services {
            by_device.entry(&*v.device).or_default().push(ServiceState {
                service: &v.id,
                state: v.state,
                state_type: v.state_type,
            });
        }
        let report = Report::of_plan(plan, Some(snapshot.at));
        let Report::Plan(r) = &report else {
            return io::Write::write_all(out, b"[]");
        };
        let visible = plan.devices.iter().filter(|d| sees(plan, *scope, d.node));
        stream::json_array(
            out,
            visible.map(|d| {
                let node = d.node.map(|n| plan.tree.node(n));
                let company = node.and_then(|n| n.top_company).map(|c| plan.tree.node(c));
                WithLive {
                    entry: r.device(d),
                    live: Some(DeviceLive {
                        node_name: node.map(|n| n.name.as_str()),
                        company: company.map(|c| c.id.as_str()),
                        company_name: company.map(|c| c.name.as_str()),
                        services: by_device.remove(d.id.as_str()).unwrap_or_default(),
                    }),
                }
            }),
        )
    })
}

async fn metrics(AxumState(shared): AxumState<Shared>, caller: Caller) -> Response {
    if !matches!(caller.scope, Scope::All) {
        return Denied::BoxWide.into_response();
    }
    let stats = shared.store.stats().await.ok();
    let body = prometheus::render(
        &shared.metrics,
        stats.as_ref(),
        &caller.snapshot,
        shared.sync.as_deref(),
        &shared.notify,
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A browser without a token gets the Basic challenge (its own prompt, the token as password)
/// and, should the prompt be dismissed, the login form.
async fn page(
    AxumState(shared): AxumState<Shared>,
    caller: Result<WithAvailability, Denied>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let caller = match caller {
        Ok(WithAvailability(caller)) => caller,
        Err(Denied::NoToken) => {
            let mut response = Denied::NoToken.into_response();
            *response.body_mut() = axum::body::Body::from(session::login_page(None));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return response;
        }
        Err(denied) => return denied.into_response(),
    };
    let status = status_json(&shared, &caller).await;
    let now = jiff::Timestamp::now();
    let history = shared
        .store
        .history(None, now - jiff::SignedDuration::from_hours(24), PAGE_CHANGES)
        .await
        .unwrap_or_default();
    let signed_in = session::ids(&headers).any(|id| shared.sessions.token_of(id).is_some());
    let problems_only = query.state.as_deref() == Some("problems");
    off_thread(move || {
        let snapshot = &caller.snapshot;
        let plan = &snapshot.plan;
        let services: Vec<_> = snapshot
            .services
            .iter()
            .zip(&snapshot.availability)
            .filter(|(v, _)| sees(plan, caller.scope, plan.devices[v.device_index as usize].node))
            .collect();
        let page = html::Page {
            status: &status,
            plan,
            services,
            history: &history,
            now,
            maintenances: &snapshot.maintenances,
            whole_box: matches!(caller.scope, Scope::All),
            problems_only,
            signed_in,
            rejected: rejected_for(plan, caller.scope),
        };
        Html(html::render(&page)).into_response()
    })
    .await
}

#[derive(serde::Deserialize)]
struct PageQuery {
    state: Option<String>,
}

/// State changes the page's timelines read, at most.
const PAGE_CHANGES: usize = 100_000;

/// Devices and services not polled that `scope` may see, with their reason codes.
fn rejected_for(plan: &Plan, scope: Scope) -> Vec<(&'static str, String, String, Vec<String>)> {
    let codes = |reasons: &[crate::rules::Reason]| reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>();
    let devices = plan.devices.iter().filter_map(|d| match &d.outcome {
        Err(reasons) if sees(plan, scope, d.node) => Some(("device", d.id.clone(), d.name.clone(), codes(reasons))),
        _ => None,
    });
    let services = plan.services.iter().filter_map(|s| match &s.outcome {
        Err(reasons) if sees(plan, scope, s.device.and_then(|d| plan.devices[d].node)) => Some((
            "service",
            s.id.clone(),
            s.name.clone().unwrap_or_default(),
            codes(reasons),
        )),
        _ => None,
    });
    devices.chain(services).collect()
}
