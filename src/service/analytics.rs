//! Analytics reports (SPEC §5) of an asset or a link, by the app's clock.

use crate::analytics::report::{Report, build};
use crate::app::AppState;
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
