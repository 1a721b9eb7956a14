//! The owner's collection pages (SPEC §10): the list with a form that creates one, and a
//! collection's page with its files (thumbnails, move up/down, remove), a picker that adds files
//! from the library, and forms to rename or delete it. Every action is a plain CSRF-protected
//! form that answers with a redirect (no JavaScript needed); a refused one shows the page again
//! with the reason.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::CsrfForm;
use super::auth::csrf_token;
use crate::app::AppState;
use crate::domain::assets::Asset;
use crate::domain::collections::{CollectionPatch, NewCollection, parse_collection_title};
use crate::domain::pagination::PageRequest;
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::error::AppError;
use crate::http::api::assets::AssetOut;
use crate::http::extract::{ApiForm, ApiPath, ApiQuery, ClientIp, CsrfCookie, PageUser};
use crate::service::collections::{self as service, Move, Scope, visible_collection};
use crate::service::shares::create_collection_share;

use super::library::{CreateLinkForm, LinkRow, form_to_settings, row as link_row};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_page, create_form))
        .routes(routes!(collection_page, edit_form))
        .routes(routes!(delete_form))
        .routes(routes!(add_form))
        .routes(routes!(remove_form))
        .routes(routes!(move_form))
        .routes(routes!(share_form))
}

/// Collections and library files per page.
const PER_PAGE: u32 = 50;

struct CollectionRow {
    id: i64,
    title: String,
    item_count: i64,
    total_size: String,
    updated_at: String,
}

struct FileRow {
    id: i64,
    title: String,
    name: String,
    media_type: &'static str,
    size: String,
    thumbnail_url: Option<String>,
}

fn file_row(state: &AppState, a: &Asset) -> FileRow {
    FileRow {
        id: a.id,
        title: a.title.clone(),
        name: a.name.clone(),
        media_type: a.media_type.as_str(),
        size: super::human_size(a.size),
        thumbnail_url: AssetOut::new(state, a).thumbnail_url,
    }
}

#[derive(Template)]
#[template(path = "collections/list.html")]
struct ListPage {
    shell: super::Shell,
    csrf: String,
    collections: Vec<CollectionRow>,
    total: i64,
    page: u32,
    next: Option<u32>,
    previous: Option<u32>,
    title: String,
    description: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "collections/page.html")]
struct CollectionPage {
    shell: super::Shell,
    csrf: String,
    id: i64,
    title: String,
    description: String,
    item_count: i64,
    total_size: String,
    updated_at: String,
    items: Vec<FileRow>,
    library: Vec<FileRow>,
    library_total: i64,
    files_page: u32,
    files_next: Option<u32>,
    files_previous: Option<u32>,
    error: Option<String>,
    /// The share form's action, its error, the link just created, and the collection's links.
    share_action: String,
    share_error: Option<String>,
    created: Option<String>,
    back: String,
    links: Vec<LinkRow>,
}

fn no_store(mut r: Response, set: Option<HeaderValue>) -> Response {
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn sign_in(next: &str) -> Response {
    Redirect::to(&format!("/login?next={next}")).into_response()
}

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

fn not_found() -> Response {
    super::error_page(StatusCode::NOT_FOUND, "Not found", "You have no such collection.")
}

/// A page number from the query; anything else is page 1.
fn page_number(raw: Option<&str>) -> u32 {
    raw.and_then(|p| p.trim().parse::<u32>().ok()).filter(|p| (1..=1_000_000).contains(p)).unwrap_or(1)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// 1-based page of collections.
    pub page: Option<String>,
}

async fn render_list(
    state: &AppState,
    shell: super::Shell,
    user: &User,
    csrf: &CsrfCookie,
    page: u32,
    form: (String, String),
    error: Option<String>,
) -> Response {
    let req = PageRequest { page, page_size: PER_PAGE };
    let (collections, total) = match service::list(state, user, Scope::Own, req).await {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let shown = req.offset() + collections.len() as i64;
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let mut r = super::render(&ListPage {
        shell,
        csrf: token,
        collections: collections
            .iter()
            .map(|c| CollectionRow {
                id: c.id,
                title: c.title.clone(),
                item_count: c.item_count,
                total_size: super::human_size(c.total_size),
                updated_at: rfc3339(c.updated_at),
            })
            .collect(),
        total,
        page,
        next: (shown < total).then_some(page + 1),
        previous: (page > 1).then(|| page - 1),
        title: form.0,
        description: form.1,
        error: error.clone(),
    });
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    no_store(r, set)
}

/// Your collections, with a form that creates one.
#[utoipa::path(get, path = "/collections", tag = "pages", params(ListQuery),
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first")))]
pub async fn list_page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Response {
    let Some(user) = user else { return sign_in("/collections") };
    render_list(&state, shell, &user, &csrf, page_number(q.page.as_deref()), Default::default(), None).await
}

/// The create and rename forms' fields.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CollectionForm {
    pub csrf_token: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
}

/// Creates a collection and opens it; a refused title shows the list again with the reason.
#[utoipa::path(post, path = "/collections", tag = "pages",
    request_body(content = CollectionForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "created: to its page"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed")))]
pub async fn create_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiForm(form): ApiForm<CollectionForm>,
) -> Response {
    let Some(user) = user else { return sign_in("/collections") };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let title = form.title.unwrap_or_default();
    let description = form.description.unwrap_or_default();
    let new = match (parse_collection_title(&title), crate::domain::assets::parse_description(&description)) {
        (Ok(title), Ok(description)) => NewCollection { title, description },
        (Err(why), _) => {
            let msg = format!("Title: {why}.");
            return render_list(&state, shell, &user, &csrf, 1, (title, description), Some(msg)).await;
        }
        (_, Err(why)) => {
            let msg = format!("Description: {why}.");
            return render_list(&state, shell, &user, &csrf, 1, (title, description), Some(msg)).await;
        }
    };
    match service::create(&state, &user, new).await {
        Ok(c) => see_other(&format!("/collections/{}", c.id)),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CollectionQuery {
    /// 1-based page of the library picker.
    pub files_page: Option<String>,
    /// The link just created (a notice on the page).
    pub created: Option<String>,
}

/// What the page shows besides the collection: an action's error, or the share form's.
#[derive(Default)]
struct Notices {
    error: Option<String>,
    share_error: Option<String>,
    created: Option<String>,
}

async fn render_collection(
    state: &AppState,
    shell: super::Shell,
    user: &User,
    id: i64,
    csrf: &CsrfCookie,
    files_page: u32,
    notices: Notices,
) -> Response {
    let Notices { error, share_error, created } = notices;
    let c = match visible_collection(state, user, id).await {
        Ok(c) => c,
        Err(AppError::NotFound(_)) => return not_found(),
        Err(e) => return e.into_response(),
    };
    let items = match service::items(state, &c).await {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let req = PageRequest { page: files_page, page_size: PER_PAGE };
    let (library, library_total) = match state.store.assets_outside_collection(c.owner_id, c.id, req).await {
        Ok(x) => x,
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let links = match state.store.shares_of_collection(c.id).await {
        Ok(l) => l.iter().map(|s| link_row(state, s)).collect(),
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let shown = req.offset() + library.len() as i64;
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let mut r = super::render(&CollectionPage {
        shell,
        csrf: token,
        id: c.id,
        title: c.title.clone(),
        description: c.description.clone(),
        item_count: c.item_count,
        total_size: super::human_size(c.total_size),
        updated_at: rfc3339(c.updated_at),
        items: items.iter().map(|i| file_row(state, &i.asset)).collect(),
        library: library.iter().map(|a| file_row(state, a)).collect(),
        library_total,
        files_page,
        files_next: (shown < library_total).then_some(files_page + 1),
        files_previous: (files_page > 1).then(|| files_page - 1),
        error: error.clone(),
        share_action: format!("/collections/{}/shares", c.id),
        share_error: share_error.clone(),
        created,
        back: format!("/collections/{}", c.id),
        links,
    });
    if error.is_some() || share_error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    no_store(r, set)
}

/// One of your collections: its files in order, and the forms that change it.
#[utoipa::path(get, path = "/collections/{id}", tag = "pages",
    params(("id" = i64, Path, description = "collection id"), CollectionQuery),
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 404, description = "no such collection of yours", content_type = "text/html")))]
pub async fn collection_page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<CollectionQuery>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/collections/{id}")) };
    let notices = Notices { created: q.created, ..Notices::default() };
    render_collection(&state, shell, &user, id, &csrf, page_number(q.files_page.as_deref()), notices).await
}

/// An error as a sentence for the page: a validation error's reasons without the field names.
fn sentence(e: &AppError) -> String {
    let text = match e {
        AppError::Validation { fields, .. } if !fields.is_empty() => {
            fields.values().cloned().collect::<Vec<_>>().join("; ")
        }
        other => other.public_message(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str().trim_end_matches('.')),
        None => text,
    }
}

/// What an action did: back to the collection's page, or the page again with the reason.
async fn after(
    state: &AppState,
    shell: super::Shell,
    user: &User,
    id: i64,
    csrf: &CsrfCookie,
    result: Result<(), AppError>,
) -> Response {
    match result {
        Ok(()) => see_other(&format!("/collections/{id}")),
        Err(AppError::NotFound("collection")) => not_found(),
        Err(AppError::NotFound(_)) => {
            let error = Some("That file is not in this collection.".into());
            render_collection(state, shell, user, id, csrf, 1, Notices { error, ..Notices::default() }).await
        }
        Err(e) if e.status().is_client_error() => {
            let notices = Notices { error: Some(sentence(&e)), ..Notices::default() };
            render_collection(state, shell, user, id, csrf, 1, notices).await
        }
        Err(e) => e.into_response(),
    }
}

/// Renames the collection or changes its description.
#[utoipa::path(post, path = "/collections/{id}", tag = "pages", params(("id" = i64, Path, description = "collection id")),
    request_body(content = CollectionForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "saved: back to the collection"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed"), (status = 404, description = "no such collection of yours", content_type = "text/html")))]
pub async fn edit_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath(id): ApiPath<i64>,
    ApiForm(form): ApiForm<CollectionForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/collections/{id}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let patch = match (
        parse_collection_title(form.title.as_deref().unwrap_or_default()),
        crate::domain::assets::parse_description(form.description.as_deref().unwrap_or_default()),
    ) {
        (Ok(title), Ok(description)) => {
            Ok(CollectionPatch { title: Some(title), description: Some(description), order: None })
        }
        (Err(why), _) => Err(AppError::validation("title", why)),
        (_, Err(why)) => Err(AppError::validation("description", why)),
    };
    let result = match patch {
        Ok(p) => service::update(&state, &user, id, p).await.map(drop),
        Err(e) => visible_collection(&state, &user, id).await.and(Err(e)),
    };
    after(&state, shell, &user, id, &csrf, result).await
}

/// Deletes the collection (and its links); the files stay in the library.
#[utoipa::path(post, path = "/collections/{id}/delete", tag = "pages", params(("id" = i64, Path, description = "collection id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "deleted: to the list"), (status = 403, description = "CSRF check failed"),
        (status = 404, description = "no such collection of yours", content_type = "text/html")))]
pub async fn delete_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
    ApiForm(form): ApiForm<CsrfForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/collections/{id}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    match service::delete(&state, &user, id, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await {
        Ok(()) => see_other("/collections"),
        Err(AppError::NotFound(_)) => not_found(),
        Err(e) => e.into_response(),
    }
}

/// The picker's fields: one `asset_ids` per ticked file.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code, reason = "documents the form read as pairs by add_form (asset_ids repeats)")]
pub struct AddForm {
    csrf_token: Option<String>,
    asset_ids: Vec<i64>,
}

/// Adds the ticked library files after the present ones.
#[utoipa::path(post, path = "/collections/{id}/items", tag = "pages", params(("id" = i64, Path, description = "collection id")),
    request_body(content = AddForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "added: back to the collection"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed"), (status = 404, description = "no such collection of yours", content_type = "text/html")))]
pub async fn add_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath(id): ApiPath<i64>,
    ApiForm(pairs): ApiForm<Vec<(String, String)>>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/collections/{id}")) };
    let token = pairs.iter().find(|(k, _)| k == "csrf_token").map(|(_, v)| v.as_str());
    if let Some(page) = super::form_refusal(&csrf, token) {
        return page;
    }
    let raw: Vec<&str> = pairs.iter().filter(|(k, _)| k == "asset_ids").map(|(_, v)| v.as_str()).collect();
    let ids: Result<Vec<i64>, AppError> = raw
        .iter()
        .map(|v| v.trim().parse::<i64>().ok().filter(|n| *n > 0))
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| AppError::validation("asset_ids", "must be file ids"))
        .and_then(|ids| {
            let list = serde_json::Value::from(ids);
            crate::domain::collections::parse_asset_ids(&list)
                .map_err(|_| AppError::validation("asset_ids", "tick at least one file to add (at most 1000)"))
        });
    let result = match ids {
        Ok(ids) => service::add_items(&state, &user, id, &ids).await.map(drop),
        Err(e) => visible_collection(&state, &user, id).await.and(Err(e)),
    };
    after(&state, shell, &user, id, &csrf, result).await
}

/// Takes one file out of the collection.
#[utoipa::path(post, path = "/collections/{id}/items/{asset_id}/remove", tag = "pages",
    params(("id" = i64, Path, description = "collection id"), ("asset_id" = i64, Path, description = "asset id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "removed: back to the collection"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed"), (status = 404, description = "no such collection of yours", content_type = "text/html")))]
pub async fn remove_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath((id, asset_id)): ApiPath<(i64, i64)>,
    ApiForm(form): ApiForm<CsrfForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/collections/{id}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let result = service::remove_item(&state, &user, id, asset_id).await.map(drop);
    after(&state, shell, &user, id, &csrf, result).await
}

/// The move buttons' fields.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MoveForm {
    pub csrf_token: Option<String>,
    /// `up` or `down`.
    pub direction: Option<String>,
}

/// Moves one file up or down by one place.
#[utoipa::path(post, path = "/collections/{id}/items/{asset_id}/move", tag = "pages",
    params(("id" = i64, Path, description = "collection id"), ("asset_id" = i64, Path, description = "asset id")),
    request_body(content = MoveForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "moved: back to the collection"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed"), (status = 404, description = "no such collection of yours", content_type = "text/html")))]
pub async fn move_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath((id, asset_id)): ApiPath<(i64, i64)>,
    ApiForm(form): ApiForm<MoveForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/collections/{id}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let result = match form.direction.as_deref() {
        Some("up") => service::move_item(&state, &user, id, asset_id, Move::Up).await,
        Some("down") => service::move_item(&state, &user, id, asset_id, Move::Down).await,
        _ => match visible_collection(&state, &user, id).await {
            Ok(_) => Err(AppError::validation("direction", "must be up or down")),
            Err(e) => Err(e),
        },
    };
    after(&state, shell, &user, id, &csrf, result).await
}

/// Creates a link to the collection from the share form (SPEC §10: the settings and rules of an
/// asset link); errors show the page again with the reason.
#[utoipa::path(post, path = "/collections/{id}/shares", tag = "pages", params(("id" = i64, Path, description = "collection id")),
    request_body(content = CreateLinkForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "created: back to the collection"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed"), (status = 404, description = "no such collection of yours", content_type = "text/html")))]
pub async fn share_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
    ApiForm(form): ApiForm<CreateLinkForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/collections/{id}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let who = crate::service::audit::who(&state, Some(user.id), Some(ip.0));
    let result = match form_to_settings(form) {
        Ok(input) => create_collection_share(&state, &user, id, input, &who).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(share) => see_other(&format!("/collections/{id}?created={}", share.uuid)),
        Err(AppError::NotFound(_)) => not_found(),
        Err(e) if e.status().is_client_error() => {
            let notices = Notices { share_error: Some(e.public_message()), ..Notices::default() };
            render_collection(&state, shell, &user, id, &csrf, 1, notices).await
        }
        Err(e) => e.into_response(),
    }
}
