//! "Download all" of a collection link: one ZIP written while it is sent (SPEC §10).

use axum::http::Method;
use axum::response::Response;

use crate::app::AppState;
use crate::domain::assets::Asset;
use crate::domain::collections::Collection;
use crate::error::AppError;
use crate::http::share_access::{Access, ShareRequest};

pub async fn download(
    _state: &AppState,
    _req: &ShareRequest,
    _access: &Access,
    _method: &Method,
    _collection: &Collection,
    _items: &[Asset],
) -> Result<Response, AppError> {
    Err(AppError::NotFound("zip"))
}
