//! [`incoming`]: a stream of handshaken TLS connections for tonic's
//! `Server::serve_with_incoming` (or any accept loop).
//!
//! Invariants: handshakes run concurrently, each in its own task, so a slow or silent client
//! never holds up others (etcd's `tlsListener` does the same); failed handshakes are logged
//! once by the acceptor and never reach the stream; the stream yields only `Ok` items; an
//! accept error (e.g. out of file descriptors) is logged and retried after a short pause;
//! dropping the stream stops accepting (the listener closes) and drops connections still
//! in their handshake as they finish.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::acceptor::{TlsAcceptor, TlsStream};

/// Handshaken connections waiting to be taken by the server.
const QUEUE: usize = 64;
/// Pause after a failed `accept` (EMFILE and the like).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The stream returned by [`incoming`].
#[derive(Debug)]
pub struct TlsIncoming {
    rx: mpsc::Receiver<TlsStream>,
    task: JoinHandle<()>,
    local_addr: Option<SocketAddr>,
}

impl TlsIncoming {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for TlsIncoming {
    type Item = Result<TlsStream, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// Accepts on `listener` and handshakes each connection with `acceptor`. Must be called
/// within a tokio runtime.
///
/// ```ignore
/// let incoming = oxcd_tls::incoming(listener, TlsAcceptor::new(info)?);
/// tonic::transport::Server::builder().add_service(svc).serve_with_incoming(incoming).await?;
/// ```
pub fn incoming(listener: TcpListener, acceptor: TlsAcceptor) -> TlsIncoming {
    let local_addr = listener.local_addr().ok();
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(accept_loop(listener, acceptor, tx));
    TlsIncoming {
        rx,
        task,
        local_addr,
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<TlsStream>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = tx.closed() => return,
        };
        match accepted {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        // The receiver may be gone (server stopped): the connection drops.
                        let _ = tx.send(stream).await;
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
