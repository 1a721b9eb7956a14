//! Queries on webhooks and their outbox (SPEC §13). `enqueue_webhooks` writes one delivery per
//! matching webhook inside the transaction of the change the event describes, so an event is
//! stored exactly when its change is. Workers claim due deliveries for a lease: with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, in the write gate's turn on SQLite (one writer), so each
//! delivery is attempted by one instance at a time.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Dialect, Store, flag, next_id, next_ids};
use crate::domain::audit::AuditEntry;
use crate::domain::pagination::PageRequest;
use crate::domain::time::rfc3339;
use crate::domain::webhooks::{
    Delivery, DeliveryStatus, Event, EventType, MAX_WEBHOOKS_PER_USER, Scope, Webhook, WebhookSettings, payload,
};

/// Who has active webhooks: an event about anyone else's content (the common case) costs no query.
#[derive(Debug, Default)]
pub struct WebhookOwners {
    /// Some active webhook has `scope = all`: every event has a receiver.
    pub any_all: bool,
    pub users: HashSet<i64>,
}

impl WebhookOwners {
    pub fn hears(&self, owner_id: i64) -> bool {
        self.any_all || self.users.contains(&owner_id)
    }
}

/// Who has active webhooks, and of which scope.
const OWNERS: &str = "SELECT DISTINCT user_id, scope FROM webhooks WHERE active = 1";

const COLUMNS: &str = "id, user_id, url, events, description, secret, scope, active, created_at, updated_at";

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event_type, payload, status, attempts, next_attempt_at, \
    response_status, response_body, last_error, created_at, delivered_at";

fn webhook_from_row(r: &AnyRow) -> Result<Webhook, sqlx::Error> {
    let events: String = r.try_get("events")?;
    let scope: String = r.try_get("scope")?;
    Ok(Webhook {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        url: r.try_get("url")?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        description: r.try_get("description")?,
        secret: r.try_get("secret")?,
        scope: Scope::parse(&scope).unwrap_or(Scope::Own),
        active: r.try_get::<i64, _>("active")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn delivery_from_row(r: &AnyRow) -> Result<Delivery, sqlx::Error> {
    let status: String = r.try_get("status")?;
    Ok(Delivery {
        id: r.try_get("id")?,
        webhook_id: r.try_get("webhook_id")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        payload: r.try_get("payload")?,
        status: DeliveryStatus::parse(&status),
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        response_status: r.try_get("response_status")?,
        response_body: r.try_get("response_body")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

/// A delivery claimed by a worker, with where and how to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub url: String,
    pub secret: String,
}

/// What came of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: DeliveryStatus,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: i64,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// An attempt to record: of delivery `id`, claimed by `token`, made at `at`.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: i64,
    pub token: String,
    pub attempt: Attempt,
    pub at: i64,
}

/// The outcome of `insert_webhook`.
pub enum Inserted {
    Created(Box<Webhook>),
    /// The user already has `MAX_WEBHOOKS_PER_USER`.
    TooMany,
}

impl Store {
    /// Creates a webhook unless the user already has the maximum; forgets the webhook owners
    /// cached here and on every other instance before it returns.
    pub async fn insert_webhook(
        &self,
        user_id: i64,
        s: &WebhookSettings,
        secret: &str,
        now: i64,
        audit: impl FnOnce(i64) -> AuditEntry + Send,
    ) -> anyhow::Result<Inserted> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "webhooks").await?;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhooks WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        if count >= MAX_WEBHOOKS_PER_USER {
            return Ok(Inserted::TooMany);
        }
        sqlx::query(
            "INSERT INTO webhooks (id, user_id, url, events, description, secret, scope, active, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(id)
        .bind(user_id)
        .bind(s.url.as_str().to_string())
        .bind(s.events_json())
        .bind(&s.description)
        .bind(secret)
        .bind(s.scope.as_str())
        .bind(flag(s.active))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::audit::insert(&mut tx, &audit(id), now).await?;
        tx.commit().await?;
        self.caches.changed(true).await;
        let hook = self.webhook(id).await?.ok_or_else(|| anyhow::anyhow!("webhook vanished after insert"))?;
        Ok(Inserted::Created(Box::new(hook)))
    }

    pub async fn webhook(&self, id: i64) -> anyhow::Result<Option<Webhook>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(webhook_from_row).transpose()?)
    }

    /// A user's webhooks, newest first.
    pub async fn list_webhooks(&self, user_id: i64, page: PageRequest) -> anyhow::Result<(Vec<Webhook>, i64)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhooks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(user_id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhooks WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(webhook_from_row).collect::<Result<_, _>>()?, count))
    }

    pub async fn update_webhook(&self, id: i64, s: &WebhookSettings, now: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query(
                "UPDATE webhooks SET url = $1, events = $2, description = $3, scope = $4, active = $5, updated_at = $6
                 WHERE id = $7",
            )
            .bind(s.url.as_str().to_string())
            .bind(s.events_json())
            .bind(&s.description)
            .bind(s.scope.as_str())
            .bind(flag(s.active))
            .bind(now)
            .bind(id),
        )
        .await?;
        self.caches.changed(true).await;
        // Resumed: its waiting deliveries are due.
        self.outbox_filled();
        Ok(())
    }

    /// Deletes a webhook and its deliveries.
    pub async fn delete_webhook(&self, id: i64, now: i64, audit: &AuditEntry) -> anyhow::Result<bool> {
        let (_writing, mut tx) = self.begin_write().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1").bind(id).execute(&mut *tx).await?;
        let res = sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if res.rows_affected() == 1 {
            super::audit::insert(&mut tx, audit, now).await?;
        }
        tx.commit().await?;
        self.caches.changed(true).await;
        Ok(res.rows_affected() == 1)
    }

    /// Who has active webhooks, from the cache when it can be believed.
    pub async fn webhook_owners(&self) -> Result<Arc<WebhookOwners>, sqlx::Error> {
        if let Some(o) = self.caches.webhook_owners() {
            return Ok(o);
        }
        let since = self.caches.epoch();
        let rows: Vec<(i64, String)> = sqlx::query_as(OWNERS).fetch_all(&self.pool).await?;
        Ok(self.keep_owners(since, rows))
    }

    /// `webhook_owners` inside a write transaction: a cache miss is read through `tx`, so a writer
    /// never waits for a second connection of the pool while it holds one.
    pub(crate) async fn webhook_owners_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<Arc<WebhookOwners>, sqlx::Error> {
        if let Some(o) = self.caches.webhook_owners() {
            return Ok(o);
        }
        let since = self.caches.epoch();
        let rows: Vec<(i64, String)> = sqlx::query_as(OWNERS).fetch_all(&mut **tx).await?;
        Ok(self.keep_owners(since, rows))
    }

    fn keep_owners(&self, since: u64, rows: Vec<(i64, String)>) -> Arc<WebhookOwners> {
        let mut owners = WebhookOwners::default();
        for (user, scope) in rows {
            owners.any_all |= scope == Scope::All.as_str();
            owners.users.insert(user);
        }
        let owners = Arc::new(owners);
        self.caches.put_webhook_owners(since, owners.clone());
        owners
    }

    /// Puts `event` in the outbox of every active webhook that hears it (its owner's with the
    /// event subscribed, and every `scope = all` one), inside `tx`: the event is stored if and
    /// only if the change it describes is. Returns how many deliveries were queued; after the
    /// commit, call `outbox_filled` when that is not zero.
    pub(crate) async fn enqueue_webhooks(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        event: &Event,
        now: i64,
    ) -> Result<usize, sqlx::Error> {
        self.enqueue_all(tx, &[(&[event.owner_id], event)], now).await
    }

    /// [`Store::enqueue_webhooks`] for content several users own together (a company's chat, heard
    /// by each of its agents): each webhook gets the event once.
    pub(crate) async fn enqueue_webhooks_to(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        owners: &[i64],
        event: &Event,
        now: i64,
    ) -> Result<usize, sqlx::Error> {
        self.enqueue_all(tx, &[(owners, event)], now).await
    }

    /// [`Store::enqueue_webhooks`] for a batch of events (an analytics batch's `share.viewed`
    /// and `share.downloaded`): a few statements whatever the batch's size.
    pub(crate) async fn enqueue_webhooks_batch(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        events: &[Event],
        now: i64,
    ) -> Result<usize, sqlx::Error> {
        let owners: Vec<[i64; 1]> = events.iter().map(|e| [e.owner_id]).collect();
        let items: Vec<(&[i64], &Event)> = owners.iter().map(|o| &o[..]).zip(events).collect();
        self.enqueue_all(tx, &items, now).await
    }

    /// Queues each event, heard by its owners, for every active webhook that hears it: one
    /// look-up of the webhooks, one allocation of ids and one insert for all of them.
    async fn enqueue_all(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        items: &[(&[i64], &Event)],
        now: i64,
    ) -> Result<usize, sqlx::Error> {
        let heard = self.webhook_owners_in(tx).await?;
        let items: Vec<&(&[i64], &Event)> =
            items.iter().filter(|(owners, _)| owners.iter().any(|o| heard.hears(*o))).collect();
        if items.is_empty() {
            return Ok(0);
        }
        let mut users: Vec<i64> = items.iter().flat_map(|(owners, _)| owners.iter().copied()).collect();
        users.sort_unstable();
        users.dedup();
        let list: Vec<String> = (0..users.len()).map(|i| format!("${}", i + 1)).collect();
        let mut q = sqlx::query_as::<_, (i64, i64, String, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT id, user_id, scope, events FROM webhooks
             WHERE active = 1 AND (user_id IN ({}) OR scope = 'all') ORDER BY id",
            list.join(", ")
        )));
        for u in &users {
            q = q.bind(*u);
        }
        let hooks: Vec<(i64, i64, bool, Vec<String>)> = q
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|(id, user, scope, events)| {
                (id, user, scope == Scope::All.as_str(), serde_json::from_str(&events).unwrap_or_default())
            })
            .collect();
        let created = rfc3339(now);
        let mut rows: Vec<(i64, String, &'static str, String)> = Vec::new();
        for (owners, event) in items {
            let kind = event.kind.as_str();
            let mut targets = hooks
                .iter()
                .filter(|(_, user, all, events)| (*all || owners.contains(user)) && events.iter().any(|e| e == kind))
                .map(|(id, ..)| *id)
                .peekable();
            if targets.peek().is_none() {
                continue;
            }
            let event_id = uuid::Uuid::new_v4().to_string();
            let body = payload(event.kind, &created, &event.data);
            for webhook_id in targets {
                rows.push((webhook_id, event_id.clone(), kind, body.clone()));
            }
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let first = next_ids(tx, "webhook_deliveries", rows.len() as i64).await?;
        const COLUMNS: &str = "id, webhook_id, event_id, event_type, payload, created_at";
        const TYPES: &str =
            "id BIGINT, webhook_id BIGINT, event_id TEXT, event_type TEXT, payload TEXT, created_at BIGINT";
        let json = self.dialect.encode_rows(
            COLUMNS,
            rows.iter().enumerate().map(|(i, (hook, event_id, kind, body))| {
                vec![
                    (first + i as i64).into(),
                    (*hook).into(),
                    event_id.as_str().into(),
                    (*kind).into(),
                    body.as_str().into(),
                    now.into(),
                ]
            }),
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, payload, status, attempts,
                next_attempt_at, created_at)
             SELECT id, webhook_id, event_id, event_type, payload, 'pending', 0, created_at, created_at
             FROM ({}) AS v",
            self.dialect.json_rows(COLUMNS, TYPES)
        )))
        .bind(json)
        .execute(&mut **tx)
        .await?;
        Ok(rows.len())
    }

    /// Queues `webhook.test` for one webhook (active or not: the owner asked for it).
    pub async fn enqueue_test(&self, webhook_id: i64, data: &serde_json::Value, now: i64) -> anyhow::Result<Delivery> {
        let (_writing, mut tx) = self.begin_write().await?;
        let event_id = uuid::Uuid::new_v4().to_string();
        let body = payload(EventType::Test, &rfc3339(now), data);
        let id = insert_delivery(&mut tx, webhook_id, &event_id, EventType::Test, &body, now).await?;
        tx.commit().await?;
        self.outbox_filled();
        self.delivery(id).await?.ok_or_else(|| anyhow::anyhow!("delivery vanished after insert"))
    }

    pub async fn delivery(&self, id: i64) -> anyhow::Result<Option<Delivery>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(delivery_from_row).transpose()?)
    }

    /// A webhook's deliveries, newest first.
    pub async fn list_deliveries(&self, webhook_id: i64, page: PageRequest) -> anyhow::Result<(Vec<Delivery>, i64)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(webhook_id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(webhook_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(delivery_from_row).collect::<Result<_, _>>()?, count))
    }

    /// Claims up to `limit` due pending deliveries of active webhooks for `token` until `until`
    /// (a lease: a crashed instance's claims run out and another instance takes them).
    pub async fn claim_deliveries(
        &self,
        token: &str,
        now: i64,
        until: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<Claimed>> {
        let skip_locked = match self.dialect {
            Dialect::Postgres => " FOR UPDATE OF d SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        // One statement claims and returns the rows (no second look-up of what was claimed).
        let claim = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2
             WHERE id IN (
                SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                WHERE d.status = 'pending' AND d.next_attempt_at <= $3
                  AND (d.claimed_until IS NULL OR d.claimed_until <= $3) AND w.active = 1
                ORDER BY d.next_attempt_at, d.id LIMIT $4{skip_locked})
             RETURNING {DELIVERY_COLUMNS}"
        )))
        .bind(token)
        .bind(until)
        .bind(now)
        .bind(limit);
        let rows = {
            let _writing = self.writing().await;
            claim.fetch_all(&self.writer).await?
        };
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let mut deliveries = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>, sqlx::Error>>()?;
        deliveries.sort_by_key(|d| (d.next_attempt_at, d.id));
        let mut hooks: Vec<i64> = deliveries.iter().map(|d| d.webhook_id).collect();
        hooks.sort_unstable();
        hooks.dedup();
        let marks = (1..=hooks.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let mut q =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id, url, secret FROM webhooks WHERE id IN ({marks})")));
        for h in &hooks {
            q = q.bind(*h);
        }
        let mut targets = std::collections::HashMap::new();
        for r in q.fetch_all(&self.pool).await? {
            targets.insert(
                r.try_get::<i64, _>("id")?,
                (r.try_get::<String, _>("url")?, r.try_get::<String, _>("secret")?),
            );
        }
        // A webhook deleted meanwhile took its deliveries with it.
        Ok(deliveries
            .into_iter()
            .filter_map(|d| {
                let (url, secret) = targets.get(&d.webhook_id)?.clone();
                Some(Claimed { delivery: d, url, secret })
            })
            .collect())
    }

    /// Records attempts of deliveries still claimed by their tokens, in one statement (one commit,
    /// one round trip to the database; each row found by its key from a `VALUES` list): for each,
    /// false when the claim was lost (its lease ran out and another worker took it).
    pub async fn finish_deliveries(&self, done: &[Finished]) -> anyhow::Result<Vec<bool>> {
        if done.is_empty() {
            return Ok(vec![]);
        }
        let rows = padded(done);
        let sql = format!(
            "UPDATE webhook_deliveries SET status = v.status, attempts = attempts + 1,
                next_attempt_at = v.next_attempt_at, response_status = v.response_status,
                response_body = v.response_body, last_error = v.last_error,
                delivered_at = CASE WHEN v.status = 'delivered' THEN v.at ELSE delivered_at END,
                claimed_by = NULL, claimed_until = NULL
             FROM ({}) AS v
             WHERE webhook_deliveries.id = v.id AND webhook_deliveries.claimed_by = v.token
               AND webhook_deliveries.status = 'pending'
             RETURNING webhook_deliveries.id",
            self.dialect.value_rows(
                "id, token, status, next_attempt_at, response_status, response_body, last_error, at",
                rows.len()
            ),
        );
        let mut q = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql));
        for Finished { id, token, attempt: a, at } in rows {
            q = q
                .bind(*id)
                .bind(token.as_str())
                .bind(a.status.as_str())
                .bind(a.next_attempt_at)
                .bind(a.response_status)
                .bind(a.response_body.as_deref())
                .bind(a.error.as_deref())
                .bind(*at);
        }
        let kept: HashSet<i64> = {
            let _writing = self.writing().await;
            q.fetch_all(&self.writer).await?.into_iter().map(|(id,)| id).collect()
        };
        Ok(done.iter().map(|f| kept.contains(&f.id)).collect())
    }

    /// Gives back claims of deliveries that were never attempted (a worker stopping): each
    /// `(id, token)` only while that token still holds it. Returns how many were given back.
    pub async fn release_deliveries(&self, held: &[(i64, String)]) -> anyhow::Result<u64> {
        if held.is_empty() {
            return Ok(0);
        }
        let rows = padded(held);
        let sql = format!(
            "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL
             FROM ({}) AS v
             WHERE webhook_deliveries.id = v.id AND webhook_deliveries.claimed_by = v.token
               AND webhook_deliveries.status = 'pending'",
            self.dialect.value_rows("id, token", rows.len()),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, token) in rows {
            q = q.bind(*id).bind(token.as_str());
        }
        let _writing = self.writing().await;
        Ok(q.execute(&self.writer).await?.rows_affected())
    }

    pub fn outbox_filled(&self) {
        self.outbox.notify_one();
    }

    /// What the delivery worker waits on between its polls.
    pub fn outbox(&self) -> &tokio::sync::Notify {
        &self.outbox
    }
}

/// `rows` padded to a power of two by repeating the last (a repeated row matches the same row with
/// the same values): statements shaped by their row count come in a few sizes, so each engine
/// prepares (and caches) a few of them.
fn padded<T>(rows: &[T]) -> Vec<&T> {
    let mut out: Vec<&T> = rows.iter().collect();
    if let Some(last) = rows.last() {
        out.resize(rows.len().next_power_of_two(), last);
    }
    out
}

async fn insert_delivery(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    webhook_id: i64,
    event_id: &str,
    kind: EventType,
    body: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let id = next_id(tx, "webhook_deliveries").await?;
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, payload, status, attempts,
            next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
    )
    .bind(id)
    .bind(webhook_id)
    .bind(event_id)
    .bind(kind.as_str())
    .bind(body)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}
