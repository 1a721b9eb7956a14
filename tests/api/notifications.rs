//! notify_on_access: a live notification on the owner's socket and an e-mail through SMTP.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{SmtpSink, Spawn, TestApp, fixtures};

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("json");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_is_told_live_and_by_mail_when_a_link_is_opened() {
    let smtp = SmtpSink::start().await;
    let smtp_url = smtp.url.clone();
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(move |c| c.smtp_url = Some(smtp_url)), ..Default::default() })
            .await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let a = app.upload(&owner, "deck.pdf", fixtures::pdf(1000)).await;
    let s: Value = app
        .post_json(
            &format!("/api/v3/assets/{}/share/", a["id"]),
            Some(&owner),
            &json!({"notify_on_access": true, "title": "Q1 deck"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let quiet: Value = app
        .post_json(&format!("/api/v3/assets/{}/share/", a["id"]), Some(&owner), &json!({}))
        .await
        .json()
        .await
        .expect("json");
    let ws_url = format!("ws://{}/ws/notifications/?token={owner}", app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("connect");
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    // A link without notify_on_access, a bot and the owner say nothing; a visitor does.
    app.client.get(quiet["share_url"].as_str().expect("u")).send().await.expect("view");
    app.client
        .get(s["share_url"].as_str().expect("u"))
        .header("user-agent", "Twitterbot/1.0")
        .send()
        .await
        .expect("bot");
    app.client.get(s["share_url"].as_str().expect("u")).bearer_auth(&owner).send().await.expect("owner");
    app.client
        .get(s["share_url"].as_str().expect("u"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0")
        .send()
        .await
        .expect("view");
    let n = next_json(&mut ws).await;
    assert_eq!(
        (n["type"].as_str(), n["kind"].as_str(), n["share_uuid"].as_str()),
        (Some("notification"), Some("share_accessed"), s["uuid"].as_str())
    );
    assert_eq!(n["share_title"], "Q1 deck");
    assert_eq!(n["country"], "unknown");
    // Exactly one notification: nothing else is waiting.
    assert!(tokio::time::timeout(Duration::from_millis(300), ws.next()).await.is_err());
    // The mail arrives at the SMTP server; a second view within the interval sends none.
    app.client
        .get(s["share_url"].as_str().expect("u"))
        .header("user-agent", "Mozilla/5.0 Chrome/120")
        .send()
        .await
        .expect("view");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while smtp.mails().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no mail arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: owner@example.com") && mails[0].contains("Q1 deck"), "{}", mails[0]);
    let _ = ws.send(Message::Close(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_socket_needs_a_valid_account_token() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    for bad in ["", "?token=nope"] {
        let err = tokio_tungstenite::connect_async(format!("ws://{}/ws/notifications/{bad}", app.addr))
            .await
            .expect_err("refused");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED.as_u16())
            }
            other => panic!("expected an HTTP refusal, got {other}"),
        }
    }
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/notifications/?token={token}", app.addr))
        .await
        .expect("connect");
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_cards_and_charts_to_the_owner_only() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive").await;
    app.register("other@example.com", "Otto").await;
    let a = app.upload(&owner, "deck.pdf", fixtures::pdf(1000)).await;
    let s: Value = app
        .post_json(&format!("/api/v3/assets/{}/share/", a["id"]), Some(&owner), &json!({"title": "Deck <v1>"}))
        .await
        .json()
        .await
        .expect("json");
    let uuid = s["uuid"].as_str().expect("uuid");
    app.client
        .get(s["share_url"].as_str().expect("u"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0")
        .send()
        .await
        .expect("view");
    app.state.analytics.flush().await.expect("flush");
    let path = format!("/dashboard/analytics/{uuid}/");
    assert_eq!(app.get(&path, None).await.headers()["location"], format!("/login?next={path}"));
    let olive = app.page_session("owner@example.com").await;
    let html = olive.get(&path).await.text().await.expect("html");
    for id in [
        "total-views",
        "total-downloads",
        "unique-visitors",
        "conversion-rate",
        "geographic-chart",
        "device-chart",
        "timeline-chart",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(
        html.contains("<svg") && html.contains("db-ip.com") && html.contains("Deck &#60;v1&#62;")
            || html.contains("Deck &lt;v1&gt;")
    );
    assert!(html.contains("id=\"total-views\">1<"), "one view counted");
    // The dashboard's script reads the report with the page session (GET only).
    let r = olive.get(&format!("/api/v3/shares/{uuid}/analytics/")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let other = app.page_session("other@example.com").await;
    assert_eq!(other.get(&path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(olive.get(&format!("{path}?days=999")).await.status(), StatusCode::BAD_REQUEST);
    // A cookie authorises an API write only with the page's CSRF token (SPEC §0; issue 18 item 7).
    let r = olive.req(reqwest::Method::DELETE, &format!("/api/v3/shares/{uuid}/")).send().await.expect("delete");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        olive.get(&format!("/api/v3/shares/{uuid}/")).await.json::<serde_json::Value>().await.expect("json")["status"],
        "active",
        "the link is still there"
    );
}
