//! "Download all" of a collection link: one ZIP written while it is sent (SPEC §10), from the
//! blob store (local or S3) through `zipstream`: nothing is copied first, memory does not grow
//! with the total size, a client that goes away stops the reads (the stream is dropped).
//!
//! It counts one download of the link (`count_download` with `Counted::Zip`: exact limit, HEAD,
//! bots and prefetches never count, refunded when the body is dropped before its first byte) and,
//! once bytes flow, one for each file in `file_breakdown`. `Range` is not supported on the
//! archive (a deflated archive's length is unknown in advance): the answer is always 200 with the
//! whole ZIP (`Accept-Ranges: none`), and a Range request within the resume window of a counted
//! ZIP gets it again without counting.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;

use crate::app::AppState;
use crate::blob::{Disposition, content_disposition};
use crate::domain::assets::Asset;
use crate::domain::collections::Collection;
use crate::error::AppError;
use crate::http::share_access::{Access, Counted, ShareRequest, count_download};
use crate::zipstream::{Entry, entry_names, should_compress, stored_length, zip_stream};

pub async fn download(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    method: &Method,
    _collection: &Collection,
    items: &[Asset],
) -> Result<Response, AppError> {
    let ids: Vec<i64> = items.iter().map(|a| a.id).collect();
    count_download(state, req, access, method, Counted::Zip(&ids), serve_zip(state, access, method, items)).await
}

/// The archive's file name: the link's title, sanitised like an entry name, with `.zip`.
fn archive_name(title: &str) -> String {
    let title = title.trim();
    let base = if title.is_empty() { "collection" } else { title };
    entry_names(&[&format!("{base}.zip")]).pop().unwrap_or_else(|| "collection.zip".into())
}

async fn serve_zip(state: &AppState, access: &Access, method: &Method, items: &[Asset]) -> Result<Response, AppError> {
    let names = entry_names(&items.iter().map(|a| a.name.as_str()).collect::<Vec<_>>());
    let entries: Vec<Entry> = items
        .iter()
        .zip(names)
        .map(|(a, name)| Entry {
            name,
            size: a.size.max(0) as u64,
            modified_ms: a.created_at,
            compress: should_compress(&a.mime_type),
        })
        .collect();
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/zip")
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(Disposition::Attachment, &archive_name(&access.share.title)),
        )
        .header(header::ACCEPT_RANGES, "none")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox; frame-ancestors 'self'")
        .header(header::CACHE_CONTROL, "private, no-store");
    if let Some(len) = stored_length(&entries) {
        b = b.header(header::CONTENT_LENGTH, len);
    }
    if method == Method::HEAD {
        return b.body(Body::empty()).map_err(AppError::internal);
    }
    let keys: Vec<String> = items.iter().map(|a| a.blob_key.clone()).collect();
    let blobs = state.blobs.clone();
    let stream = zip_stream(entries, move |i| {
        let blobs = blobs.clone();
        let key = keys[i].clone();
        async move { blobs.open(&key, None).await.map(|b| b.stream).map_err(std::io::Error::other) }
    })
    .map(|chunk| {
        if let Err(e) = &chunk {
            tracing::warn!(error = %e, "a collection ZIP failed while it was sent");
        }
        chunk
    });
    b.body(Body::from_stream(stream)).map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_archive_is_named_after_the_title_without_separators() {
        assert_eq!(super::archive_name("Q3 deliverables"), "Q3 deliverables.zip");
        let n = super::archive_name("../a/b\\c");
        assert!(n.ends_with(".zip") && !n.contains('/') && !n.contains('\\'), "{n}");
        assert_eq!(super::archive_name("  "), "collection.zip");
    }
}
