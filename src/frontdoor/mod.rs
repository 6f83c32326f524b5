//! The listener in front of the router: accepts connections, TLS or (only
//! when configured) plain; bounds what one connection may hold (the number of
//! connections, the TLS handshake time, the time to send a request's
//! headers); serves HTTP/1.1 and HTTP/2 on each; and stops gracefully:
//! no new connection, in-flight requests finish.
//!
//! Each request carries the connection's address (`ConnectInfo`) and, over
//! TLS, the client's verified certificate (`api::gate::PeerCertificate`) as
//! extensions, for `api::gate` to identify and limit the client.

pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::api::gate::PeerCertificate;
use crate::config::FrontDoor;
use tls::TlsSource;

/// How long in-flight requests may take to finish at shutdown.
const DRAIN_FOR: Duration = Duration::from_secs(30);

/// Serve `app` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<TlsSource>>,
    front: &FrontDoor,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let stopping = async move {
        let mut stop = stop;
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopping);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(front.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let connections = Arc::new(Semaphore::new(front.max_connections as usize));
    let graceful = GracefulShutdown::new();
    let handshake_timeout = front.handshake_timeout;
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // accept: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!("connection refused: server.max_connections reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(&builder, stream, peer, None, app, watcher).await,
                Some(acceptor) => {
                    let tls_stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let cert = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|der| PeerCertificate::from_der(der));
                    serve_connection(&builder, tls_stream, peer, cert, app, watcher).await
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_FOR) => tracing::warn!("connections still open after the drain time; closing"),
    }
    Ok(())
}

async fn serve_connection<IO>(
    builder: &auto::Builder<TokioExecutor>,
    io: IO,
    peer: SocketAddr,
    cert: Option<PeerCertificate>,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(cert) = &cert {
            request.extensions_mut().insert(cert.clone());
        }
        request
    });
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
