//! `edge run --http ADDR`: a live page, an MJPEG stream, JSON status, health and metrics, served
//! beside the live loop and never in its way.
//!
//! axum on a small tokio runtime of its own: a stream client that stops reading parks a task,
//! not a thread, and holds at most one frame; the loop only updates [`state::Shared`]. (tiny_http
//! would be smaller but is unmaintained and needs a thread per watcher.)
//!
//! - `/`: the live page (`page.html`, in the binary: boards are often offline);
//! - `/stream.mjpg`: the frames as classified, JPEG-encoded only while someone watches;
//! - `/api/latest`, `/api/status`, `/api/history` (the last minute's probabilities): JSON;
//! - `/healthz`: 200 while a frame was classified within `--stale-after`, else 503 and why;
//! - `/metrics`: Prometheus text;
//! - `POST /api/model`: a new bundle, checked and swapped in (see [`crate::swap`]); only with a
//!   token, since a model decides what the box reports.
//!
//! Loopback only unless a token is set: every request then needs `Authorization: Bearer TOKEN`
//! or `?token=TOKEN` (what the page's own requests carry).

pub mod metrics;
mod per_address;
pub mod state;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use crate::model::ModelInfo;
use crate::swap;
use shared::usage::UsageError;
use state::{Feed, Health, Shared};

/// How long an upload's body may take to arrive (256 MiB at under 1 MB/s still fits).
const UPLOAD_READ_LIMIT: Duration = Duration::from_secs(300);

pub struct HttpOptions {
    pub listen: SocketAddr,
    pub token: Option<String>,
    pub max_clients: usize,
    pub stale_after: Duration,
    /// How long an upload waits for its check (`Trial::upload_wait`: the trial in a child, then
    /// the load and self-check here; a VGG16 on a Pi takes seconds to a minute).
    pub upload_wait: Duration,
}

/// The running server; dropping it stops it.
pub struct Server {
    _runtime: tokio::runtime::Runtime,
    pub address: SocketAddr,
}

impl HttpOptions {
    /// A camera is private: anything but loopback needs a token.
    pub fn check(&self) -> Result<(), UsageError> {
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(UsageError("--http-token is empty".into()));
        }
        // An Authorization header carries visible ASCII only: a token with a space at an end
        // (a config file's slip), a line break or other text would work in ?token= alone.
        if self.token.as_deref().is_some_and(|t| !t.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(UsageError("--http-token: use visible ASCII characters only (no spaces), e.g. `openssl rand -base64 24`".into()));
        }
        if !self.listen.ip().is_loopback() && self.token.is_none() {
            return Err(UsageError(format!(
                "--http {}: not a loopback address, so anyone on the network could watch this camera; set --http-token (or http-token in the config file) to serve it",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Binds (so a port in use is an error now, not later) and serves on a runtime of its own.
/// Returns the server and the live loop's consumer that feeds it.
/// `uploads`: where `POST /api/model` sends bundles (taken only when a token is set).
pub fn start(
    options: HttpOptions,
    model: ModelInfo,
    source: String,
    uploads: Option<Sender<swap::Request>>,
) -> anyhow::Result<(Server, Feed)> {
    options.check()?;
    let listener =
        std::net::TcpListener::bind(options.listen).map_err(|e| anyhow::anyhow!("--http {}: cannot listen: {e}", options.listen))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let uploads = uploads.filter(|_| options.token.is_some());
    let shared = Arc::new(Shared::new(model, source, &options, uploads));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).max_blocking_threads(2).thread_name("http").enable_all().build()?;
    let app = router(Arc::clone(&shared), options.token);
    runtime.spawn(stream::encoder(Arc::clone(&shared)));
    runtime.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!("http: {e}"),
        };
        serve(listener, app).await;
    });
    tracing::info!("live page: http://{address}/");
    Ok((Server { _runtime: runtime, address }, Feed { shared }))
}

/// How long a client may take to send a request's headers: a half-sent request (one byte a
/// minute, or none) is closed then instead of holding its connection for ever.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once; more are closed as soon as they are accepted. Idle or slow clients
/// then cannot take every file descriptor of the process, which the loop needs too (saved
/// frames, the log, the camera). Stream viewers have their own, smaller cap (`--http-max-clients`).
const MAX_CONNECTIONS: usize = 128;

/// Connections one client may hold of [`MAX_CONNECTIONS`] ([`per_address`]): a browser takes six
/// at most, the stream its own; one host opening connections and sending nothing, again and
/// again, then leaves the others' (the health checks', the operator's) free.
const MAX_CONNECTIONS_PER_CLIENT: usize = 32;

/// How long a response may wait for the client to take its next bytes: a client that asks and
/// never reads (the live stream, say) is closed then instead of holding one of the
/// [`MAX_CONNECTIONS`] for ever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// `stream` whose writes fail with `TimedOut` once one has waited `timeout` for the peer.
fn with_write_deadline<S>(stream: S, timeout: Duration) -> std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<S>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
    stream.set_write_timeout(Some(timeout));
    Box::pin(stream)
}

/// Serves `app`, one task per connection, within [`HEADER_TIMEOUT`], [`WRITE_TIMEOUT`],
/// [`MAX_CONNECTIONS`] and [`MAX_CONNECTIONS_PER_CLIENT`].
async fn serve(listener: tokio::net::TcpListener, app: Router) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_client = per_address::PerAddress::new(MAX_CONNECTIONS_PER_CLIENT);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait for some to close instead of spinning.
                tracing::warn!("http: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(place) = per_client.take(peer.ip()) else {
            tracing::debug!("http: {peer} holds {MAX_CONNECTIONS_PER_CLIENT} connections; closing a new one");
            continue;
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::debug!("http: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _held = (permit, place);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(with_write_deadline(stream, WRITE_TIMEOUT)), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!("http: a connection ended: {e}");
            }
        });
    }
}

fn router(shared: Arc<Shared>, token: Option<String>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/stream.mjpg", get(stream::mjpeg))
        .route("/api/latest", get(latest))
        .route("/api/status", get(status))
        .route("/api/history", get(history))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/model", post(upload))
        .layer(middleware::from_fn_with_state(Arc::new(token), authorize))
        .with_state(shared)
}

async fn authorize(State(token): State<Arc<Option<String>>>, request: Request, next: Next) -> Response {
    let Some(token) = token.as_deref() else { return next.run(request).await };
    // The scheme's name is case-insensitive (RFC 7235).
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .and_then(|(scheme, value)| scheme.eq_ignore_ascii_case("bearer").then(|| value.trim().to_string()));
    let query = request.uri().query().and_then(token_in_query);
    if [bearer, query].into_iter().flatten().any(|given| same(given.as_bytes(), token.as_bytes())) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN\n",
        )
            .into_response()
    }
}

/// The query parameter that carries the token (`/?token=...`: the live page's address).
pub const TOKEN_PARAM: &str = "token";

/// The token in a URL's query, decoded as browsers encode it: a token with `+`, `/` or `=`
/// (base64) arrives percent-encoded from the page. The first one counts.
pub fn token_in_query(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == TOKEN_PARAM).map(|(_, v)| v.into_owned())
}

/// Equality in time independent of where the first difference is (no timing oracle on the token).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], include_str!("page.html"))
}

async fn latest(State(shared): State<Arc<Shared>>) -> Response {
    match shared.latest() {
        Some(latest) => axum::Json(latest).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// A new bundle: 200 and the new model once it is checked and swapped in (with `not_kept` when
/// `--last-good` could not keep it), 422 and why when it is refused (the running model stays),
/// 403 without a token configured.
async fn upload(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let Some(uploads) = shared.uploads.clone() else {
        return (StatusCode::FORBIDDEN, "model uploads need --http-token: a model decides what this box reports\n").into_response();
    };
    // One upload at a time, read only once it has the slot, which goes with the bytes to the
    // swapper and is freed after their check: three at once held 1.4 GB.
    let Ok(slot) = Arc::clone(&shared.upload_slot).try_lock_owned() else {
        return (StatusCode::CONFLICT, "another model upload is being checked; send this one when it is done\n").into_response();
    };
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > swap::MAX_UPLOAD as u64) {
        return too_large();
    }
    // A stalled sender (a dropped link) must not keep the slot from the next upload.
    let body = match tokio::time::timeout(UPLOAD_READ_LIMIT, axum::body::to_bytes(request.into_body(), swap::MAX_UPLOAD)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            // A body sent in chunks declares no length: its size is known only past the limit.
            let e = e.into_inner();
            if e.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            return (StatusCode::BAD_REQUEST, format!("the upload was not read whole: {e}\n")).into_response();
        }
        Err(_) => return (StatusCode::REQUEST_TIMEOUT, "the upload did not arrive within 5 minutes\n").into_response(),
    };
    let (reply, answer) = std::sync::mpsc::channel();
    // Vec::from takes the buffer over without a copy.
    if uploads.send(swap::Request::Upload { bytes: Vec::from(body), reply, slot }).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the box is stopping\n").into_response();
    }
    let outcome = tokio::task::spawn_blocking(move || answer.recv_timeout(shared.upload_wait)).await;
    match outcome {
        Ok(Ok(Ok(uploaded))) => axum::Json(uploaded).into_response(),
        Ok(Ok(Err(why))) => (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(serde_json::json!({ "error": why }))).into_response(),
        _ => (StatusCode::GATEWAY_TIMEOUT, "the check of the new model did not finish in time\n").into_response(),
    }
}

fn too_large() -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, format!("a bundle is at most {} MiB\n", swap::MAX_UPLOAD >> 20)).into_response()
}

async fn history(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.history()).into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.status()).into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.health() {
        Health::Ok(why) => (StatusCode::OK, why + "\n").into_response(),
        Health::Stale(why) => (StatusCode::SERVICE_UNAVAILABLE, why + "\n").into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], shared.metrics()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(listen: &str, token: Option<&str>) -> HttpOptions {
        HttpOptions {
            listen: listen.parse().unwrap(),
            token: token.map(Into::into),
            max_clients: 2,
            stale_after: Duration::from_secs(5),
            upload_wait: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_public_address_needs_a_token() {
        assert!(options("127.0.0.1:0", None).check().is_ok());
        assert!(options("[::1]:0", None).check().is_ok());
        let refused = options("0.0.0.0:8080", None).check().unwrap_err();
        assert!(refused.0.contains("not a loopback address"), "{}", refused.0);
        assert!(options("0.0.0.0:8080", Some("s3cret")).check().is_ok());
        assert!(options("0.0.0.0:8080", Some(" ")).check().is_err());
        for odd in ["s3cret ", "s3\ncret", "sécret", "s3 cret"] {
            assert!(options("127.0.0.1:0", Some(odd)).check().unwrap_err().0.contains("visible ASCII"), "{odd:?}");
        }
        assert!(options("127.0.0.1:0", Some("Zm9v+YmFy/YmF6=")).check().is_ok(), "base64");
    }

    /// One client holding its share of connections idle is refused more, and another client
    /// is answered meanwhile. (127.0.0.2 is loopback too: a second client on this machine.)
    #[test]
    fn one_client_cannot_take_every_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let app = Router::new().route("/", get(|| async { "here\n" }));
            tokio::spawn(serve(listener, app));
            let from = |client: &str| {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(format!("{client}:0").parse().unwrap()).unwrap();
                socket.connect(address)
            };
            let mut idle = Vec::new();
            for _ in 0..MAX_CONNECTIONS_PER_CLIENT {
                idle.push(from("127.0.0.1").await.unwrap());
            }
            let answer = |mut connection: tokio::net::TcpStream| async move {
                let _ = connection.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
                let mut text = String::new();
                let read = tokio::time::timeout(Duration::from_secs(5), connection.read_to_string(&mut text)).await;
                (read.is_ok(), text)
            };
            let (ended, text) = answer(from("127.0.0.1").await.unwrap()).await;
            assert!(ended && text.is_empty(), "one more from the same client is closed unanswered: {text:?}");
            let (ended, text) = answer(from("127.0.0.2").await.unwrap()).await;
            assert!(ended && text.starts_with("HTTP/1.1 200") && text.ends_with("here\n"), "another client is answered: {text:?}");
            idle.pop();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (_, text) = answer(from("127.0.0.1").await.unwrap()).await;
            assert!(text.starts_with("HTTP/1.1 200"), "a closed connection gives its place back: {text:?}");
        });
    }

    #[test]
    fn a_client_that_stops_reading_times_the_write_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let timeout = Duration::from_millis(100);
            // A peer that never reads: the 64-byte pipe fills, the write waits, then fails.
            let (ours, _never_read) = tokio::io::duplex(64);
            let started = std::time::Instant::now();
            let write = async { with_write_deadline(ours, timeout).write_all(&[0u8; 4096]).await };
            let error = tokio::time::timeout(Duration::from_secs(5), write).await.expect("the write gave up by itself").unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
            assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
            // A peer that keeps reading gets every byte, though the whole answer takes far longer
            // than the deadline: it bounds each wait, not the response.
            let (ours, mut theirs) = tokio::io::duplex(256);
            let reader = tokio::spawn(async move {
                let (mut got, mut chunk) = (0, [0u8; 512]);
                loop {
                    tokio::time::sleep(timeout / 4).await;
                    match theirs.read(&mut chunk).await? {
                        0 => return Ok::<usize, std::io::Error>(got),
                        n => got += n,
                    }
                }
            });
            let mut writer = with_write_deadline(ours, timeout);
            let started = std::time::Instant::now();
            writer.write_all(&[1u8; 4096]).await.unwrap();
            writer.shutdown().await.unwrap();
            drop(writer);
            assert_eq!(reader.await.unwrap().unwrap(), 4096);
            assert!(started.elapsed() > 2 * timeout, "the answer outlasted the deadline: {:?}", started.elapsed());
        });
    }

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
