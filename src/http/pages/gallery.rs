//! Gallery pages (SPEC §6): the public `/gallery/` (cards, category filter, pagination), and the
//! dashboard's `/dashboard/gallery/` (search every asset, share to the gallery, your posts). Both
//! work without JavaScript: actions are forms with a CSRF token that redirect back.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::csrf_token;
use crate::app::AppState;
use crate::domain::assets::CONTENT_TYPES;
use crate::domain::gallery::{
    CATEGORIES, NewPost, Post, ShareMediaBody, category_label, content_type_label, parse_category, parse_search,
};
use crate::domain::pagination::PageRequest;
use crate::domain::users::User;
use crate::error::{AppError, ErrorCode};
use crate::http::api::gallery::media_item;
use crate::http::extract::{ApiForm, ApiPath, ApiQuery, CsrfCookie, PageUser};
use crate::service::gallery::{post_links, share, staff, unshare};
use crate::store::gallery::PostFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(gallery))
        .routes(routes!(dashboard))
        .routes(routes!(share_form))
        .routes(routes!(delete_form))
}

const PAGE_SIZE: u32 = 24;

/// One card of the gallery.
pub struct Card {
    pub id: i64,
    pub title: String,
    pub caption: String,
    pub category: String,
    pub category_label: &'static str,
    pub media_type: String,
    pub file_url: String,
    pub thumbnail_url: Option<String>,
    pub attribution: String,
    pub shared_by: String,
    pub shared_at: String,
}

fn card(state: &AppState, p: &Post) -> Card {
    let (file_url, thumbnail_url) = post_links(state, p);
    Card {
        id: p.id,
        title: p.asset_title.clone(),
        caption: p.caption.clone(),
        category: p.category.clone(),
        category_label: category_label(&p.category),
        media_type: p.asset_media_type.clone(),
        file_url,
        thumbnail_url,
        attribution: crate::domain::gallery::attribution_text(&p.owner_name, None),
        shared_by: p.shared_by_name.clone(),
        shared_at: crate::domain::time::rfc3339(p.shared_at),
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices(values: &[&str], label: impl Fn(&str) -> String, selected: Option<&str>) -> Vec<Choice> {
    values.iter().map(|v| Choice { value: v.to_string(), label: label(v), selected: selected == Some(*v) }).collect()
}

#[derive(Template)]
#[template(path = "gallery/index.html")]
struct GalleryPage {
    shell: super::Shell,
    cards: Vec<Card>,
    categories: Vec<Choice>,
    category: Option<String>,
    count: i64,
    page: u32,
    pages: i64,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct GalleryQuery {
    /// One of the five categories.
    pub category: Option<String>,
    pub page: Option<String>,
}

fn gallery_href(category: Option<&str>, page: u32) -> String {
    let mut u = url::form_urlencoded::Serializer::new(String::new());
    if let Some(c) = category {
        u.append_pair("category", c);
    }
    if page > 1 {
        u.append_pair("page", &page.to_string());
    }
    let q = u.finish();
    if q.is_empty() { "/gallery/".into() } else { format!("/gallery/?{q}") }
}

/// The public gallery: curated posts as cards, newest first.
#[utoipa::path(get, path = "/gallery", tag = "pages", params(GalleryQuery),
    responses((status = 200, description = "HTML gallery", content_type = "text/html"), (status = 400, description = "bad filter")))]
pub async fn gallery(
    State(state): State<AppState>,
    shell: super::Shell,
    ApiQuery(q): ApiQuery<GalleryQuery>,
) -> Response {
    let category = match q.category.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(c) => match parse_category(c) {
            Ok(c) => Some(c),
            Err(_) => {
                return super::error_page(StatusCode::BAD_REQUEST, "Unknown category", "There is no such category.");
            }
        },
    };
    let page = match PageRequest::try_from(&crate::domain::pagination::PageQuery {
        page: q.page.clone(),
        page_size: Some(PAGE_SIZE.to_string()),
    }) {
        Ok(p) => p,
        Err(_) => return super::error_page(StatusCode::BAD_REQUEST, "Unknown page", "Pages are numbered from 1."),
    };
    let filter = PostFilter { category: category.clone(), shared_by: None };
    let (posts, count) = match state.store.gallery_posts(&filter, page).await {
        Ok(x) => x,
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let pages = (count + i64::from(PAGE_SIZE) - 1) / i64::from(PAGE_SIZE);
    let signed_in = shell.user.is_some();
    let mut r = super::render(&GalleryPage {
        cards: posts.iter().map(|p| card(&state, p)).collect(),
        categories: choices(&CATEGORIES, |c| category_label(c).to_string(), category.as_deref()),
        previous: (page.page > 1).then(|| gallery_href(category.as_deref(), page.page - 1)),
        next: (i64::from(page.page) < pages).then(|| gallery_href(category.as_deref(), page.page + 1)),
        category,
        count,
        page: page.page,
        pages,
        shell,
    });
    // Shared caches may keep the page only when it names nobody.
    let cache = if signed_in { "private, no-cache" } else { "public, max-age=30" };
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// A search hit as the dashboard shows it.
pub struct Hit {
    pub id: i64,
    pub title: String,
    pub media_type: String,
    pub content_type: String,
    pub content_type_label: String,
    pub thumbnail_url: Option<String>,
    pub file_url: String,
    pub can_share: bool,
}

pub struct Group {
    pub owner_name: String,
    pub total: i64,
    pub hits: Vec<Hit>,
}

#[derive(Template)]
#[template(path = "gallery/dashboard.html")]
struct DashboardPage {
    shell: super::Shell,
    csrf: String,
    q: String,
    searched: bool,
    content_types: Vec<Choice>,
    categories: Vec<Choice>,
    groups: Vec<Group>,
    owners: i64,
    mine: Vec<Card>,
    mine_total: i64,
    notice: Option<&'static str>,
    error: Option<String>,
    back: String,
    more: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DashboardQuery {
    /// Words to search for.
    pub q: Option<String>,
    /// Only this content type.
    pub content_type: Option<String>,
    pub page: Option<String>,
    /// Outcome of the last action (`shared`, `deleted`, or an error code).
    pub done: Option<String>,
}

fn sign_in() -> Response {
    Redirect::to("/login?next=/dashboard/gallery/").into_response()
}

/// What an action's outcome code says to people (codes only: no reflected text).
fn outcome(done: Option<&str>) -> (Option<&'static str>, Option<String>) {
    match done {
        Some("shared") => (Some("Shared to the gallery."), None),
        Some("deleted") => (Some("Removed from the gallery."), None),
        Some(code) => match ErrorCode::parse(code) {
            Some(ErrorCode::AlreadyShared) => (None, Some("You have already shared this media".into())),
            Some(ErrorCode::NotFound) => (None, Some("That media or post no longer exists.".into())),
            Some(ErrorCode::Validation) => {
                (None, Some("Check the caption (at most 2,000 characters) and the category.".into()))
            }
            Some(ErrorCode::Forbidden) => (None, Some("Can only delete your own posts".into())),
            Some(ErrorCode::RateLimited) => (None, Some("Too many requests this hour; try again later.".into())),
            _ => (None, None),
        },
        None => (None, None),
    }
}

/// Search every asset, share to the gallery, manage your posts (dashboard users and admins).
#[utoipa::path(get, path = "/dashboard/gallery", tag = "pages", params(DashboardQuery),
    responses((status = 200, description = "HTML dashboard", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 403, description = "not a dashboard user")))]
pub async fn dashboard(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiQuery(q): ApiQuery<DashboardQuery>,
) -> Response {
    let Some(user) = user else { return sign_in() };
    if let Err(e) = staff(&state, &user).await {
        return super::error_page(e.status(), "Not allowed", &e.public_message());
    }
    let text = q.q.clone().unwrap_or_default();
    let searched = !text.trim().is_empty();
    let (notice, mut error) = outcome(q.done.as_deref());
    let page = PageRequest::try_from(&crate::domain::pagination::PageQuery { page: q.page.clone(), page_size: None })
        .unwrap_or(PageRequest { page: 1, page_size: 20 });
    let mut groups = vec![];
    let mut owners = 0;
    let mut more = None;
    if searched {
        match parse_search(Some(&text), q.content_type.as_deref()) {
            Ok(sq) => match state.store.search_assets(&sq, user.id, page).await {
                Ok((found, n)) => {
                    owners = n;
                    if i64::from(page.page) * i64::from(page.page_size) < n {
                        let mut u = url::form_urlencoded::Serializer::new(String::new());
                        u.append_pair("q", &text);
                        if let Some(ct) = &sq.content_type {
                            u.append_pair("content_type", ct);
                        }
                        u.append_pair("page", &(page.page + 1).to_string());
                        more = Some(format!("/dashboard/gallery/?{}", u.finish()));
                    }
                    groups = found
                        .into_iter()
                        .map(|g| Group {
                            owner_name: g.owner_name,
                            total: g.total,
                            hits: g
                                .items
                                .into_iter()
                                .map(|i| {
                                    let m = media_item(&state, i);
                                    Hit {
                                        content_type_label: content_type_label(&m.content_type),
                                        can_share: m.share_info.can_share,
                                        id: m.id,
                                        title: m.name,
                                        media_type: m.media_type,
                                        content_type: m.content_type,
                                        thumbnail_url: m.thumbnail_url,
                                        file_url: m.media_file,
                                    }
                                })
                                .collect(),
                        })
                        .collect();
                }
                Err(e) => return AppError::Internal(e).into_response(),
            },
            Err(e) => error = Some(e.public_message()),
        }
    }
    let filter = PostFilter { category: None, shared_by: Some(user.id) };
    let (mine, mine_total) = match state.store.gallery_posts(&filter, PageRequest { page: 1, page_size: 100 }).await {
        Ok(x) => x,
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let back = {
        let mut u = url::form_urlencoded::Serializer::new(String::new());
        if searched {
            u.append_pair("q", &text);
        }
        if let Some(ct) = q.content_type.as_deref().filter(|c| !c.is_empty()) {
            u.append_pair("content_type", ct);
        }
        let s = u.finish();
        if s.is_empty() { "/dashboard/gallery/".to_string() } else { format!("/dashboard/gallery/?{s}") }
    };
    let (token, set) = csrf_token(&csrf, state.config.secure_cookies());
    let mut r = super::render(&DashboardPage {
        shell,
        csrf: token,
        q: text,
        searched,
        content_types: choices(&CONTENT_TYPES, content_type_label, q.content_type.as_deref()),
        categories: choices(&CATEGORIES, |c| category_label(c).to_string(), Some("general")),
        groups,
        owners,
        mine: mine.iter().map(|p| card(&state, p)).collect(),
        mine_total,
        notice,
        error,
        back,
        more,
    });
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ShareForm {
    pub csrf_token: Option<String>,
    pub content_type: Option<String>,
    pub object_id: Option<String>,
    pub caption: Option<String>,
    pub category: Option<String>,
    /// Where to return (a path of the dashboard).
    pub back: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteForm {
    pub csrf_token: Option<String>,
    pub back: Option<String>,
}

/// Back to the dashboard page the form came from, with the outcome's code.
fn back_to(back: Option<String>, done: &str) -> Response {
    let back = back
        .filter(|b| {
            b.starts_with("/dashboard/gallery/")
                && !b.contains("//")
                && !b.contains('\\')
                && !b.chars().any(char::is_control)
        })
        .unwrap_or_else(|| "/dashboard/gallery/".into());
    let back = back.split("&done=").next().unwrap_or(&back).to_string();
    let sep = if back.contains('?') { '&' } else { '?' };
    let mut r = Redirect::to(&format!("{back}{sep}done={done}")).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

fn error_code(e: &AppError) -> &'static str {
    match e {
        AppError::BadRequest { code, .. } => code.as_str(),
        AppError::Validation { .. } => ErrorCode::Validation.as_str(),
        AppError::NotFound(_) => ErrorCode::NotFound.as_str(),
        AppError::Forbidden { .. } => ErrorCode::Forbidden.as_str(),
        AppError::RateLimited { .. } => ErrorCode::RateLimited.as_str(),
        _ => "error",
    }
}

/// Shares a search hit to the gallery (the form of the dashboard page).
#[utoipa::path(post, path = "/dashboard/gallery/share", tag = "pages",
    request_body(content = ShareForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "back to the dashboard with the outcome"), (status = 403, description = "CSRF check failed")))]
pub async fn share_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    ApiForm(form): ApiForm<ShareForm>,
) -> Response {
    let Some(user) = user else { return sign_in() };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let text = |v: &Option<String>| v.clone().map(serde_json::Value::String);
    let body = ShareMediaBody {
        content_type: text(&form.content_type),
        object_id: text(&form.object_id),
        caption: text(&form.caption),
        category: text(&form.category),
    };
    match act(&state, &user, async { share(&state, &user, NewPost::try_from(body)?).await.map(|_| ()) }).await {
        Ok(()) => back_to(form.back, "shared"),
        Err(e) => back_to(form.back, error_code(&e)),
    }
}

/// Removes one of your posts (an admin: any post) from the gallery.
#[utoipa::path(post, path = "/dashboard/gallery/{id}/delete", tag = "pages", params(("id" = i64, Path, description = "post id")),
    request_body(content = DeleteForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "back to the dashboard with the outcome"), (status = 403, description = "CSRF check failed")))]
pub async fn delete_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    ApiPath(id): ApiPath<i64>,
    ApiForm(form): ApiForm<DeleteForm>,
) -> Response {
    let Some(user) = user else { return sign_in() };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    match act(&state, &user, unshare(&state, &user, id)).await {
        Ok(()) => back_to(form.back, "deleted"),
        Err(e) => back_to(form.back, error_code(&e)),
    }
}

/// Runs a gallery action for a dashboard user or admin (budget spent first, like the API).
async fn act(
    state: &AppState,
    user: &User,
    action: impl std::future::Future<Output = Result<(), AppError>>,
) -> Result<(), AppError> {
    staff(state, user).await?;
    action.await
}
