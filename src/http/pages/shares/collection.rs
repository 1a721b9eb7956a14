//! The recipient's page of a collection link (SPEC §10): every file with its thumbnail, name,
//! size and inline preview, one "Download all" (the ZIP) and per-file downloads; JSON on
//! `Accept: application/json`. Works without JavaScript: real links, `<details>` players.

use askama::Template;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::{Meta, SharedCollection, SharedItem, SharedView, private_json};
use crate::app::AppState;
use crate::domain::assets::Asset;
use crate::domain::collections::Collection;
use crate::domain::time::rfc3339;
use crate::http::share_access::Access;
use crate::service::shares::share_url;

/// What both answers of a collection link are built from.
pub(super) struct CollectionView<'a> {
    pub access: &'a Access,
    pub collection: &'a Collection,
    pub items: &'a [Asset],
    pub base: &'a str,
    /// `?token=…` when a protected link was opened with its token in the URL.
    pub token_query: &'a str,
}

/// One file on the page.
struct ItemRow {
    id: i64,
    name: String,
    size: String,
    /// `image`, `video`, `audio`, `pdf` or `file` (which player its preview uses).
    media: &'static str,
    thumbnail_url: Option<String>,
    preview_url: Option<String>,
    download_url: Option<String>,
    /// The page showing this file's comments (`?file=ID`); None without `allow_comments`.
    comments_page: Option<String>,
}

/// The file whose comments are shown under the grid (`?file=ID`), its comments, and where its
/// form posts.
pub(super) struct FileComments {
    id: i64,
    name: String,
    action: String,
    section: super::comments::CommentSection,
}

impl FileComments {
    pub(super) fn new(view: &CollectionView<'_>, file: &Asset, section: super::comments::CommentSection) -> Self {
        let action = format!("/share/{}/files/{}/comments{}", view.access.share.uuid, file.id, view.token_query);
        FileComments { id: file.id, name: file.name.clone(), action, section }
    }
}

/// What the page says of the file whose comments it shows.
struct CommentedFile {
    id: i64,
    name: String,
    action: String,
}

#[derive(Template)]
#[template(path = "shares/collection.html")]
struct CollectionPage {
    shell: crate::http::pages::Shell,
    meta: Meta,
    media: &'static str,
    title: String,
    description: String,
    item_count: i64,
    total_size: String,
    items: Vec<ItemRow>,
    zip_url: Option<String>,
    expires_at: Option<String>,
    downloads_remaining: Option<i64>,
    beacon_url: String,
    /// A file is a PDF with a preview: the page loads the document viewer.
    has_pdf: bool,
    /// The text the document viewer tiles over PDF pages (watermarked links).
    watermark: Option<String>,
    /// The owner's (or an admin's) tools; None for everyone else.
    owner: Option<super::OwnerPanel>,
    /// The file whose comments are shown under the grid, and its comments.
    commented: Option<CommentedFile>,
    comments: super::comments::CommentSection,
    /// The signed-in viewer comments under this name; guests give one.
    viewer_name: Option<String>,
}

impl CollectionView<'_> {
    fn url(&self, tail: &str) -> String {
        format!("{}/share/{}/{tail}{}", self.base, self.access.share.uuid, self.token_query)
    }

    fn thumbnail_url(&self, a: &Asset) -> Option<String> {
        (self.access.share.allow_preview && a.thumb_key.is_some())
            .then(|| self.url(&format!("files/{}/thumbnail", a.id)))
    }

    fn preview_url(&self, a: &Asset) -> Option<String> {
        super::files::previewable_file(self.access, a).then(|| self.url(&format!("files/{}/preview", a.id)))
    }

    fn download_url(&self, a: &Asset) -> Option<String> {
        self.access.share.allow_download.then(|| self.url(&format!("files/{}/download", a.id)))
    }

    fn comments_url(&self, a: &Asset) -> Option<String> {
        self.access.share.allow_comments.then(|| self.url(&format!("files/{}/comments", a.id)))
    }

    fn zip_url(&self) -> Option<String> {
        self.access.share.allow_download.then(|| self.url("download"))
    }

    pub fn json(&self) -> Response {
        let share = &self.access.share;
        let items = self
            .items
            .iter()
            .map(|a| SharedItem {
                asset_id: a.id,
                name: a.name.clone(),
                mime_type: a.mime_type.clone(),
                media_type: a.media_type,
                size: a.size,
                width: a.width,
                height: a.height,
                thumbnail_url: self.thumbnail_url(a),
                preview_url: self.preview_url(a),
                download_url: self.download_url(a),
                comments_url: self.comments_url(a),
            })
            .collect();
        private_json(&SharedView {
            uuid: share.uuid.clone(),
            title: share.title.clone(),
            description: share.description.clone(),
            share_type: share.share_type,
            status: self.access.status,
            file: None,
            collection: Some(SharedCollection {
                title: self.collection.title.clone(),
                item_count: self.collection.item_count,
                total_size: self.collection.total_size,
                items,
            }),
            allow_preview: share.allow_preview,
            allow_download: share.allow_download,
            allow_comments: share.allow_comments,
            preview_url: None,
            download_url: self.zip_url(),
            expires_at: share.expires_at.map(rfc3339),
            downloads_remaining: share.downloads_remaining(),
        })
    }

    pub fn html(
        &self,
        state: &AppState,
        shell: crate::http::pages::Shell,
        watermark: Option<String>,
        owner: Option<super::OwnerPanel>,
        file_comments: Option<FileComments>,
        viewer_name: Option<String>,
    ) -> Response {
        let share = &self.access.share;
        let uuid = &share.uuid;
        let count = self.collection.item_count;
        let files = if count == 1 { "1 file".to_string() } else { format!("{count} files") };
        let meta = if share.share_type.is_open() {
            Meta {
                title: share.title.clone(),
                description: if share.description.is_empty() {
                    format!("{files} shared with Vitrine")
                } else {
                    share.description.clone()
                },
                // Link previews show the first file that has a thumbnail (no token: open links only).
                image: self
                    .items
                    .iter()
                    .find(|a| a.thumb_key.is_some() && share.allow_preview)
                    .map(|a| format!("{}/share/{uuid}/files/{}/thumbnail", self.base, a.id)),
                url: share_url(state, uuid),
                oembed: Some(format!(
                    "{}/oembed?format=json&url={}",
                    self.base,
                    crate::domain::shares::encode(&share_url(state, uuid))
                )),
            }
        } else {
            Meta {
                title: if share.share_type == crate::domain::shares::ShareType::Protected {
                    "Protected files".into()
                } else {
                    "Private files".into()
                },
                description: "Files shared with Vitrine".into(),
                image: None,
                url: share_url(state, uuid),
                oembed: None,
            }
        };
        let items: Vec<ItemRow> = self
            .items
            .iter()
            .map(|a| ItemRow {
                id: a.id,
                name: a.name.clone(),
                size: crate::http::pages::human_size(a.size),
                media: crate::domain::assets::preview_kind(a),
                thumbnail_url: self.thumbnail_url(a),
                preview_url: self.preview_url(a),
                download_url: self.download_url(a),
                comments_page: share.allow_comments.then(|| {
                    let token = self.token_query.strip_prefix("?token=");
                    super::comments::comments_url(uuid, token, Some(a.id), &[])
                }),
            })
            .collect();
        let (commented, comments) = match file_comments {
            Some(f) => (Some(CommentedFile { id: f.id, name: f.name, action: f.action }), f.section),
            None => (None, Default::default()),
        };
        let has_pdf = items.iter().any(|i| i.media == "pdf" && i.preview_url.is_some());
        let mut r = crate::http::pages::render(&CollectionPage {
            shell,
            meta,
            media: "collection",
            title: share.title.clone(),
            description: share.description.clone(),
            item_count: count,
            total_size: crate::http::pages::human_size(self.collection.total_size),
            items,
            zip_url: self.zip_url(),
            expires_at: share.expires_at.map(rfc3339),
            downloads_remaining: share.downloads_remaining(),
            beacon_url: format!("/share/{uuid}/beacon{}", self.token_query),
            has_pdf,
            watermark,
            owner,
            commented,
            comments,
            viewer_name,
        });
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Cookie, Authorization"));
        r
    }
}
