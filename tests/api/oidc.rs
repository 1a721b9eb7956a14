//! Single sign-on with OpenID Connect (SPEC §13), against the small provider of `helpers::oidc`
//! started by each test: sign-in, account creation and matching, role mapping, every refusal
//! (state, nonce, audience, expiry, signature, unverified e-mail, disabled account), `oidc_only`,
//! open redirects, a callback on another instance, a provider that is down, key rotation, and
//! the whole thing in Chromium.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::browser::Browser;
use crate::helpers::oidc::{self, Idp, Next, me, sign_in};
use crate::helpers::{Db, Spawn, TestApp, assert_error, free_port};

/// An app that uses `idp` for single sign-on, with more settings from `tweak`.
async fn app_with(db: Db, idp: &Idp, tweak: impl FnOnce(&mut vitrine::config::Config) + Send + 'static) -> TestApp {
    let issuer = idp.issuer.clone();
    TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(move |c| {
            oidc::configure(&issuer, c);
            tweak(c);
        }),
        ..Default::default()
    })
    .await
}

async fn app(idp: &Idp) -> TestApp {
    app_with(Db::Sqlite, idp, |_| {}).await
}

/// Role mapping: `groups` with admin and dashboard values.
fn with_roles(c: &mut vitrine::config::Config) {
    c.oidc_role_claim = Some("groups".into());
    c.oidc_admin_values = vec!["vitrine-admins".into()];
    c.oidc_dashboard_values = vec!["vitrine-dashboard".into(), "support".into()];
}

async fn sign_in_creates_the_account_and_the_session_works(db: Db) {
    let idp = Idp::start().await;
    let app = app_with(db, &idp, |_| {}).await;
    // Someone else is the first account (the admin), so the SSO account is an ordinary user.
    app.register("admin@example.com", "Ada Admin").await;
    idp.next(Next::person("sub-grace", "Grace@Example.com", "Grace Hopper"));
    let s = sign_in(&app, "/shares").await;
    let cookie = s.cookie();
    assert_eq!(s.location.as_deref(), Some("/shares"), "back where the sign-in started");
    // The authorization request: code flow, PKCE S256, state, nonce, the configured scopes.
    let q = idp.last_authorize();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], app.url("/auth/oidc/callback"));
    assert!(q["state"].len() >= 32 && q["nonce"].len() >= 32, "{q:?}");
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for s in ["openid", "email", "profile"] {
        assert!(scopes.contains(&s), "{scopes:?}");
    }
    // The page session works on the API and on the pages, as after a password sign-in.
    let who = me(&app, &cookie).await.expect("signed in");
    assert_eq!(who["email"], "grace@example.com");
    assert_eq!(who["name"], "Grace Hopper");
    assert_eq!(who["role"], "user");
    let home = app.client.get(app.url("/")).header("cookie", &cookie).send().await.expect("home");
    assert!(home.text().await.expect("html").contains("Grace Hopper"));
    // The account has no password: an empty or any password does not open it.
    for pw in ["", "!sso", "correct horse"] {
        let r = app.post_json("/api/auth/login/", None, &json!({"email": "grace@example.com", "password": pw})).await;
        assert!(matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST), "{pw:?}: {}", r.status());
    }
    // The same `state` works once: the provider's redirect replayed is refused.
    let (r, _) = oidc::finish(&app, s.callback_url.as_deref().expect("callback"), s.browser_cookie.as_deref()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("already used"));
    // Signing in again finds the same account (by the provider's subject), with no second account.
    let again = sign_in(&app, "/").await;
    assert_eq!(me(&app, &again.cookie()).await.expect("me")["id"], who["id"]);
}

async fn an_existing_account_is_found_by_its_verified_address_then_by_the_subject(db: Db) {
    let idp = Idp::start().await;
    let app = app_with(db, &idp, |_| {}).await;
    let (_, id) = app.register("ada@example.com", "Ada Lovelace").await;
    idp.next(Next::person("sub-ada", "ADA@example.com", "Ada at the IdP"));
    let s = sign_in(&app, "/").await;
    let who = me(&app, &s.cookie()).await.expect("me");
    assert_eq!(who["id"], id, "the account with this address, not a new one");
    assert_eq!(who["name"], "Ada Lovelace", "the account is not renamed");
    // The provider changes her address: the subject still finds her account.
    idp.next(Next::person("sub-ada", "countess@example.org", "Ada"));
    let s = sign_in(&app, "/").await;
    assert_eq!(me(&app, &s.cookie()).await.expect("me")["id"], id);
    // Her password still works (oidc_only is off).
    let r = app
        .post_json("/api/auth/login/", None, &json!({"email": "ada@example.com", "password": "correct horse"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

crate::on_both_databases!(
    sign_in_creates_the_account_and_the_session_works,
    an_existing_account_is_found_by_its_verified_address_then_by_the_subject,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_follows_the_claim_at_every_sign_in() {
    let idp = Idp::start().await;
    let app = app_with(Db::Sqlite, &idp, with_roles).await;
    app.register("root@example.com", "Root").await;
    let role_after = |groups: Value| {
        idp.next(Next::person("sub-bo", "bo@example.com", "Bo").with("groups", groups));
        async {
            let s = sign_in(&app, "/").await;
            me(&app, &s.cookie()).await.expect("me")["role"].as_str().expect("role").to_string()
        }
    };
    assert_eq!(role_after(json!(["staff", "vitrine-admins"])).await, "admin", "created as admin");
    assert_eq!(role_after(json!(["support"])).await, "dashboard", "changed at the next sign-in");
    assert_eq!(role_after(json!("vitrine-dashboard")).await, "dashboard", "a string claim");
    assert_eq!(role_after(json!([])).await, "user", "no matching value: the default role");
    assert_eq!(role_after(json!("vitrine-admins")).await, "admin");
    // A claim that is missing altogether is no value either.
    idp.next(Next::person("sub-bo", "bo@example.com", "Bo"));
    let s = sign_in(&app, "/").await;
    assert_eq!(me(&app, &s.cookie()).await.expect("me")["role"], "user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_keeps_the_role_whatever_the_claim_says() {
    let idp = Idp::start().await;
    let app = app_with(Db::Sqlite, &idp, with_roles).await;
    idp.next(Next::person("sub-solo", "solo@example.com", "Solo").with("groups", json!(["vitrine-admins"])));
    let s = sign_in(&app, "/").await;
    assert_eq!(me(&app, &s.cookie()).await.expect("me")["role"], "admin");
    idp.next(Next::person("sub-solo", "solo@example.com", "Solo").with("groups", json!([])));
    let s = sign_in(&app, "/").await;
    assert_eq!(me(&app, &s.cookie()).await.expect("me")["role"], "admin", "never an installation without an admin");
}

/// Signs in with the next token spoiled by `spoil`: the callback's status and page.
async fn refused_with(spoil: impl FnOnce(&mut Next)) -> (StatusCode, String, TestApp, Idp) {
    let idp = Idp::start().await;
    let app = app(&idp).await;
    let mut next = Next::person("sub-eve", "eve@example.com", "Eve");
    spoil(&mut next);
    idp.next(next);
    let s = sign_in(&app, "/").await;
    assert!(s.session.is_none(), "no session cookie on a refusal");
    (s.status, s.body, app, idp)
}

async fn assert_no_account(app: &TestApp, email: &str) {
    assert!(app.state.store.user_by_email(email).await.expect("query").is_none(), "no account for {email}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_nonce_is_refused() {
    let (status, body, app, _idp) = refused_with(|n| n.nonce = Some("not-the-nonce".into())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("could not be verified") && body.to_lowercase().contains("nonce"), "{body}");
    assert_no_account(&app, "eve@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_audience_is_refused() {
    let (status, body, app, _idp) = refused_with(|n| n.aud = Some(json!("another-client"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.to_lowercase().contains("audience"), "{body}");
    assert_no_account(&app, "eve@example.com").await;
    // Ours among others that are not trusted is refused too.
    let (status, _, _, _idp) = refused_with(|n| n.aud = Some(json!([oidc::CLIENT_ID, "another-client"]))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_id_token_is_refused() {
    let (status, body, app, _idp) = refused_with(|n| n.exp_in = -300).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.to_lowercase().contains("expired"), "{body}");
    assert_no_account(&app, "eve@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_another_key_is_refused() {
    let (status, body, app, _idp) = refused_with(|n| n.forge_signature = true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.to_lowercase().contains("signature"), "{body}");
    assert_no_account(&app, "eve@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_or_missing_email_address_is_refused() {
    for (spoil, what) in [
        (Box::new(|n: &mut Next| n.email_verified = Some(json!(false))) as Box<dyn FnOnce(&mut Next) + Send>, "false"),
        (Box::new(|n: &mut Next| n.email_verified = None), "missing"),
        (Box::new(|n: &mut Next| n.email = None), "no address"),
    ] {
        let (status, body, app, _idp) = refused_with(spoil).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert!(body.contains("e-mail address"), "{what}: {body}");
        assert_no_account(&app, "eve@example.com").await;
    }
    // "true" as a string (some providers send it so) counts as verified.
    let idp = Idp::start().await;
    let app = app(&idp).await;
    let mut next = Next::person("sub-eve", "eve@example.com", "Eve");
    next.email_verified = Some(json!("true"));
    idp.next(next);
    sign_in(&app, "/").await.cookie();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_missing_expired_or_foreign_state_is_refused() {
    let idp = Idp::start().await;
    let app = app(&idp).await;
    idp.next(Next::person("sub-eve", "eve@example.com", "Eve"));
    // A state the server never issued.
    let (_, callback, cookie) = oidc::start(&app, "/").await;
    let callback = callback.expect("redirected back");
    let forged = format!("/auth/oidc/callback?code=abc&state={}", "f".repeat(64));
    let (r, _) = oidc::finish(&app, &forged, cookie.as_deref()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("wrong state"));
    // No state or no code.
    for path in ["/auth/oidc/callback", "/auth/oidc/callback?code=abc", "/auth/oidc/callback?state=abc"] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // The right state from another browser (no binding cookie, or another one): login CSRF.
    let (r, _) = oidc::finish(&app, &callback, None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("another browser"));
    let (_, callback, _) = oidc::start(&app, "/").await;
    let (r, _) = oidc::finish(&app, &callback.expect("back"), Some(&format!("vitrine_oidc={}", "0".repeat(64)))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A sign-in finished after ten minutes has expired.
    let (_, callback, cookie) = oidc::start(&app, "/").await;
    app.advance(Duration::from_secs(11 * 60));
    let (r, _) = oidc::finish(&app, &callback.expect("back"), cookie.as_deref()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("expired"));
    assert_eq!(idp.token_requests(), 0, "no code was exchanged for any of them");
    assert_no_account(&app, "eve@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_is_refused() {
    let idp = Idp::start().await;
    let app = app(&idp).await;
    let (admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let (_, id) = app.register("dora@example.com", "Dora").await;
    let r = app.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({"is_active": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    idp.next(Next::person("sub-dora", "dora@example.com", "Dora"));
    let s = sign_in(&app, "/").await;
    assert_eq!(s.status, StatusCode::FORBIDDEN, "{}", s.body);
    assert!(s.body.contains("disabled"), "{}", s.body);
    assert!(s.session.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_refusal_is_shown() {
    let idp = Idp::start().await;
    let app = app(&idp).await;
    idp.deny();
    let s = sign_in(&app, "/").await;
    assert_eq!(s.status, StatusCode::FORBIDDEN, "{}", s.body);
    assert!(s.body.contains("Access denied by the test"), "{}", s.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_same_origin_paths_are_followed_after_the_sign_in() {
    let idp = Idp::start().await;
    let app = app(&idp).await;
    idp.next(Next::person("sub-olga", "olga@example.com", "Olga"));
    for next in
        ["//evil.example/", "https://evil.example/", "/\\evil.example", "/%2F/evil.example", "javascript:alert(1)"]
    {
        let s = sign_in(&app, next).await;
        s.cookie();
        assert_eq!(s.location.as_deref(), Some("/"), "{next:?} is not followed");
    }
    let s = sign_in(&app, "/collections?x=1").await;
    assert_eq!(s.location.as_deref(), Some("/collections?x=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_only_refuses_password_sign_in_except_for_local_admins() {
    let idp = Idp::start().await;
    let app = app_with(Db::Sqlite, &idp, |c| c.oidc_only = true).await;
    // Self-registration is closed to passwords.
    let r = app
        .post_json(
            "/api/auth/register/",
            None,
            &json!({"email": "new@example.com", "password": "correct horse", "name": "N"}),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "password_login_disabled").await;
    // A local admin, made as `vitrine user create --role admin` makes it: the way in when the
    // provider is down.
    for (email, role) in [("root@example.com", "admin"), ("uma@example.com", "user")] {
        let new = vitrine::domain::users::NewUser::parse(Some(email), Some("correct horse"), Some("Local"), Some(role))
            .expect("valid");
        let operator = vitrine::domain::audit::Who::system();
        vitrine::service::auth::create_account(&app.state, new, &operator, vitrine::service::auth::Via::Cli)
            .await
            .expect("created");
    }
    let login = async |email: &str, password: &str| {
        app.post_json("/api/auth/login/", None, &json!({"email": email, "password": password})).await
    };
    assert_eq!(login("root@example.com", "correct horse").await.status(), StatusCode::OK, "local admin");
    let r = login("uma@example.com", "correct horse").await;
    let body = assert_error(r, StatusCode::FORBIDDEN, "password_login_disabled").await;
    assert!(body["error"].as_str().expect("error").contains("Test IdP"), "{body}");
    // A wrong password is still just wrong.
    assert_error(login("uma@example.com", "wrong password").await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    // The login page leads with the provider and refuses the password too.
    let (visitor, status, html) = app.visit("/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sign in with Test IdP") && html.contains("local-admin-login"), "{html}");
    let r = visitor.post_form("/login", &[("email", "uma@example.com"), ("password", "correct horse")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("html").contains("password sign-in is turned off"));
    // Single sign-on works for her; and once the admin has signed in with the provider, the
    // account is the provider's and its password is refused too.
    idp.next(Next::person("sub-uma", "uma@example.com", "Uma"));
    assert_eq!(me(&app, &sign_in(&app, "/").await.cookie()).await.expect("me")["email"], "uma@example.com");
    idp.next(Next::person("sub-root", "root@example.com", "Root"));
    sign_in(&app, "/").await.cookie();
    assert_error(login("root@example.com", "correct horse").await, StatusCode::FORBIDDEN, "password_login_disabled")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_offers_the_provider_only_when_configured() {
    let idp = Idp::start().await;
    let app = app(&idp).await;
    let (_, _, html) = app.visit("/login?next=/shares").await;
    assert!(html.contains("Sign in with Test IdP"), "{html}");
    assert!(html.contains("href=\"/auth/oidc/login?next=%2Fshares\""), "{html}");
    assert!(html.contains("id=\"login-submit\"") && !html.contains("local-admin-login"), "the password form as usual");
    let plain = TestApp::spawn().await;
    let (_, _, html) = plain.visit("/login").await;
    assert!(!html.contains("sso-login"), "{html}");
    for path in ["/auth/oidc/login", "/auth/oidc/callback?code=a&state=b"] {
        assert_eq!(plain.get(path, None).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_sign_ins_counts_against_the_sign_in_limit() {
    let idp = Idp::start().await;
    let app = app_with(Db::Sqlite, &idp, |c| c.login_rate_per_ip_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(app.get("/auth/oidc/login?next=/", None).await.status(), StatusCode::SEE_OTHER);
    }
    let r = app.get("/auth/oidc/login?next=/", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some(), "says when to try again");
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"login-submit\""), "the login page, with the reason: {html}");
    // Only the admitted starts wrote a pending sign-in.
    let (pending,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM oidc_logins").fetch_one(app.state.store.pool()).await.expect("count");
    assert_eq!(pending, 3);
    // Password sign-ins from the same address share the limit.
    let r = app.post_json("/api/auth/login/", None, &json!({"email": "a@example.com", "password": "x"})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_does_not_stop_the_server_and_is_tried_again() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(move |c| oidc::configure(&issuer, c)), ..Default::default() })
            .await;
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK, "the server started");
    let r = app.get("/auth/oidc/login?next=/shares", None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = r.text().await.expect("html");
    assert!(html.contains("Test IdP") && html.contains("cannot be reached"), "{html}");
    assert!(html.contains("id=\"login-submit\""), "the login page, with the password form");
    // The provider comes up: the next attempt discovers it.
    let idp = Idp::start_on(port).await;
    idp.next(Next::person("sub-late", "late@example.com", "Late"));
    let s = sign_in(&app, "/").await;
    assert_eq!(me(&app, &s.cookie()).await.expect("me")["email"], "late@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_is_fetched_once_and_used() {
    let idp = Idp::start().await;
    let app = app(&idp).await;
    idp.next(Next::person("sub-rot", "rot@example.com", "Rot"));
    sign_in(&app, "/").await.cookie();
    let fetched = idp.jwks_fetches();
    assert_eq!(fetched, 1, "discovery fetched the keys once");
    sign_in(&app, "/").await.cookie();
    assert_eq!(idp.jwks_fetches(), 1, "the keys are cached");
    idp.rotate();
    sign_in(&app, "/").await.cookie();
    assert_eq!(idp.jwks_fetches(), 2, "an unknown key id fetched the keys again");
    sign_in(&app, "/").await.cookie();
    assert_eq!(idp.jwks_fetches(), 2, "and they are cached again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_may_reach_another_instance() {
    let db = Db::postgres().unwrap_or(Db::Sqlite);
    let idp = Idp::start().await;
    let issuer = idp.issuer.clone();
    let shared = |c: &mut vitrine::config::Config| {
        c.jwt_secret = Some(crate::helpers::redis::JWT.into());
        c.hmac_secret = Some(crate::helpers::redis::HMAC.into());
    };
    let a = app_with(db.clone(), &idp, shared).await;
    let (database_url, public_url) = (a.state.config.database_url.clone(), a.state.config.public_url.clone());
    let b = TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(move |c| {
            oidc::configure(&issuer, c);
            shared(c);
            // Behind one load balancer: one database, one public URL.
            c.database_url = database_url;
            c.public_url = public_url;
        }),
        ..Default::default()
    })
    .await;
    idp.next(Next::person("sub-nina", "nina@example.com", "Nina"));
    let (_, callback, cookie) = oidc::start(&a, "/shares").await;
    let (r, location) = oidc::finish(&b, &callback.expect("back"), cookie.as_deref()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap_or_default());
    assert_eq!(location, "/shares");
    let session = crate::helpers::pages::set_cookie(&r, "vitrine_session").expect("session");
    let cookie_pair = crate::helpers::pages::cookie_pair(&session);
    for app in [&a, &b] {
        assert_eq!(me(app, &cookie_pair).await.expect("signed in on both")["email"], "nina@example.com");
    }
    // And the state, spent on B, is refused on A.
    let (_, callback, cookie) = oidc::start(&b, "/").await;
    let callback = callback.expect("back");
    assert_eq!(oidc::finish(&a, &callback, cookie.as_deref()).await.0.status(), StatusCode::SEE_OTHER);
    assert_eq!(oidc::finish(&b, &callback, cookie.as_deref()).await.0.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_the_provider_in_chromium() {
    let idp = Idp::start().await;
    let app = app(&idp).await;
    idp.next(Next::person("sub-kay", "kay@example.com", "Kay Browser"));
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&app.url("/")).await.expect("goto");
    assert!(c.current_url().await.expect("url").path().starts_with("/login"), "sent to the login form");
    let button = c.find(Locator::Id("sso-login")).await.expect("the SSO button");
    assert_eq!(button.text().await.expect("text"), "Sign in with Test IdP");
    button.click().await.expect("click");
    // The provider approves at once and sends the browser back: signed in, on the start page.
    let who = c.wait().for_element(Locator::Id("signed-in-as")).await.expect("signed in").text().await.expect("text");
    assert!(who.contains("Kay Browser"), "{who}");
    assert_eq!(c.current_url().await.expect("url").path(), "/");
    // The session is the usual one: signing out works.
    c.find(Locator::Id("logout")).await.expect("logout").click().await.expect("click");
    c.wait().for_element(Locator::Id("sso-login")).await.expect("back on the login form");
    browser.client.clone().close().await.expect("close");
}
