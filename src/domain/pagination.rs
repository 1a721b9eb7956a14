//! `page`/`page_size` parsing and the `{count, next, previous, results}` envelope (SPEC §0).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, FieldErrors};

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// Raw query parameters; strings so that a bad value is our 400, not a generic rejection.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<String>,
    /// Items per page (default 20, max 100).
    pub page_size: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

impl PageRequest {
    pub fn offset(&self) -> i64 {
        (self.page as i64 - 1) * self.page_size as i64
    }
    pub fn limit(&self) -> i64 {
        self.page_size as i64
    }
}

impl TryFrom<&PageQuery> for PageRequest {
    type Error = AppError;
    fn try_from(q: &PageQuery) -> Result<Self, AppError> {
        let mut fields = FieldErrors::new();
        let page = match q.page.as_deref().map(str::trim) {
            None | Some("") => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    fields.insert("page".into(), "must be a whole number from 1".into());
                    1
                }
            },
        };
        let page_size = match q.page_size.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_PAGE_SIZE,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    fields.insert("page_size".into(), format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"));
                    DEFAULT_PAGE_SIZE
                }
            },
        };
        if fields.is_empty() { Ok(PageRequest { page, page_size }) } else { Err(AppError::from_fields(fields)) }
    }
}

/// The list envelope every paginated endpoint answers with.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> Page<T> {
    /// `base` is the absolute URL of the list without query; `extra` are other query pairs to keep.
    pub fn new(results: Vec<T>, count: i64, req: PageRequest, base: &str, extra: &[(&str, String)]) -> Self {
        let link = |page: u32| {
            let mut u = url::Url::parse(base).ok();
            if let Some(u) = u.as_mut() {
                let mut q = u.query_pairs_mut();
                for (k, v) in extra {
                    q.append_pair(k, v);
                }
                q.append_pair("page", &page.to_string());
                q.append_pair("page_size", &req.page_size.to_string());
            }
            u.map(|u| u.to_string())
        };
        let shown = req.offset() + results.len() as i64;
        let next = if shown < count { link(req.page + 1) } else { None };
        let previous = if req.page > 1 { link(req.page - 1) } else { None };
        Page { count, next, previous, results }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(page: Option<&str>, size: Option<&str>) -> PageQuery {
        PageQuery { page: page.map(Into::into), page_size: size.map(Into::into) }
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(PageRequest::try_from(&q(None, None)).ok(), Some(PageRequest { page: 1, page_size: 20 }));
        assert!(PageRequest::try_from(&q(Some("0"), None)).is_err());
        assert!(PageRequest::try_from(&q(None, Some("101"))).is_err());
        assert!(PageRequest::try_from(&q(Some("x"), None)).is_err());
    }

    #[test]
    fn links_are_absolute_and_only_when_needed() {
        let req = PageRequest { page: 2, page_size: 1 };
        let p = Page::new(vec![1], 3, req, "http://h/api/x/", &[]);
        assert_eq!(p.next.as_deref(), Some("http://h/api/x/?page=3&page_size=1"));
        assert_eq!(p.previous.as_deref(), Some("http://h/api/x/?page=1&page_size=1"));
        let last = Page::new(vec![1], 3, PageRequest { page: 3, page_size: 1 }, "http://h/a", &[]);
        assert!(last.next.is_none());
    }
}
