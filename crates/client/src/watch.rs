//! Watches: one bidirectional gRPC stream carrying one or more watchers.
//!
//! Invariants:
//! - A stream is opened only together with its first create request (servers may not send
//!   response headers before the first response, so an empty stream would never "open").
//! - [`crate::Client::watch`] returns only after the server confirmed the first watcher
//!   (`created`), so its `watch_id` is known; a refused watch is [`Error::WatchCanceled`].
//! - Dropping every [`Watcher`] closes the request side; the server then ends the stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use oxcd_api::etcdserverpb::{
    watch_create_request::FilterType, watch_request::RequestUnion, WatchCancelRequest,
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::kv::key_range;

/// Options of a watch ([`crate::Client::watch`], [`Watcher::create`]).
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Explicit range end (exclusive); overrides `prefix`.
    pub range_end: Option<Vec<u8>>,
    /// Watch every key with the given key as prefix.
    pub prefix: bool,
    /// Replay events from this revision (0 = from now on).
    pub start_revision: i64,
    /// Include the previous key-value in events.
    pub prev_kv: bool,
    /// Ask for periodic progress notifications.
    pub progress_notify: bool,
    /// Filter out put events.
    pub no_put: bool,
    /// Filter out delete events.
    pub no_delete: bool,
    /// Client-chosen watch id (0 = let the server choose).
    pub watch_id: i64,
}

impl WatchOptions {
    /// Options for a prefix watch.
    pub fn prefix() -> Self {
        WatchOptions {
            prefix: true,
            ..Default::default()
        }
    }

    /// Build the wire request for `key`.
    pub fn to_request(&self, key: impl Into<Vec<u8>>) -> WatchRequest {
        let (key, range_end) = key_range(key.into(), self.range_end.as_ref(), self.prefix);
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if self.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key,
                range_end,
                start_revision: self.start_revision,
                progress_notify: self.progress_notify,
                filters,
                prev_kv: self.prev_kv,
                watch_id: self.watch_id,
                fragment: false,
            })),
        }
    }
}

/// The request side of a watch stream, holding the id of the watcher it was created with.
/// Cloning shares the stream.
#[derive(Debug, Clone)]
pub struct Watcher {
    pub(crate) tx: mpsc::Sender<WatchRequest>,
    pub(crate) watch_id: i64,
}

impl Watcher {
    /// The id of the watcher created by [`crate::Client::watch`].
    pub fn watch_id(&self) -> i64 {
        self.watch_id
    }

    async fn send(&self, req: WatchRequest) -> Result<()> {
        self.tx
            .send(req)
            .await
            .map_err(|_| Error::StreamClosed("watch"))
    }

    /// Add another watcher on the same stream. Its `created` response (with its id) arrives on
    /// the [`WatchStream`] like any other response.
    pub async fn create(&self, key: impl Into<Vec<u8>>, opts: &WatchOptions) -> Result<()> {
        self.send(opts.to_request(key)).await
    }

    /// Cancel a watcher of this stream (by default the first one: pass [`Self::watch_id`]).
    pub async fn cancel(&self, watch_id: i64) -> Result<()> {
        self.send(WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id })),
        })
        .await
    }

    /// Ask the server for a progress notification on every watcher of the stream.
    pub async fn request_progress(&self) -> Result<()> {
        self.send(WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        })
        .await
    }
}

/// The response side of a watch stream.
pub struct WatchStream {
    pub(crate) inner: tonic::Streaming<WatchResponse>,
}

impl WatchStream {
    /// The next response; `Ok(None)` when the server ended the stream.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>> {
        Ok(self.inner.message().await?)
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|o| o.map(|r| r.map_err(Error::from)))
    }
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchStream")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_options_build_create_requests() {
        let req = WatchOptions {
            no_put: true,
            prev_kv: true,
            start_revision: 9,
            ..WatchOptions::prefix()
        }
        .to_request("a\u{7f}");
        let Some(RequestUnion::CreateRequest(c)) = req.request_union else {
            panic!("not a create request");
        };
        assert_eq!(c.range_end, b"a\x80");
        assert_eq!(c.filters, vec![FilterType::Noput as i32]);
        assert!(c.prev_kv);
        assert_eq!(c.start_revision, 9);
    }
}
