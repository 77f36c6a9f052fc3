//! `/stream.mjpg`: multipart JPEG of the frames as classified. One encoder task turns the newest
//! frame into a JPEG (on a blocking thread, off the live loop) only while someone watches; each
//! client gets the newest JPEG when it is ready for one, so a slow or stalled client skips frames
//! and holds one JPEG at most instead of a queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::Shared;

const BOUNDARY: &str = "flowercamframe";

/// Encodes each frame the loop hands over (it hands them only while a client watches).
pub async fn encoder(shared: Arc<Shared>) {
    let mut frames = shared.frames.subscribe();
    while frames.changed().await.is_ok() {
        let Some(frame) = frames.borrow_and_update().clone() else { continue };
        match tokio::task::spawn_blocking(move || crate::jpeg::encode(&frame).map(Bytes::from)).await {
            Ok(Ok(jpeg)) => {
                shared.jpegs.send_replace(Some(jpeg));
            }
            Ok(Err(e)) => tracing::warn!("http: cannot encode a frame for the stream: {e:#}"),
            Err(e) => tracing::warn!("http: the encoder failed: {e}"),
        }
    }
}

/// Counts a watcher while its response body lives.
struct Watcher(Arc<Shared>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.stream_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

pub async fn mjpeg(State(shared): State<Arc<Shared>>) -> Response {
    let watching = shared.stream_clients.fetch_add(1, Ordering::Relaxed);
    let watcher = Watcher(Arc::clone(&shared));
    if watching >= shared.max_clients {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("already {watching} stream clients (--http-max-clients)\n")).into_response();
    }
    let mut receiver = shared.jpegs.subscribe();
    // A client that arrives after the first frame must not wait for the next one to change.
    receiver.mark_changed();
    let parts = futures_util::stream::unfold((receiver, watcher), |(mut receiver, watcher)| async move {
        loop {
            receiver.changed().await.ok()?;
            let jpeg = receiver.borrow_and_update().clone();
            if let Some(jpeg) = jpeg {
                let head = format!("--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len());
                let part = [head.as_bytes(), &jpeg, b"\r\n"].concat();
                return Some((Ok::<_, std::convert::Infallible>(Bytes::from(part)), (receiver, watcher)));
            }
        }
    });
    (
        [(header::CONTENT_TYPE, format!("multipart/x-mixed-replace; boundary={BOUNDARY}")), (header::CACHE_CONTROL, "no-store".into())],
        Body::from_stream(parts),
    )
        .into_response()
}
