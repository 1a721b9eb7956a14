//! The owner's panel on a link's own page (issue 22, part 3): its owner and admins find the QR
//! code, the link to copy, the six social buttons, the embed code and the way to the link's
//! analytics and settings; a recipient (signed out, or signed in as anyone else) never does, and
//! the JSON answer is the same for everyone.

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::browser::Browser;
use crate::helpers::{TestApp, created, fixtures};

const PLATFORMS: [&str; 6] = ["facebook", "twitter", "linkedin", "whatsapp", "telegram", "reddit"];

async fn share_of(app: &TestApp, token: &str, path: &str) -> Value {
    created(app.post_json(path, Some(token), &json!({"share_type": "public", "title": "Sunset"})).await).await
}

async fn html_as(app: &TestApp, email: Option<&str>, url: &str) -> String {
    match email {
        Some(e) => {
            let s = app.page_session(e).await;
            let r = s.get(url).await;
            assert_eq!(r.status(), StatusCode::OK, "{url} as {e}");
            r.text().await.expect("html")
        }
        None => {
            let r = app.client.get(url).header("accept", "text/html").send().await.expect("page");
            assert_eq!(r.status(), StatusCode::OK, "{url} signed out");
            r.text().await.expect("html")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_and_admins_get_the_panel_and_recipients_never_do() {
    let app = TestApp::spawn().await;
    let (_admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    app.register("viewer@example.com", "Vic Viewer").await;
    let asset = app.upload(&owner, "sunset.png", fixtures::png(64, 48)).await;
    let share = share_of(&app, &owner, &format!("/api/v3/assets/{}/share/", asset["id"])).await;
    let (url, uuid) = (share["share_url"].as_str().expect("url"), share["uuid"].as_str().expect("uuid"));

    let html = html_as(&app, Some("owner@example.com"), url).await;
    assert!(html.contains("id=\"owner-panel\""), "{html}");
    assert!(html.contains(&format!("src=\"/share/{uuid}/qr.png\"")), "the QR code");
    assert!(html.contains(&format!("id=\"owner-url\" class=\"url\" value=\"{url}\"")), "the link to copy");
    for p in PLATFORMS {
        assert!(html.contains(&format!("id=\"owner-social-{p}\"")), "{p} button");
    }
    assert!(html.contains("href=\"https://www.facebook.com/sharer/sharer.php?u="), "the API's facebook link");
    assert!(html.contains(&format!("/embed/{uuid}/")), "the embed code");
    assert!(html.contains(&format!("href=\"/dashboard/analytics/{uuid}/\" id=\"owner-analytics\"")));
    assert!(html.contains(&format!("href=\"/assets/{}\" id=\"owner-settings\"", asset["id"])));
    assert!(html.contains("Only you see this panel"));

    let html = html_as(&app, Some("admin@example.com"), url).await;
    assert!(html.contains("id=\"owner-panel\"") && html.contains("the owner and administrators"), "{html}");

    for who in [None, Some("viewer@example.com")] {
        let html = html_as(&app, who, url).await;
        assert!(html.contains("id=\"share-title\""), "the page itself");
        for absent in ["owner-panel", "owner-qr", "owner-embed", "owner-social-", "/dashboard/analytics/"] {
            assert!(!html.contains(absent), "{absent} shown to {who:?}");
        }
    }
    // The JSON answer does not change with the viewer.
    let json_of = |token: Option<&str>| {
        let mut r = app.client.get(url).header("accept", "application/json");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.expect("json page").json::<Value>().await.expect("json") }
    };
    let anonymous = json_of(None).await;
    let own = json_of(Some(&owner)).await;
    assert_eq!(
        anonymous.as_object().map(|o| o.keys().collect::<Vec<_>>()),
        own.as_object().map(|o| o.keys().collect::<Vec<_>>())
    );
    assert!(!own.to_string().contains("owner_panel"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_link_has_the_panel_with_the_collection_as_its_settings() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    app.register("viewer@example.com", "Vic Viewer").await;
    let a = app.upload(&owner, "a.png", fixtures::png(32, 32)).await;
    let c = created(app.post_json("/api/v3/collections/", Some(&owner), &json!({"title": "Trip"})).await).await;
    let r = app
        .post_json(&format!("/api/v3/collections/{}/items/", c["id"]), Some(&owner), &json!({"asset_ids": [a["id"]]}))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let share = share_of(&app, &owner, &format!("/api/v3/collections/{}/share/", c["id"])).await;
    let url = share["share_url"].as_str().expect("url");
    let html = html_as(&app, Some("owner@example.com"), url).await;
    assert!(html.contains("id=\"owner-panel\""), "{html}");
    assert!(html.contains(&format!("href=\"/collections/{}\" id=\"owner-settings\"", c["id"])));
    let html = html_as(&app, Some("viewer@example.com"), url).await;
    assert!(html.contains("id=\"file-grid\"") && !html.contains("owner-panel"));
}

/// In Chromium: the owner copies the link from the panel; a recipient's page has no panel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_copies_the_link_from_the_panel_in_chromium() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let asset = app.upload(&owner, "sunset.png", fixtures::png(64, 48)).await;
    let share = share_of(&app, &owner, &format!("/api/v3/assets/{}/share/", asset["id"])).await;
    let url = share["share_url"].as_str().expect("url").to_string();
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&url).await.expect("goto");
    c.wait().for_element(Locator::Id("share-title")).await.expect("the page");
    assert!(c.find(Locator::Id("owner-panel")).await.is_err(), "no panel for a visitor");
    crate::helpers::browser::sign_in(c, &app, "owner@example.com").await;
    c.goto(&url).await.expect("goto");
    let copy = c.wait().for_element(Locator::Id("owner-copy")).await.expect("the copy button");
    assert!(copy.is_displayed().await.expect("displayed"), "the script shows the button");
    copy.click().await.expect("click");
    // The clipboard answers asynchronously: wait for the label (up to 5 s).
    let mut label = String::new();
    for _ in 0..50 {
        label = copy.text().await.expect("text");
        if label == "Copied!" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(label, "Copied!");
    // The QR code image loads (waited for, up to 5 s).
    let mut qr_ok = false;
    for _ in 0..50 {
        qr_ok = c
            .execute("var i = document.getElementById('owner-qr'); return i.complete && i.naturalWidth > 0;", vec![])
            .await
            .expect("script")
            .as_bool()
            .unwrap_or(false);
        if qr_ok {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(qr_ok, "the QR code image loads");
}
