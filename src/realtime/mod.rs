//! Rooms (docs/realtime.md): local delivery in sequence order, recovery from the store, presence,
//! and the bridge to the other instances through the bus. Every live feature (collaboration,
//! notifications, chat) uses these; the per-feature WebSocket protocols are edge code, in
//! `http/ws/`. `sockets` counts every live socket of the instance for shutdown.

pub mod sockets;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::bus::{Envelope, EventBus, PresenceSnapshot, Revocation, Sink};
use crate::domain::time::Clock;
use crate::store::Store;
use crate::store::rooms::{CursorSample, RoomEvent};

/// Frames a room keeps for its slowest socket before that socket is disconnected.
const ROOM_BUFFER: usize = 1024;
/// How long a room waits for a missing sequence number before reading it from the store.
const GAP_WAIT: Duration = Duration::from_millis(25);
/// Revocations a socket may fall behind by before it closes to be safe (it reconnects, and its
/// access is checked again).
const REVOCATIONS: usize = 256;
/// How often presence is refreshed on the bus, and how long a refresh is believed.
const PRESENCE_REFRESH: Duration = Duration::from_secs(10);
const PRESENCE_VALID_MS: i64 = 30_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Completes durable events read back from the store (a gap filled, a replay, a resync) into the
/// frames clients receive. What expires is never stored (chat's signed file links): the feature
/// that owns the event kind adds it here, once per read, for every socket the frames go to. Live
/// events are published already complete by whoever commits them.
pub trait Render: Send + Sync {
    /// Completes `events` in place.
    fn render<'a>(&'a self, events: &'a mut [RoomEvent]) -> BoxFuture<'a, ()>;
}

/// The envelope of a durable event. `from` names the user an event is about (a participant removed).
pub fn envelope_of(e: &RoomEvent, origin: &str) -> Envelope {
    Envelope {
        origin: origin.to_string(),
        room: e.room.clone(),
        seq: Some(e.seq),
        kind: e.kind.clone(),
        from: e.data.pointer("/user/user_id").and_then(|v| v.as_i64()),
        to: None,
        frame: frame(e).into(),
    }
}

/// The frame clients receive for a durable event: `{"type", "seq", "at", ...data}`.
fn frame(e: &RoomEvent) -> String {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), e.kind.clone().into());
    m.insert("seq".into(), e.seq.into());
    m.insert("at".into(), crate::domain::time::rfc3339(e.at).into());
    if let serde_json::Value::Object(fields) = &e.data {
        for (k, v) in fields {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::Value::Object(m).to_string()
}

#[derive(Default)]
struct Order {
    /// The next sequence number to deliver; None until the room knows where it starts.
    expected: Option<i64>,
    /// Events that arrived ahead of a missing one.
    pending: BTreeMap<i64, Envelope>,
    /// A task is reading a gap from the store.
    filling: bool,
}

/// One room on this instance.
pub struct Room {
    pub name: String,
    tx: broadcast::Sender<Arc<Envelope>>,
    order: Mutex<Order>,
    /// Local sockets per user: (name, count).
    presence: Mutex<HashMap<i64, (String, usize)>>,
    store: Store,
    render: Arc<dyn Render>,
    origin: String,
}

impl Room {
    /// Delivers to this instance's sockets: ephemeral events at once, durable ones in seq order.
    fn deliver(self: &Arc<Self>, env: Envelope) {
        let Some(seq) = env.seq else {
            let _ = self.tx.send(Arc::new(env));
            return;
        };
        let mut o = lock(&self.order);
        if o.expected.is_some_and(|e| seq < e) {
            return;
        }
        o.pending.insert(seq, env);
        self.drain(&mut o);
    }

    /// Sends every pending event that is next in line; starts a gap fill when one is missing.
    fn drain(self: &Arc<Self>, o: &mut Order) {
        let Some(mut next) = o.expected else { return };
        while let Some((&s, _)) = o.pending.first_key_value() {
            if s >= next {
                break;
            }
            o.pending.pop_first();
        }
        while let Some(env) = o.pending.remove(&next) {
            let _ = self.tx.send(Arc::new(env));
            next += 1;
        }
        o.expected = Some(next);
        if !o.pending.is_empty() && !o.filling {
            o.filling = true;
            tokio::spawn(self.clone().fill());
        }
    }

    /// Waits briefly for the missing events, then reads them from the store. A later sequence
    /// number is committed only after every earlier one (docs/realtime.md), so they are there.
    async fn fill(self: Arc<Self>) {
        loop {
            tokio::time::sleep(GAP_WAIT).await;
            let gap = {
                let mut o = lock(&self.order);
                match (o.expected, o.pending.first_key_value().map(|(s, _)| *s)) {
                    (Some(e), Some(first)) if first > e => Some((e, first - 1)),
                    _ => {
                        o.filling = false;
                        None
                    }
                }
            };
            let Some((from, to)) = gap else { return };
            match self.store.room_events(&self.name, from - 1, to, to - from + 1).await {
                Ok(mut events) => {
                    self.render.render(&mut events).await;
                    let mut o = lock(&self.order);
                    for e in &events {
                        o.pending.entry(e.seq).or_insert_with(|| envelope_of(e, &self.origin));
                    }
                    o.filling = false;
                    self.drain(&mut o);
                    return;
                }
                Err(e) => tracing::warn!(room = %self.name, error = %e, "could not read missed room events; retrying"),
            }
        }
    }

    /// `(user_id, name)` of the users with a socket on this instance.
    pub fn local_users(&self) -> Vec<(i64, String)> {
        let mut v: Vec<(i64, String)> = lock(&self.presence).iter().map(|(id, (n, _))| (*id, n.clone())).collect();
        v.sort();
        v
    }
}

/// The rooms of this instance.
pub struct Rooms {
    pub instance: String,
    store: Store,
    bus: Arc<dyn EventBus>,
    render: Arc<dyn Render>,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// How many events a reconnecting client may recover; older gaps get the current state.
    pub window: i64,
    cursors: mpsc::Sender<CursorSample>,
    cursor_rx: Mutex<Option<mpsc::Receiver<CursorSample>>>,
    /// Revoked access, for this instance's sockets (`socket::revoked`).
    revocations: broadcast::Sender<Revocation>,
    /// The app's clock: events' `at`, how long presence snapshots are valid.
    clock: Arc<dyn Clock>,
}

/// A gap too old (or a `last_seq` that never existed): the client must rebuild from the state.
#[derive(Debug)]
pub struct NotRecovered;

/// Frames for one socket: almost always one, kept inline (no allocation per frame and socket).
pub type Frames = smallvec::SmallVec<[Arc<Envelope>; 1]>;

pub enum Next {
    /// Frames to send, in order (possibly none: a duplicate was skipped).
    Frames(Frames),
    /// The socket fell too far behind the room.
    Lagged,
}

/// One socket's membership of a room: delivers durable events in order, each exactly once.
pub struct Subscription {
    pub room: Arc<Room>,
    rx: broadcast::Receiver<Arc<Envelope>>,
    /// The last durable seq this socket has been given.
    pub last_seq: i64,
    rooms: Arc<Rooms>,
    /// An event `try_next` received that needs `next` (a gap to fill first).
    held: Option<Arc<Envelope>>,
}

impl Subscription {
    pub async fn next(&mut self) -> Next {
        if let Some(env) = self.held.take() {
            return self.accept(env).await;
        }
        loop {
            match self.rx.recv().await {
                Ok(env) => return self.accept(env).await,
                Err(broadcast::error::RecvError::Lagged(_)) => return Next::Lagged,
                // The room never closes while a subscription holds it.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    /// What is already queued for this socket, without waiting: `None` when nothing is (or when
    /// the next event needs a read from the store, which `next` then does).
    pub fn try_next(&mut self) -> Option<Next> {
        if self.held.is_some() {
            return None;
        }
        match self.rx.try_recv() {
            Ok(env) => match env.seq {
                None => Some(Next::Frames(smallvec::smallvec![env])),
                Some(seq) if seq <= self.last_seq => Some(Next::Frames(Frames::new())),
                Some(seq) if seq == self.last_seq + 1 => {
                    self.last_seq = seq;
                    Some(Next::Frames(smallvec::smallvec![env]))
                }
                Some(_) => {
                    self.held = Some(env);
                    None
                }
            },
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Next::Lagged),
            Err(_) => None,
        }
    }

    /// One event from the room: a duplicate is skipped, a gap is filled from the store.
    async fn accept(&mut self, env: Arc<Envelope>) -> Next {
        let Some(seq) = env.seq else { return Next::Frames(smallvec::smallvec![env]) };
        if seq <= self.last_seq {
            return Next::Frames(Frames::new());
        }
        let mut frames = Frames::new();
        if seq > self.last_seq + 1 {
            // Defence in depth: the room delivers in order, but never leave a gap.
            // (Boxed: this future lives inside every idle socket's task.)
            let read = async {
                let mut missed = self.rooms.store.room_events(&self.room.name, self.last_seq, seq - 1, seq).await?;
                self.rooms.render.render(&mut missed).await;
                Ok::<_, anyhow::Error>(missed)
            };
            match Box::pin(read).await {
                Ok(missed) => frames.extend(missed.iter().map(|e| Arc::new(envelope_of(e, &self.rooms.instance)))),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read missed events");
                    return Next::Lagged;
                }
            }
        }
        self.last_seq = seq;
        frames.push(env);
        Next::Frames(frames)
    }

    /// The durable events after `after` up to what this socket has been given, for a client
    /// that resumes; refused when the gap is older than the window.
    pub async fn replay(&self, after: i64) -> Result<Vec<Arc<Envelope>>, NotRecovered> {
        if after < 0 || after > self.last_seq || self.last_seq - after > self.rooms.window {
            return Err(NotRecovered);
        }
        let mut events =
            self.rooms.store.room_events(&self.room.name, after, self.last_seq, self.rooms.window).await.map_err(
                |e| {
                    tracing::warn!(error = %e, "could not read events to replay");
                    NotRecovered
                },
            )?;
        if events.len() as i64 != self.last_seq - after {
            return Err(NotRecovered);
        }
        self.rooms.render.render(&mut events).await;
        Ok(events.iter().map(|e| Arc::new(envelope_of(e, &self.rooms.instance))).collect())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = lock(&self.rooms.rooms);
        // This receiver is the last one and nobody is present: forget the room.
        if self.room.tx.receiver_count() <= 1
            && lock(&self.room.presence).is_empty()
            && map.get(&self.room.name).is_some_and(|r| Arc::ptr_eq(r, &self.room))
        {
            map.remove(&self.room.name);
        }
    }
}

impl Rooms {
    /// `render` completes the durable events read back from `store` (see [`Render`]).
    pub fn new(
        store: Store,
        bus: Arc<dyn EventBus>,
        render: Arc<dyn Render>,
        instance: String,
        window: i64,
        clock: Arc<dyn Clock>,
    ) -> Arc<Rooms> {
        let (cursors, rx) = mpsc::channel(16_384);
        Arc::new(Rooms {
            instance,
            store,
            bus,
            render,
            rooms: Mutex::new(HashMap::new()),
            window,
            cursors,
            cursor_rx: Mutex::new(Some(rx)),
            revocations: broadcast::channel(REVOCATIONS).0,
            clock,
        })
    }

    /// Access ended: the sockets it covers close at once, here and on every other instance.
    pub fn revoke(&self, r: Revocation) {
        let _ = self.revocations.send(r.clone());
        self.bus.revoke(r);
    }

    /// What a socket watches to close when its access is revoked.
    pub fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.revocations.subscribe()
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    fn room(&self, name: &str) -> (Arc<Room>, broadcast::Receiver<Arc<Envelope>>, bool) {
        let mut map = lock(&self.rooms);
        if let Some(r) = map.get(name) {
            let rx = r.tx.subscribe();
            return (r.clone(), rx, false);
        }
        let (tx, rx) = broadcast::channel(ROOM_BUFFER);
        let room = Arc::new(Room {
            name: name.to_string(),
            tx,
            order: Mutex::new(Order::default()),
            presence: Mutex::new(HashMap::new()),
            store: self.store.clone(),
            render: self.render.clone(),
            origin: self.instance.clone(),
        });
        map.insert(name.to_string(), room.clone());
        (room, rx, true)
    }

    /// Joins `room`: from now on its events reach the subscription, in order, each once.
    /// `last_seq` is where the room stood when joining (send the state as of that point).
    pub async fn subscribe(self: &Arc<Self>, room: &str) -> anyhow::Result<Subscription> {
        let (room, rx, created) = self.room(room);
        if created {
            let start = self.store.room_seq(&room.name).await?;
            let mut o = lock(&room.order);
            o.expected = Some(start + 1);
            room.drain(&mut o);
        }
        let last_seq = self.store.room_seq(&room.name).await?;
        Ok(Subscription { room, rx, last_seq, rooms: self.clone(), held: None })
    }

    /// Publishes a durable event just committed, here and to the other instances, as clients
    /// receive it (complete: see [`Render`]). With `RUST_LOG=vitrine::commits=debug` each
    /// one is logged with the moment it was published (µs since the epoch): the real-time
    /// benchmark measures delivery from there, as the issue defines its latency.
    pub fn publish(&self, e: &RoomEvent) {
        let committed_us = crate::domain::time::now_us();
        let env = envelope_of(e, &self.instance);
        self.bus.publish(&env);
        self.deliver_local(env);
        tracing::debug!(target: "vitrine::commits", room = %e.room, seq = e.seq, committed_us, "room event committed");
    }

    pub fn publish_all(&self, events: &[RoomEvent]) {
        for e in events {
            self.publish(e);
        }
    }

    /// Publishes an ephemeral frame (cursor, signal): no seq, not stored.
    pub fn publish_ephemeral(&self, room: &str, kind: &str, frame: String, from: Option<i64>, to: Option<i64>) {
        let env = Envelope {
            origin: self.instance.clone(),
            room: room.to_string(),
            seq: None,
            kind: kind.to_string(),
            from,
            to,
            frame: frame.into(),
        };
        self.bus.publish(&env);
        self.deliver_local(env);
    }

    /// Appends a durable event in its own transaction and publishes it.
    pub async fn emit(&self, room: &str, kind: &str, data: serde_json::Value) -> anyhow::Result<RoomEvent> {
        let e = self.store.append_event(room, kind, data, self.clock.now_ms()).await?;
        self.publish(&e);
        Ok(e)
    }

    fn deliver_local(&self, env: Envelope) {
        let room = lock(&self.rooms).get(&env.room).cloned();
        if let Some(room) = room {
            room.deliver(env);
        }
    }

    /// A user's socket joined: true when it is that user's first socket on this instance.
    pub fn join(&self, room: &Room, user_id: i64, name: &str) -> bool {
        let first = {
            let mut p = lock(&room.presence);
            let entry = p.entry(user_id).or_insert_with(|| (name.to_string(), 0));
            entry.1 += 1;
            entry.1 == 1
        };
        if first {
            self.share_presence(room);
        }
        first
    }

    /// A user's socket left: true when it was that user's last socket on this instance.
    pub fn leave(&self, room: &Room, user_id: i64) -> bool {
        let last = {
            let mut p = lock(&room.presence);
            match p.get_mut(&user_id) {
                Some(entry) if entry.1 > 1 => {
                    entry.1 -= 1;
                    false
                }
                Some(_) => {
                    p.remove(&user_id);
                    true
                }
                None => false,
            }
        };
        if last {
            self.share_presence(room);
        }
        last
    }

    fn share_presence(&self, room: &Room) {
        let snapshot = PresenceSnapshot {
            instance: self.instance.clone(),
            until: self.clock.now_ms() + PRESENCE_VALID_MS,
            users: room.local_users(),
        };
        tokio::spawn(self.bus.put_presence(&room.name, snapshot));
    }

    /// Everyone online in `room` on any instance, by user id.
    pub async fn online(&self, room: &Room) -> Vec<(i64, String)> {
        let mut all: BTreeMap<i64, String> = room.local_users().into_iter().collect();
        let remote =
            tokio::time::timeout(Duration::from_millis(500), self.bus.presence(&room.name, self.clock.now_ms())).await;
        for s in remote.unwrap_or_default() {
            for (id, name) in s.users {
                all.entry(id).or_insert(name);
            }
        }
        all.into_iter().collect()
    }

    /// Whether `user_id` has a socket in `room` on another instance.
    pub async fn online_elsewhere(&self, room: &Room, user_id: i64) -> bool {
        let remote =
            tokio::time::timeout(Duration::from_millis(500), self.bus.presence(&room.name, self.clock.now_ms())).await;
        remote.unwrap_or_default().iter().any(|s| s.users.iter().any(|(id, _)| *id == user_id))
    }

    /// Keeps a sampled cursor position for the recording (dropped, not waited for, when the
    /// writer is behind).
    pub fn record_cursor(&self, sample: CursorSample) {
        if self.cursors.try_send(sample).is_err() {
            metrics::counter!("vitrine_cursor_samples_dropped_total").increment(1);
        }
    }

    /// Background work: the bus, presence refresh, the cursor sample writer.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        self.bus.start(self.clone(), shutdown.clone());
        let mut handles = Vec::new();
        let me = self.clone();
        let stop = shutdown.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRESENCE_REFRESH);
            loop {
                tokio::select! { _ = tick.tick() => {}, _ = stop.cancelled() => return }
                let rooms: Vec<Arc<Room>> = lock(&me.rooms).values().cloned().collect();
                for r in rooms {
                    if !lock(&r.presence).is_empty() {
                        me.share_presence(&r);
                    }
                }
            }
        }));
        if let Some(mut rx) = lock(&self.cursor_rx).take() {
            let store = self.store.clone();
            handles.push(tokio::spawn(async move {
                let mut batch = Vec::new();
                loop {
                    let first = tokio::select! { s = rx.recv() => s, _ = shutdown.cancelled() => None };
                    let Some(first) = first else { break };
                    batch.push(first);
                    while batch.len() < 5_000 {
                        match rx.try_recv() {
                            Ok(s) => batch.push(s),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = store.insert_cursor_samples(&batch).await {
                        tracing::warn!(error = %e, "could not write cursor samples");
                    }
                    batch.clear();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                while let Ok(s) = rx.try_recv() {
                    batch.push(s);
                }
                let _ = store.insert_cursor_samples(&batch).await;
            }));
        }
        handles
    }
}

impl Sink for Rooms {
    fn deliver(&self, env: Envelope) {
        self.deliver_local(env);
    }

    fn forget_caches(&self) {
        self.store.caches().forget();
    }

    fn revoked(&self, r: Revocation) {
        let _ = self.revocations.send(r);
    }

    /// Messages may have been lost while the bus was away: every room reads what it missed, and
    /// cached values may predate writes this instance was not told of.
    fn resync(&self) {
        self.store.caches().forget();
        let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        for room in rooms {
            let store = self.store.clone();
            let render = self.render.clone();
            tokio::spawn(async move {
                let Ok(last) = store.room_seq(&room.name).await else { return };
                let after = lock(&room.order).expected.map(|e| e - 1);
                let Some(after) = after else { return };
                if last <= after {
                    return;
                }
                if let Ok(mut events) = store.room_events(&room.name, after, last, last - after).await {
                    render.render(&mut events).await;
                    for e in &events {
                        room.deliver(envelope_of(e, &room.origin));
                    }
                }
            });
        }
    }
}
