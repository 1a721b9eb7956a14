//! Page sessions: what a browser sends to the HTML pages (the session and CSRF cookies) and the
//! CSRF token the pages embed, for form posts and cookie-authenticated API calls over plain HTTP.

use reqwest::{Method, StatusCode};

use super::TestApp;

/// A browser on the pages: the cookies it sends and the CSRF token of its forms. Made by
/// [`TestApp::page_session`] (signed in) or [`TestApp::visit`] (a visitor with the CSRF cookie
/// only); the cookies are fixed, so a test can replay them after the server cleared them.
#[derive(Clone)]
pub struct PageSession {
    client: reqwest::Client,
    base: String,
    /// The Cookie header, e.g. `vitrine_session=…; vitrine_csrf=…`.
    pub cookies: String,
    /// The token of the pages' forms (`csrf_token`); also the `X-CSRF-Token` of API writes.
    pub csrf: String,
}

impl TestApp {
    /// Signs `email` in through the login form (password "correct horse"): a browser with the
    /// session and CSRF cookies.
    pub async fn page_session(&self, email: &str) -> PageSession {
        let (visitor, status, _) = self.visit("/login").await;
        assert_eq!(status, StatusCode::OK, "the login form");
        let r = visitor.post_form("/login", &[("email", email), ("password", "correct horse")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "signing in {email}");
        let session = set_cookie(&r, "vitrine_session").expect("the session cookie");
        visitor.with_cookie(&cookie_pair(&session))
    }

    /// Opens `path` (or a full URL of this app) as a browser without cookies: that browser, now
    /// with the CSRF cookie the page set and the token its form embeds, and the page's status and
    /// HTML.
    pub async fn visit(&self, path: &str) -> (PageSession, StatusCode, String) {
        let r = self.client.get(absolute(&self.base, path)).send().await.expect("page");
        let status = r.status();
        let cookie = set_cookie(&r, "vitrine_csrf").unwrap_or_else(|| panic!("{path} sets the CSRF cookie"));
        let html = r.text().await.expect("html");
        (PageSession::new(self, cookie_pair(&cookie), csrf_of(&html)), status, html)
    }
}

impl PageSession {
    /// A browser on `app` that sends `cookies` (a Cookie header) and knows the token `csrf`.
    pub fn new(app: &TestApp, cookies: impl Into<String>, csrf: impl Into<String>) -> PageSession {
        PageSession { client: app.client.clone(), base: app.base.clone(), cookies: cookies.into(), csrf: csrf.into() }
    }

    /// The same cookies and token, sent to another instance (one database, shared secrets).
    pub fn on(&self, app: &TestApp) -> PageSession {
        PageSession::new(app, self.cookies.clone(), self.csrf.clone())
    }

    /// This browser with one more cookie (`name=value`) in front of the others.
    pub fn with_cookie(&self, pair: &str) -> PageSession {
        let cookies = if self.cookies.is_empty() { pair.to_string() } else { format!("{pair}; {}", self.cookies) };
        PageSession { cookies, ..self.clone() }
    }

    /// A request with the cookies and no CSRF token.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, absolute(&self.base, path)).header("cookie", &self.cookies)
    }

    /// A request with the cookies and the `X-CSRF-Token` header, as the pages' scripts write to
    /// the API.
    pub fn req_with_csrf(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.req(method, path).header("x-csrf-token", &self.csrf)
    }

    /// GETs `path` with the cookies.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.req(Method::GET, path).send().await.expect("get")
    }

    /// Posts the form `fields` with the page's token added as `csrf_token`.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = fields.to_vec();
        form.push(("csrf_token", self.csrf.as_str()));
        self.post_form_as_is(path, &form).await
    }

    /// Posts exactly `fields`, with no token added: a missing or wrong one is the test's to send.
    pub async fn post_form_as_is(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.req(Method::POST, path).form(fields).send().await.expect("post")
    }
}

/// A path of the app (after `base`) as a URL; a full URL stays as it is.
fn absolute(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") { path.to_string() } else { format!("{base}{path}") }
}

/// The `Set-Cookie` header of `r` that sets the cookie `name`, attributes included.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&prefix))
        .map(str::to_string)
}

/// The `name=value` of a `Set-Cookie` header: what a browser sends back.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or("").to_string()
}

/// The CSRF token a page embeds in its forms (`<input name="csrf_token" value="…">`).
pub fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page has a csrf_token field")
        .to_string()
}
