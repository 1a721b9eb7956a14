//! Analytics reports (SPEC §5) of an asset or a link, by the app's clock.

use crate::analytics::report::{FileDownloads, Report, build};
use crate::app::AppState;
use crate::domain::shares::{Share, ShareTarget};
use crate::domain::time::day_of;
use crate::error::AppResult;
use crate::store::analytics::Scope;

/// Builds the report of `scope` for the `days` days up to today (by the app's clock).
pub async fn report(state: &AppState, scope: Scope, days: u32) -> AppResult<Report> {
    let now = state.clock.now_ms();
    let from = day_of(now - (days as i64 - 1) * 86_400_000);
    let to = day_of(now);
    let data = state.store.analytics_report(scope, &from, &to).await?;
    Ok(build(data, now, days))
}

/// The report of one link; a collection link's adds `file_breakdown` (every file of the
/// collection in its order, zeros included, then files downloaded before they left it).
pub async fn link_report(state: &AppState, share: &Share, days: u32) -> AppResult<Report> {
    let mut out = report(state, Scope::Share(share.id), days).await?;
    if let ShareTarget::Collection(id) = share.target {
        let mut counts: std::collections::HashMap<i64, i64> =
            state.store.file_downloads(share.id).await?.into_iter().collect();
        let mut files: Vec<FileDownloads> = state
            .store
            .collection_items(id)
            .await?
            .into_iter()
            .map(|i| FileDownloads {
                asset_id: i.asset.id,
                downloads: counts.remove(&i.asset.id).unwrap_or(0),
                name: i.asset.name,
            })
            .collect();
        let mut gone: Vec<(i64, i64)> = counts.into_iter().collect();
        gone.sort_unstable();
        for (asset_id, downloads) in gone {
            let name = state.store.asset(asset_id).await?.map(|a| a.name).unwrap_or_default();
            files.push(FileDownloads { asset_id, name, downloads });
        }
        out.file_breakdown = Some(files);
    }
    Ok(out)
}
