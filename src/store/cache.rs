//! A short-lived cache of the rows behind a share page (link + asset), so that the recipient's
//! page, the hottest read, rarely touches the database. Every write through this Store clears
//! it at once; other instances see a change within `TTL`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::assets::Asset;
use crate::domain::shares::Share;

pub const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 50_000;

pub type ShareView = Arc<(Share, Asset)>;

#[derive(Default)]
pub struct ShareCache {
    entries: Mutex<HashMap<String, (Instant, ShareView)>>,
}

impl ShareCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, ShareView)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, uuid: &str) -> Option<ShareView> {
        let map = self.lock();
        map.get(uuid).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }

    pub fn put(&self, uuid: &str, view: ShareView) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (at, _)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(uuid.to_string(), (Instant::now(), view));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}
