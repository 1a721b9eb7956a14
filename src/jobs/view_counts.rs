//! Share-page views are counted in memory and written in batches, so that the recipient's page
//! never waits on a database write (SQLite has one writer). Flushed every second and on shutdown.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::app::AppState;

/// Pending view counts per share id.
#[derive(Default)]
pub struct ViewCounts {
    pending: Mutex<HashMap<i64, i64>>,
}

impl ViewCounts {
    pub fn add(&self, share_id: i64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *p.entry(share_id).or_insert(0) += 1;
    }

    fn take(&self) -> HashMap<i64, i64> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn give_back(&self, counts: HashMap<i64, i64>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, n) in counts {
            *p.entry(id).or_insert(0) += n;
        }
    }
}

/// Writes the pending counts; what cannot be written stays pending for the next round.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let counts = state.views.take();
    if counts.is_empty() {
        return Ok(0);
    }
    let n = counts.len();
    if let Err(e) = state.store.add_views(&counts).await {
        state.views.give_back(counts);
        return Err(e);
    }
    Ok(n)
}
