//! The page's routes. Everything is read-only (GET); unknown routes and
//! alerts no longer kept answer 404.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::cutout::{self, Stamp};
use super::lightcurve;
use super::store::{Entry, Message};
use super::Shared;
use crate::avro::codec::Payload;
use crate::expr::Selector;

/// The page and its API on one router (with `/metrics` and `/healthz`).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { Html(include_str!("assets/index.html")) }),
        )
        .route(
            "/assets/view.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("assets/view.js"),
                )
            }),
        )
        .route(
            "/assets/view.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("assets/view.css")) }),
        )
        .route("/api/alerts", get(alerts))
        .route("/api/stats", get(stats))
        .route("/api/events", get(events))
        .route("/api/alerts/{topic}/{partition}/{offset}", get(alert))
        .route("/api/alerts/{topic}/{partition}/{offset}/raw", get(raw))
        .route(
            "/api/alerts/{topic}/{partition}/{offset}/cutouts",
            get(cutout_pixels),
        )
        .route(
            "/api/alerts/{topic}/{partition}/{offset}/lightcurve.svg",
            get(light_curve),
        )
        .route(
            "/cutouts/{topic}/{partition}/{offset}/{file}",
            get(cutout_file),
        )
        .merge(crate::metrics::routes())
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: the page is at /\n") })
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

fn asset(kind: &'static str, text: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, kind)], text)
}

/// The token check, and headers that keep alert text inert: scripts only
/// from this server's own files, no inline script, no requests elsewhere.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    // The page's own script and style hold no data; /healthz is for probes.
    let path = request.uri().path();
    let open = path == "/healthz" || path.starts_with("/assets/");
    if let (Some(token), false) = (&shared.token, open) {
        if !authorized(&request, token) {
            return (
                StatusCode::UNAUTHORIZED,
                "give the view's token: ?token=TOKEN in the address, or Authorization: Bearer TOKEN\n",
            )
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn authorized(request: &Request, token: &str) -> bool {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| {
            let value = pair.strip_prefix("token=")?;
            Some(
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        });
    bearer == Some(token) || query.as_deref() == Some(token)
}

/// Query parameters, as text: a bad number gets a JSON error like any other.
#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(rename = "where")]
    filter: Option<String>,
    limit: Option<String>,
    /// Events: first the kept alerts that arrived after this one (by `seq`).
    after: Option<String>,
}

/// A number parameter, or a 400 saying what to give.
fn number<T: std::str::FromStr>(name: &str, text: Option<&str>) -> Result<Option<T>, Refusal> {
    text.map(|t| {
        t.trim().parse().map_err(|_| {
            Refusal(
                StatusCode::BAD_REQUEST,
                format!("{name}={t}: give a whole number"),
            )
        })
    })
    .transpose()
}

/// A request refused: its status, and the reason as a JSON body.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn not_found() -> Response {
    missing("no such alert kept here (it may have left the --keep window)".into()).into_response()
}

fn missing(why: String) -> Refusal {
    Refusal(StatusCode::NOT_FOUND, why)
}

/// A filter box's expression, compiled, or what is wrong with it.
fn selector(shared: &Shared, text: Option<&str>) -> Result<Option<Selector>, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => Selector::compile(text, &shared.reader)
            .map(Some)
            .map_err(|e| format!("{e:#}")),
    }
}

fn payload(message: &Message) -> Payload<'_> {
    Payload {
        key: message.key.as_deref(),
        value: &message.value,
    }
}

/// Whether an expression selects a kept alert (decoded again, only the fields it reads).
fn selects(shared: &Shared, selector: &Selector, entry: &Entry) -> bool {
    let decoded = shared
        .decoder()
        .fields(payload(&entry.message), selector.need());
    decoded
        .ok()
        .and_then(|alerts| alerts.into_iter().nth(entry.index))
        .is_some_and(|alert| selector.selects(&alert))
}

/// `/api/alerts?where=EXPR&limit=N`: the newest kept alerts, as table rows.
async fn alerts(State(shared): State<Arc<Shared>>, Query(query): Query<ListQuery>) -> Response {
    let selector = match selector(&shared, query.filter.as_deref()) {
        Ok(selector) => selector,
        Err(why) => return bad_request(why),
    };
    let limit = match number("limit", query.limit.as_deref()) {
        Ok(limit) => limit.unwrap_or(usize::MAX),
        Err(refusal) => return refusal.into_response(),
    };
    let (rows, last_seq) = tokio::task::spawn_blocking(move || {
        let entries = shared.store.newest();
        let last_seq = entries.first().map_or(0, |e| e.seq);
        let entries = entries.into_iter();
        let rows: Vec<_> = match &selector {
            None => entries.take(limit).collect(),
            Some(selector) => entries
                .filter(|e| selects(&shared, selector, e))
                .take(limit)
                .collect(),
        };
        (rows, last_seq)
    })
    .await
    .unwrap_or_default();
    let rows: Vec<&Entry> = rows.iter().map(|e| &**e).collect();
    // `last_seq`: where the page's live feed starts (`/api/events?after=`), so that nothing falls between.
    Json(json!({ "alerts": rows, "last_seq": last_seq })).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(stats_json(&shared)).into_response()
}

fn stats_json(shared: &Shared) -> serde_json::Value {
    json!({ "topics": shared.store.topics(), "kept": shared.store.len(), "keep": shared.store.keep() })
}

/// `/api/events?where=EXPR`: new alerts as they arrive (event `alert`), and
/// every second the topics' numbers (event `stats`), as server-sent events.
async fn events(State(shared): State<Arc<Shared>>, Query(query): Query<ListQuery>) -> Response {
    let selector = match selector(&shared, query.filter.as_deref()) {
        Ok(selector) => selector,
        Err(why) => return bad_request(why),
    };
    let after: Option<u64> = match number("after", query.after.as_deref()) {
        Ok(after) => after,
        Err(refusal) => return refusal.into_response(),
    };
    // Subscribed before the backlog is taken: an alert is in one or the other, or both (then sent once).
    let live = shared.store.subscribe();
    let backlog: VecDeque<Arc<Entry>> = match after {
        Some(after) => shared
            .store
            .newest()
            .into_iter()
            .rev()
            .filter(|e| e.seq > after)
            .collect(),
        None => VecDeque::new(),
    };
    let feed = Feed {
        live,
        backlog,
        sent: after.unwrap_or(0),
        ticker: tokio::time::interval(Duration::from_secs(1)),
        shared,
        selector,
    };
    let stream = futures_util::stream::unfold(feed, |mut state| async move {
        let event = next_event(&mut state).await?;
        Some((Ok::<_, Infallible>(event), state))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One page's live feed.
struct Feed {
    live: tokio::sync::broadcast::Receiver<Arc<Entry>>,
    /// Kept alerts newer than the page's list, oldest first: sent before live ones.
    backlog: VecDeque<Arc<Entry>>,
    /// The newest `seq` sent (or the page's `after`): live alerts up to it are already on the page.
    sent: u64,
    ticker: tokio::time::Interval,
    shared: Arc<Shared>,
    selector: Option<Selector>,
}

impl Feed {
    fn wanted(&mut self, entry: &Entry) -> bool {
        entry.seq > self.sent
            && self
                .selector
                .as_ref()
                .is_none_or(|s| selects(&self.shared, s, entry))
    }
}

async fn next_event(feed: &mut Feed) -> Option<Event> {
    use tokio::sync::broadcast::error::RecvError;
    while let Some(entry) = feed.backlog.pop_front() {
        if feed.wanted(&entry) {
            feed.sent = entry.seq;
            return Event::default().event("alert").json_data(&*entry).ok();
        }
    }
    loop {
        tokio::select! {
            got = feed.live.recv() => match got {
                Ok(entry) => {
                    if !feed.wanted(&entry) {
                        continue;
                    }
                    feed.sent = entry.seq;
                    return Event::default().event("alert").json_data(&*entry).ok();
                }
                // The page fell behind: it reloads the list.
                Err(RecvError::Lagged(missed)) => return Some(Event::default().event("lagged").data(missed.to_string())),
                Err(RecvError::Closed) => return None,
            },
            _ = feed.ticker.tick() => return Event::default().event("stats").json_data(stats_json(&feed.shared)).ok(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct AlertQuery {
    index: Option<String>,
}

/// The kept alert a path names, or a 404 (400 for a bad `index`) saying why.
fn entry(
    shared: &Shared,
    (topic, partition, offset): &(String, String, String),
    index: Option<&str>,
) -> Result<Arc<Entry>, Refusal> {
    let partition = partition
        .parse()
        .map_err(|_| missing(format!("{partition}: not a partition number")))?;
    let offset = offset
        .parse()
        .map_err(|_| missing(format!("{offset}: not an offset")))?;
    let index = number("index", index)?.unwrap_or(0);
    shared
        .store
        .find(topic, partition, offset, index)
        .ok_or_else(|| {
            missing("no such alert kept here (it may have left the --keep window)".into())
        })
}

/// The alert in print's JSON shape (cutouts left out), decoded again.
fn alert_json(shared: &Shared, entry: &Entry) -> Option<serde_json::Value> {
    let mut lines = Vec::new();
    shared
        .decoder()
        .decode_json(payload(&entry.message), &mut lines)
        .ok()?;
    let line = lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .nth(entry.index)?;
    serde_json::from_slice(line).ok()
}

/// `/api/alerts/{topic}/{partition}/{offset}?index=N`: one alert, as print prints it.
async fn alert(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<(String, String, String)>,
    Query(query): Query<AlertQuery>,
) -> Response {
    match entry(&shared, &path, query.index.as_deref()).map(|e| alert_json(&shared, &e)) {
        Ok(Some(alert)) => Json(alert).into_response(),
        Ok(None) => not_found(),
        Err(refusal) => refusal.into_response(),
    }
}

/// The message's bytes, unchanged: a download.
async fn raw(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<(String, String, String)>,
) -> Response {
    let entry = match entry(&shared, &path, None) {
        Ok(entry) => entry,
        Err(refusal) => return refusal.into_response(),
    };
    let name = format!(
        "{}-{}-{}.avro",
        safe_name(&entry.topic),
        entry.partition,
        entry.offset
    );
    download(&name, entry.message.value.clone())
}

fn download(name: &str, bytes: impl Into<Bytes>) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let disposition =
        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes.into(),
    )
        .into_response()
}

/// A topic name as a file name: Kafka allows [a-zA-Z0-9._-], but this is
/// what a header gets, so anything else becomes `_`.
fn safe_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An alert's cutout bytes by stamp, or why there are none.
fn stamp_bytes(shared: &Shared, entry: &Entry, stamp: Stamp) -> Result<Vec<u8>, String> {
    let (_, alerts) = shared
        .decoder()
        .decode(payload(&entry.message))
        .map_err(|e| format!("{e:#}"))?;
    let alert = alerts
        .get(entry.index)
        .ok_or("no such alert in the message")?;
    let field = format!(
        "cutout{}{}",
        stamp.name()[..1].to_uppercase(),
        &stamp.name()[1..]
    );
    crate::alerts::stamps::cutouts(alert)
        .into_iter()
        .find(|c| c.field == field)
        .map(|c| c.data.to_vec())
        .filter(|data| !data.is_empty())
        .ok_or_else(|| format!("the alert has no {field}"))
}

/// `/cutouts/{topic}/{partition}/{offset}/{science|template|difference}.{png|fits}`.
async fn cutout_file(
    State(shared): State<Arc<Shared>>,
    Path((topic, partition, offset, file)): Path<(String, String, String, String)>,
    Query(query): Query<AlertQuery>,
) -> Response {
    let (name, extension) = file.rsplit_once('.').unwrap_or((&file, ""));
    let entry = match entry(&shared, &(topic, partition, offset), query.index.as_deref()) {
        Ok(entry) => entry,
        Err(refusal) => return refusal.into_response(),
    };
    let (Some(stamp), "png" | "fits") = (Stamp::parse(name), extension) else {
        return missing(format!(
            "no cutout {file}: give science, template or difference, .png or .fits"
        ))
        .into_response();
    };
    match extension {
        "fits" => match stamp_bytes(&shared, &entry, stamp) {
            Ok(bytes) => {
                let gz = if bytes.starts_with(&[0x1f, 0x8b]) {
                    ".gz"
                } else {
                    ""
                };
                let file = format!(
                    "{}-{}-{}-{}.fits{gz}",
                    safe_name(&entry.topic),
                    entry.partition,
                    entry.offset,
                    stamp.name()
                );
                download(&file, bytes)
            }
            Err(why) => (StatusCode::NOT_FOUND, Json(json!({ "error": why }))).into_response(),
        },
        _ => {
            let rendered = tokio::task::spawn_blocking(move || {
                stamp_bytes(&shared, &entry, stamp).and_then(|bytes| {
                    let image = cutout::decode(&bytes).map_err(|e| e.to_string())?;
                    Ok(cutout::render_png(&image, stamp))
                })
            })
            .await
            .unwrap_or_else(|_| Err("the cutout could not be rendered".into()));
            png_response(rendered)
        }
    }
}

/// A rendered cutout, or the placeholder with the reason in a header.
fn png_response(rendered: Result<Vec<u8>, String>) -> Response {
    let kind = (header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    match rendered {
        Ok(png) => ([kind], png).into_response(),
        Err(why) => {
            let why = HeaderValue::from_str(
                &why.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "?"),
            )
            .unwrap_or(HeaderValue::from_static("cannot be shown"));
            (
                [
                    kind,
                    (header::HeaderName::from_static("x-cutout-error"), why),
                ],
                cutout::placeholder_png(),
            )
                .into_response()
        }
    }
}

/// `/api/alerts/{...}/cutouts`: each cutout's size, zscale limits and pixel
/// values (for the value under the pointer), or why it cannot be shown.
async fn cutout_pixels(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<(String, String, String)>,
    Query(query): Query<AlertQuery>,
) -> Response {
    let entry = match entry(&shared, &path, query.index.as_deref()) {
        Ok(entry) => entry,
        Err(refusal) => return refusal.into_response(),
    };
    let body = tokio::task::spawn_blocking(move || {
        let mut out = serde_json::Map::new();
        for stamp in [Stamp::Science, Stamp::Template, Stamp::Difference] {
            let described = stamp_bytes(&shared, &entry, stamp)
                .and_then(|bytes| cutout::decode(&bytes).map_err(|e| e.to_string()))
                .map(|image| describe(&image))
                .unwrap_or_else(|why| json!({ "error": why }));
            out.insert(stamp.name().to_string(), described);
        }
        serde_json::Value::Object(out)
    })
    .await
    .unwrap_or_else(|_| json!({ "error": "the cutouts could not be read" }));
    Json(body).into_response()
}

fn describe(image: &cutout::Image) -> serde_json::Value {
    let pixels: Vec<Option<f32>> = image
        .pixels
        .iter()
        .map(|v| v.is_finite().then_some(*v))
        .collect();
    json!({
        "width": image.width,
        "height": image.height,
        "bitpix": image.bitpix,
        "limits": cutout::zscale(&image.pixels).map(|(lo, hi)| [lo, hi]),
        "pixels": pixels,
    })
}

/// `/api/alerts/{...}/lightcurve.svg`: the alert's photometry history.
async fn light_curve(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<(String, String, String)>,
    Query(query): Query<AlertQuery>,
) -> Response {
    let alert = match entry(&shared, &path, query.index.as_deref()).map(|e| alert_json(&shared, &e))
    {
        Ok(Some(alert)) => alert,
        Ok(None) => return not_found(),
        Err(refusal) => return refusal.into_response(),
    };
    let curve = lightcurve::from_alert(&alert).unwrap_or(lightcurve::Curve {
        unit: lightcurve::Unit::Magnitude,
        points: Vec::new(),
    });
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        lightcurve::svg(&curve, 640, 320),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_downloads_are_tame() {
        assert_eq!(safe_name("ztf.public-1"), "ztf.public-1");
        assert_eq!(safe_name("a\"b;\r\nc/../d"), "a_b___c_.._d");
    }
}
