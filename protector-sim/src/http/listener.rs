//! A loopback listener that refuses service while its site is down.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

type DownProbe = Arc<dyn Fn() -> bool + Send + Sync>;

/// Binds `127.0.0.1:0`.
pub(crate) async fn bind() -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", 0)).await
}

/// Accepts connections, closing them at once while the site is down.
pub(crate) struct SiteListener {
    inner: TcpListener,
    down: DownProbe,
}

impl SiteListener {
    pub(crate) fn new(inner: TcpListener, down: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self {
            inner,
            down: Arc::new(down),
        }
    }
}

impl axum::serve::Listener for SiteListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if (self.down)() {
                        drop(stream);
                        continue;
                    }
                    return (
                        GuardedStream {
                            inner: stream,
                            down: Arc::clone(&self.down),
                        },
                        addr,
                    );
                }
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails every read and write once its site is down.
pub(crate) struct GuardedStream {
    inner: TcpStream,
    down: DownProbe,
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "site is down")
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if (self.down)() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if (self.down)() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
