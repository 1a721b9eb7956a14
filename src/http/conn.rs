//! The listener `app::run` serves on: every accepted connection can be cut when the shutdown
//! grace period is over (axum's graceful shutdown would otherwise wait for a slow transfer forever).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A TCP listener whose connections fail their next read or write once `cut` is cancelled.
pub struct Listener {
    tcp: TcpListener,
    cut: CancellationToken,
}

impl Listener {
    pub fn new(tcp: TcpListener, cut: CancellationToken) -> Listener {
        Listener { tcp, cut }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        // TcpListener's own `accept` (it retries after transient errors).
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.tcp).await;
        // A child token per connection: its waker is registered in a list of its own, not in
        // one that every connection would lock.
        let cut = self.cut.child_token();
        (Conn { tcp, waiting: Box::pin(cut.clone().cancelled_owned()), cut }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// One accepted connection. An operation that waits on the socket also waits on `cut`, so that a
/// transfer stalled on a client that stopped reading fails as soon as the grace period ends.
pub struct Conn {
    tcp: TcpStream,
    cut: CancellationToken,
    waiting: Pin<Box<WaitForCancellationFutureOwned>>,
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "cut: the shutdown grace period is over")
}

impl Conn {
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Runs one socket operation unless the connection is cut; registers for the cut only when
    /// the operation has to wait (a cheap check otherwise).
    fn poll_io<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.cut.is_cancelled() {
            return Poll::Ready(Err(cut_error()));
        }
        match op(Pin::new(&mut self.tcp), cx) {
            Poll::Pending if self.waiting.as_mut().poll(cx).is_ready() => Poll::Ready(Err(cut_error())),
            other => other,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.poll_io(cx, |tcp, cx| tcp.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, |tcp, cx| tcp.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, |tcp, cx| tcp.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_io(cx, |tcp, cx| tcp.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
