//! `Sockets`: every live socket of the instance (collaboration, chat, notifications) for
//! shutdown. The WebSocket protocols themselves are edge code, in `http/ws/`.

use tokio_util::sync::CancellationToken;

/// Every live socket of this instance (collaboration, chat, notifications), for shutdown: one
/// signal tells them all to close with 1001 ("going away"); shutdown waits for them to be gone,
/// up to the grace period, and then cuts what is left.
pub struct Sockets {
    away: CancellationToken,
    cut: CancellationToken,
    /// Each running socket holds a receiver: the sender is closed when none is left.
    open: tokio::sync::watch::Sender<()>,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            away: CancellationToken::new(),
            cut: CancellationToken::new(),
            open: tokio::sync::watch::Sender::new(()),
        }
    }
}

impl Sockets {
    /// Resolves once the instance is going away: the socket's loop then calls `going_away`.
    /// (Pin it once outside the loop: every socket waits on this one token.)
    pub fn going_away(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.away.cancelled()
    }

    /// Tells every socket to close with 1001 (sockets opened later close at once).
    pub fn go_away(&self) {
        self.away.cancel();
    }

    /// The grace period is over: sockets still running are dropped where they stand (one blocked
    /// writing to a client that does not read, for instance).
    pub fn cut(&self) {
        self.cut.cancel();
    }

    /// Fires when the grace period is over (`cut`): a socket's task stops where it stands.
    pub fn cut_token(&self) -> CancellationToken {
        self.cut.clone()
    }

    /// Resolves when no socket is running.
    pub async fn closed(&self) {
        self.open.closed().await;
    }

    /// How many sockets are running (with the work they handed off, see `hold`).
    pub fn count(&self) -> usize {
        self.open.receiver_count()
    }

    /// Keeps shutdown waiting (within the grace period) while the guard lives: for work a socket
    /// hands off its loop that must still finish when the socket is gone, such as storing the
    /// messages it had received.
    pub fn hold(&self) -> Held {
        Held { _open: self.open.subscribe() }
    }
}

/// See `Sockets::hold`.
pub struct Held {
    _open: tokio::sync::watch::Receiver<()>,
}
