//! Chat file sharing (SPEC §7, docs/chat.md): the seed's five manual scenarios, the tenant
//! isolation matrix, signed links on local storage and S3, scanning with a real clamd.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Clamd, Db, S3Server, Spawn, TestApp, Ws, assert_error, fixtures};

const METRICS_TOKEN: &str = "metrics-token-for-the-chat-tests-0123456789";

/// A company, its agent (token) and one visitor session.
struct Chat {
    company_id: String,
    widget_key: String,
    agent: String,
    session_id: String,
    visitor: String,
}

async fn company(app: &TestApp, admin: &str, name: &str) -> (String, String) {
    let r = app.post_json("/api/companies/", Some(admin), &json!({"name": name})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    (v["company_id"].as_str().expect("id").to_string(), v["widget_key"].as_str().expect("key").to_string())
}

async fn agent_of(app: &TestApp, admin: &str, company_id: &str, email: &str) -> String {
    let (token, user_id) = app.register(email, "Agent Smith").await;
    let r =
        app.post_json(&format!("/api/companies/{company_id}/agents/"), Some(admin), &json!({"user_id": user_id})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    token
}

async fn open_session(app: &TestApp, widget_key: &str) -> (String, String) {
    let r = app.post_json("/api/chat/sessions/", None, &json!({"widget_key": widget_key})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    (v["session_id"].as_str().expect("session").to_string(), v["token"].as_str().expect("token").to_string())
}

/// An admin, a company with one agent, and one visitor session.
async fn setup(app: &TestApp) -> (String, Chat) {
    let (admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let (company_id, widget_key) = company(app, &admin, "Acme").await;
    let agent = agent_of(app, &admin, &company_id, "agent@acme.test").await;
    let (session_id, visitor) = open_session(app, &widget_key).await;
    (admin, Chat { company_id, widget_key, agent, session_id, visitor })
}

/// A multipart chat upload with the seed's fields.
async fn upload(
    app: &TestApp,
    token: Option<&str>,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, String)],
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.clone());
    }
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
    form = form.part("file", part);
    app.req(reqwest::Method::POST, "/api/chat/upload/", token).multipart(form).send().await.expect("upload")
}

fn seed_fields(c: &Chat, uploader: &str, name: &str, mime: &str, size: usize) -> Vec<(&'static str, String)> {
    vec![
        ("company_id", c.company_id.clone()),
        ("session_id", c.session_id.clone()),
        ("uploader", uploader.to_string()),
        ("original_name", name.to_string()),
        ("mime_type", mime.to_string()),
        ("size", size.to_string()),
    ]
}

fn ws_path(c: &Chat, token: &str) -> String {
    format!("/ws/chat/{}/{}/?token={token}", c.company_id, c.session_id)
}

async fn files(app: &TestApp, c: &Chat, token: &str) -> Value {
    let r = app
        .get(&format!("/api/chat/files/?session_id={}&company_id={}", c.session_id, c.company_id), Some(token))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

#[tokio::test]
async fn companies_agents_and_sessions_are_managed_by_admins() {
    let app = TestApp::spawn().await;
    let (admin, user) = app.admin_and_user().await;
    let r = app.post_json("/api/companies/", Some(&admin), &json!({"name": "  Acme  "})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c: Value = r.json().await.expect("json");
    assert_eq!(c["name"], "Acme");
    let company_id = c["company_id"].as_str().expect("id").to_string();
    assert_eq!(uuid::Uuid::parse_str(&company_id).expect("uuid").get_version_num(), 4);
    assert_eq!(c["widget_key"].as_str().expect("key").len(), 32);
    assert_error(
        app.post_json("/api/companies/", Some(&user), &json!({"name": "X"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.post_json("/api/companies/", None, &json!({"name": "X"})).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    let bad = assert_error(
        app.post_json("/api/companies/", Some(&admin), &json!({"name": " "})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert!(bad["fields"]["name"].is_string());

    // Agents.
    let (agent, agent_id) = app.register("agent@acme.test", "Agent").await;
    let path = format!("/api/companies/{company_id}/agents/");
    assert_error(
        app.post_json(&path, Some(&agent), &json!({"user_id": agent_id})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let r = app.post_json(&path, Some(&admin), &json!({"user_id": agent_id})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.post_json(&path, Some(&admin), &json!({"user_id": agent_id})).await.status(), StatusCode::OK);
    assert_error(
        app.post_json(&path, Some(&admin), &json!({"user_id": 9999})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.post_json("/api/companies/nope/agents/", Some(&admin), &json!({"user_id": agent_id})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(app.post_json(&path, Some(&admin), &json!({})).await, StatusCode::BAD_REQUEST, "validation_error")
        .await;
    // The agent sees their company; another user sees none; the admin sees all.
    let mine: Value = app.get("/api/companies/", Some(&agent)).await.json().await.expect("json");
    assert_eq!(mine["count"], 1);
    assert_eq!(mine["results"][0]["company_id"], company_id.as_str());
    let none: Value = app.get("/api/companies/", Some(&user)).await.json().await.expect("json");
    assert_eq!(none["count"], 0);

    // Visitor sessions from the widget key.
    let widget_key = c["widget_key"].as_str().expect("key");
    let r = app.post_json("/api/chat/sessions/", None, &json!({"widget_key": widget_key})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let s: Value = r.json().await.expect("json");
    assert_eq!(s["company_id"], company_id.as_str());
    assert!(uuid::Uuid::parse_str(s["session_id"].as_str().expect("session")).is_ok());
    assert!(s["token"].as_str().is_some_and(|t| t.len() > 20));
    assert_error(
        app.post_json("/api/chat/sessions/", None, &json!({"widget_key": "wrong"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.post_json("/api/chat/sessions/", None, &json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;

    // The agent lists the company's sessions (paginated); others may not.
    let list: Value = app
        .get(&format!("/api/chat/sessions/?company_id={company_id}"), Some(&agent))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["session_id"], s["session_id"]);
    assert_eq!(list["results"][0]["file_count"], 0);
    assert_error(
        app.get(&format!("/api/chat/sessions/?company_id={company_id}"), Some(&user)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(app.get("/api/chat/sessions/", Some(&agent)).await, StatusCode::BAD_REQUEST, "validation_error").await;

    // Removing the agent takes the access away.
    let r = app.delete(&format!("/api/companies/{company_id}/agents/{agent_id}/"), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get(&format!("/api/chat/sessions/?company_id={company_id}"), Some(&agent)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.delete(&format!("/api/companies/{company_id}/agents/{agent_id}/"), Some(&admin)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

crate::on_both_databases!(
    uploads_reach_both_sides_live,
    a_burst_of_messages_on_one_socket_is_stored_and_delivered_in_send_order
);

/// Seed scenarios 1 and 2: a user's upload reaches the agent, an agent's upload the user, live,
/// with the seed's fields; on SQLite and PostgreSQL.
async fn uploads_reach_both_sides_live(db: Db) {
    let app = TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(|c| c.metrics_token = Some(METRICS_TOKEN.into())),
        ..Default::default()
    })
    .await;
    let (_, c) = setup(&app).await;
    let mut visitor_ws = Ws::connect(&app, &ws_path(&c, &c.visitor)).await;
    let mut agent_ws = Ws::connect(&app, &ws_path(&c, &c.agent)).await;
    let hello = visitor_ws.next_of("connection_established").await;
    assert_eq!(hello["message"], "WebSocket connected successfully");
    assert_eq!(hello["session_id"], c.session_id.as_str());
    assert_eq!(hello["company_id"], c.company_id.as_str());
    assert_eq!(hello["role"], "user");
    assert_eq!(agent_ws.next_of("connection_established").await["role"], "agent");

    // 1. The user uploads; the agent is told.
    let pdf = fixtures::pdf(12_345);
    let r = upload(
        &app,
        Some(&c.visitor),
        "document.pdf",
        pdf.clone(),
        &seed_fields(&c, "user", "document.pdf", "application/pdf", pdf.len()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let f: Value = r.json().await.expect("json");
    for key in
        ["id", "company_id", "session_id", "uploader", "url", "name", "mime_type", "size", "thumbnail", "created_at"]
    {
        assert!(f.get(key).is_some(), "upload answer lacks {key}: {f}");
    }
    assert_eq!(f["uploader"], "user");
    assert_eq!(f["name"], "document.pdf");
    assert_eq!(f["mime_type"], "application/pdf");
    assert_eq!(f["size"], pdf.len());
    assert!(f["thumbnail"].is_null());
    let shared = agent_ws.next_of("file_shared").await;
    assert_eq!(shared["id"], f["id"]);
    assert_eq!(shared["uploader"], "user");
    assert_eq!(shared["name"], "document.pdf");
    assert!(shared["seq"].as_i64().is_some_and(|s| s >= 1));
    assert_eq!(visitor_ws.next_of("file_shared").await["id"], f["id"], "the uploader's own socket hears it too");
    // The link serves the bytes.
    let got = app.client.get(f["url"].as_str().expect("url")).send().await.expect("get");
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), pdf.as_slice());

    // 2. The agent uploads an image; the user is told, with a thumbnail.
    let png = fixtures::png(64, 48);
    let r = upload(
        &app,
        Some(&c.agent),
        "photo.png",
        png.clone(),
        &seed_fields(&c, "agent", "photo.png", "image/png", png.len()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let g: Value = r.json().await.expect("json");
    assert_eq!(g["uploader"], "agent");
    let shared = visitor_ws.next_of("file_shared").await;
    assert_eq!(shared["id"], g["id"]);
    assert_eq!(shared["uploader"], "agent");
    let thumb = shared["thumbnail"].as_str().expect("a thumbnail for an image");
    assert_eq!(app.client.get(thumb).send().await.expect("thumb").status(), StatusCode::OK);

    // The list (seed shape), from both sides, over REST and the socket.
    for token in [&c.visitor, &c.agent] {
        let list = files(&app, &c, token).await;
        assert_eq!(list["count"], 2);
        assert_eq!(list["files"][0]["original_name"], "document.pdf");
        assert_eq!(list["files"][1]["original_name"], "photo.png");
    }
    visitor_ws
        .send(&json!({"type": "request_file_list", "session_id": c.session_id, "company_id": c.company_id}))
        .await;
    let fl = visitor_ws.next_of("file_list").await;
    assert_eq!(fl["files"].as_array().map(Vec::len), Some(2));
    assert_eq!(fl["session_id"], c.session_id.as_str());

    // Text messages are relayed and kept.
    agent_ws.send(&json!({"type": "message", "text": "Hello, how can I help?"})).await;
    let m = visitor_ws.next_of("message").await;
    assert_eq!(m["sender"], "agent");
    assert_eq!(m["text"], "Hello, how can I help?");
    assert!(m["seq"].as_i64().is_some() && m["id"].as_i64().is_some() && m["created_at"].is_string());
    let msgs: Value = app
        .get(&format!("/api/chat/messages/?session_id={}&company_id={}", c.session_id, c.company_id), Some(&c.visitor))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(msgs["count"], 1);
    assert_eq!(msgs["messages"][0]["sender"], "agent");

    // Bad socket messages get an error and the socket stays.
    visitor_ws.send(&json!({"type": "message", "text": "  "})).await;
    assert_eq!(visitor_ws.next_of("error").await["code"], "invalid");
    visitor_ws.send_text("not json").await;
    assert_eq!(visitor_ws.next_of("error").await["code"], "malformed");
    visitor_ws.send(&json!({"type": "shout"})).await;
    assert_eq!(visitor_ws.next_of("error").await["code"], "unknown_type");
    visitor_ws.send(&json!({"type": "request_file_list", "session_id": "other"})).await;
    assert_eq!(visitor_ws.next_of("error").await["code"], "forbidden");
    visitor_ws.send(&json!({"type": "ping"})).await;
    visitor_ws.next_of("pong").await;

    // Metrics (the per-company series only for the scraper with the metrics token).
    let metrics = app.get("/metrics", Some(METRICS_TOKEN)).await.text().await.expect("text");
    assert!(metrics.contains("vitrine_chat_uploads_total{result=\"accepted\""), "{metrics}");
    assert!(metrics.contains("vitrine_chat_upload_size_bytes"));
    assert!(metrics.contains(&format!("vitrine_chat_stored_bytes{{company_id=\"{}\"}}", c.company_id)));
    assert!(metrics.contains("vitrine_websockets_open{channel=\"chat\"}"));
}

/// Seed scenario 3: a client that reconnects receives what it missed, in order, once.
#[tokio::test]
async fn a_reconnecting_client_receives_missed_files_once() {
    let app = TestApp::spawn().await;
    let (_, c) = setup(&app).await;
    let mut ws = Ws::connect(&app, &ws_path(&c, &c.visitor)).await;
    let seq0 = ws.next_of("connection_established").await["seq"].as_i64().expect("seq");
    drop(ws);
    let mut ids = vec![];
    for i in 0..2 {
        let pdf = fixtures::pdf(2_000 + i);
        let r = upload(&app, Some(&c.agent), &format!("missed-{i}.pdf"), pdf, &[("session_id", c.session_id.clone())])
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(r.json::<Value>().await.expect("json")["id"].clone());
    }
    let mut agent_ws = Ws::connect(&app, &ws_path(&c, &c.agent)).await;
    agent_ws.next_of("connection_established").await;
    agent_ws.send(&json!({"type": "message", "text": "Did you get them?"})).await;
    agent_ws.next_of("message").await;

    let mut ws = Ws::connect(&app, &format!("{}&last_seq={seq0}", ws_path(&c, &c.visitor))).await;
    let hello = ws.next_of("connection_established").await;
    assert_eq!(hello["recovered"], true);
    let a = ws.next().await;
    let b = ws.next().await;
    let m = ws.next().await;
    assert_eq!((a["type"].as_str(), &a["id"]), (Some("file_shared"), &ids[0]));
    assert_eq!((b["type"].as_str(), &b["id"]), (Some("file_shared"), &ids[1]));
    assert_eq!(m["type"], "message");
    let seqs: Vec<i64> = [&a, &b, &m].iter().map(|v| v["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, vec![seq0 + 1, seq0 + 2, seq0 + 3]);
    // The replayed link works.
    assert_eq!(app.client.get(a["url"].as_str().expect("url")).send().await.expect("get").status(), StatusCode::OK);
    // Nothing is delivered twice.
    assert!(ws.next_within(Duration::from_millis(300)).await.is_none());
    // `resume` replays on demand.
    ws.send(&json!({"type": "resume", "last_seq": seq0 + 1})).await;
    assert_eq!(ws.next().await["seq"], seq0 + 2);
    assert_eq!(ws.next().await["seq"], seq0 + 3);
    // A gap that never existed: recovered false.
    let mut ws = Ws::connect(&app, &format!("{}&last_seq=999", ws_path(&c, &c.visitor))).await;
    assert_eq!(ws.next_of("connection_established").await["recovered"], false);
}

/// Issue 19: `file_shared` is stored with ids and plain fields only; links are signed when a frame
/// is sent. The live frame is the upload's answer; a replay after those links expired carries
/// fresh ones, and otherwise the same JSON.
#[tokio::test]
async fn file_shared_is_stored_without_links_and_signed_when_sent() {
    let app = TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.chat_url_ttl_secs = 3), ..Default::default() }).await;
    let (_, c) = setup(&app).await;
    let mut agent_ws = Ws::connect(&app, &ws_path(&c, &c.agent)).await;
    let seq0 = agent_ws.next_of("connection_established").await["seq"].as_i64().expect("seq");
    let r = upload(&app, Some(&c.visitor), "p.png", fixtures::png(640, 480), &[]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let answer: Value = r.json().await.expect("json");
    let live = agent_ws.next_of("file_shared").await;
    let mut expected = answer.as_object().expect("object").clone();
    for k in ["type", "seq", "at"] {
        expected.insert(k.into(), live[k].clone());
    }
    assert_eq!(live, Value::Object(expected), "the live frame is the answer, links and all");
    assert!(live["thumbnail"].as_str().is_some_and(|t| t.contains("/files/")));
    // The stored event: no link, no blob key.
    let room = format!("chat:{}", c.session_id);
    let events = app.state.store.room_events(&room, 0, i64::MAX, 100).await.expect("events");
    let stored = events.iter().find(|e| e.kind == "file_shared").expect("stored event");
    let text = stored.data.to_string();
    assert!(stored.data.get("url").is_none() && stored.data.get("thumbnail").is_none(), "{text}");
    assert!(!text.contains("/files/") && !text.contains("chat/") && !text.contains("thumbs"), "{text}");
    assert_eq!(stored.data["id"], answer["id"]);
    // Once the live links have expired, a replay signs fresh ones.
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    let status = |url: &Value| {
        let url = url.as_str().expect("link").to_string();
        let client = app.client.clone();
        async move { client.get(url).send().await.expect("get").status() }
    };
    assert_eq!(status(&live["url"]).await, StatusCode::FORBIDDEN);
    let mut ws = Ws::connect(&app, &format!("{}&last_seq={seq0}", ws_path(&c, &c.visitor))).await;
    assert_eq!(ws.next_of("connection_established").await["recovered"], true);
    let replayed = ws.next().await;
    assert_eq!(replayed["type"], "file_shared");
    for link in ["url", "thumbnail"] {
        assert_ne!(replayed[link], live[link], "{link} is signed afresh");
        assert_eq!(status(&replayed[link]).await, StatusCode::OK, "{link}");
    }
    let keys = |v: &Value| v.as_object().expect("object").keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&replayed), keys(&live));
    for k in keys(&live).iter().filter(|k| *k != "url" && *k != "thumbnail") {
        assert_eq!(replayed[k], live[k], "{k}");
    }
}

/// Seed scenarios 4 and 5, and the other refusals: nothing is stored for any of them.
#[tokio::test]
async fn too_large_invalid_and_contradicting_uploads_are_refused() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| {
            c.chat_max_bytes = 64 * 1024;
            c.chat_upload_rate_per_minute = 100;
        }),
        ..Default::default()
    })
    .await;
    let (_, c) = setup(&app).await;
    let v = Some(c.visitor.as_str());
    // 4. Too large (streamed; the limit is the configured one).
    let big = fixtures::pdf(64 * 1024 + 10);
    assert_error(upload(&app, v, "big.pdf", big, &[]).await, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    // 5. Types outside the allow-list, and executables whatever they claim.
    assert_error(
        upload(&app, v, "clip.wav", fixtures::wav(1), &[]).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_type",
    )
    .await;
    assert_error(
        upload(&app, v, "page.html", b"<!doctype html><script>x</script>".to_vec(), &[]).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_type",
    )
    .await;
    assert_error(
        upload(&app, v, "invoice.pdf", fixtures::elf(), &[("mime_type", "application/pdf".into())]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "executable_refused",
    )
    .await;
    assert_error(
        upload(&app, v, "photo.jpg", fixtures::pe(), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "executable_refused",
    )
    .await;
    // Declarations that contradict the bytes.
    let pdf = fixtures::pdf(3_000);
    assert_error(
        upload(&app, v, "a.pdf", pdf.clone(), &[("size", "12".into())]).await,
        StatusCode::BAD_REQUEST,
        "size_mismatch",
    )
    .await;
    assert_error(
        upload(&app, v, "a.pdf", pdf.clone(), &[("size", "many".into())]).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert_error(
        upload(&app, v, "a.pdf", pdf.clone(), &[("mime_type", "image/png".into())]).await,
        StatusCode::BAD_REQUEST,
        "type_mismatch",
    )
    .await;
    assert_error(
        upload(&app, v, "a.pdf", pdf.clone(), &[("uploader", "agent".into())]).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(upload(&app, v, "empty.txt", Vec::new(), &[]).await, StatusCode::BAD_REQUEST, "validation_error")
        .await;
    let no_file = app
        .req(reqwest::Method::POST, "/api/chat/upload/", v)
        .multipart(reqwest::multipart::Form::new().text("session_id", c.session_id.clone()))
        .send()
        .await
        .expect("send");
    assert_error(no_file, StatusCode::BAD_REQUEST, "validation_error").await;
    // Nothing was stored, no blob is left.
    assert_eq!(files(&app, &c, &c.visitor).await["count"], 0);
    let blobs = app.state.blobs.list("chat").await.expect("list");
    assert!(blobs.is_empty(), "refused uploads left blobs: {blobs:?}");
    // An allowed file with honest declarations (aliases accepted) goes through, name sanitised.
    let r = upload(
        &app,
        v,
        "a.pdf",
        pdf.clone(),
        &[
            ("mime_type", "application/x-pdf".into()),
            ("size", pdf.len().to_string()),
            ("original_name", "../../etc/passwd.pdf".into()),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let f: Value = r.json().await.expect("json");
    assert!(!f["name"].as_str().expect("name").contains('/'), "{f}");
    let metrics = app.get("/metrics", None).await.text().await.expect("text");
    for reason in ["too_large", "unsupported_type", "executable", "declared_mismatch", "forbidden"] {
        assert!(
            metrics.contains(&format!("vitrine_chat_uploads_total{{result=\"refused\",reason=\"{reason}\"}}")),
            "{reason}: {metrics}"
        );
    }
}

#[tokio::test]
async fn uploads_are_rate_limited_per_uploader() {
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.chat_upload_rate_per_minute = 2), ..Default::default() })
            .await;
    let (_, c) = setup(&app).await;
    for i in 0..2 {
        assert_eq!(
            upload(&app, Some(&c.visitor), "a.txt", format!("note {i}\n").into_bytes(), &[]).await.status(),
            StatusCode::CREATED
        );
    }
    let r = upload(&app, Some(&c.visitor), "a.txt", b"one more\n".to_vec(), &[]).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another uploader has their own budget.
    let r =
        upload(&app, Some(&c.agent), "a.txt", b"agent note\n".to_vec(), &[("session_id", c.session_id.clone())]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// A chat token whose expiry has passed.
fn expired_chat_token(app: &TestApp, session_id: &str) -> String {
    let now = (app.state.clock.now_ms() / 1000) as u64;
    let claims = vitrine::auth::Claims {
        sub: session_id.to_string(),
        exp: now - 3600,
        iat: now - 7200,
        typ: "chat".into(),
        sid: None,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&app.state.secrets.jwt),
    )
    .expect("token")
}

/// Every chat endpoint and the socket, with credentials of another company, another session,
/// an expired token and none.
#[tokio::test]
async fn tenants_and_sessions_are_isolated() {
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.chat_upload_rate_per_minute = 1000), ..Default::default() })
            .await;
    let (admin, a) = setup(&app).await;
    // A second session of company A, and company B with its agent and a session.
    let (other_session, other_visitor) = open_session(&app, &a.widget_key).await;
    let (b_company, b_key) = company(&app, &admin, "Beta").await;
    let b_agent = agent_of(&app, &admin, &b_company, "agent@beta.test").await;
    let (b_session, b_visitor) = open_session(&app, &b_key).await;
    let (plain_user, _) = app.register("someone@example.com", "Some One").await;
    let expired = expired_chat_token(&app, &a.session_id);

    // (token, why, expected status) against company A's first session.
    let cases: Vec<(Option<String>, &str, u16)> = vec![
        (Some(other_visitor.clone()), "a visitor of another session", 403),
        (Some(b_visitor.clone()), "a visitor of another company", 403),
        (Some(b_agent.clone()), "an agent of another company", 403),
        (Some(plain_user.clone()), "an account that is no agent", 403),
        (Some(admin.clone()), "an admin who is no agent", 403),
        (Some(expired.clone()), "an expired token", 401),
        (Some("garbage".into()), "a malformed token", 401),
        (None, "no token", 401),
    ];
    for (token, why, status) in &cases {
        let t = token.as_deref();
        let r = app.get(&format!("/api/chat/files/?session_id={}&company_id={}", a.session_id, a.company_id), t).await;
        assert_eq!(r.status().as_u16(), *status, "files with {why}");
        let r =
            app.get(&format!("/api/chat/messages/?session_id={}&company_id={}", a.session_id, a.company_id), t).await;
        assert_eq!(r.status().as_u16(), *status, "messages with {why}");
        let r = upload(
            &app,
            t,
            "x.txt",
            b"hello\n".to_vec(),
            &[("session_id", a.session_id.clone()), ("company_id", a.company_id.clone())],
        )
        .await;
        assert_eq!(r.status().as_u16(), *status, "upload with {why}");
        let path = match t {
            Some(t) => ws_path(&a, t),
            None => format!("/ws/chat/{}/{}/", a.company_id, a.session_id),
        };
        assert_eq!(Ws::try_connect(&app, &path).await.err(), Some(*status), "socket with {why}");
    }
    // A token of company A with company B's id in the path or the form.
    let r = app
        .get(&format!("/api/chat/files/?session_id={}&company_id={b_company}", a.session_id), Some(&a.visitor))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = upload(&app, Some(&a.agent), "x.txt", b"hi\n".to_vec(), &[("session_id", b_session.clone())]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "agent of A uploading into B's session");
    let r = upload(
        &app,
        Some(&a.agent),
        "x.txt",
        b"hi\n".to_vec(),
        &[("session_id", a.session_id.clone()), ("company_id", b_company.clone())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "company contradicting the session");
    assert_eq!(
        Ws::try_connect(&app, &format!("/ws/chat/{b_company}/{}/?token={}", a.session_id, a.visitor)).await.err(),
        Some(403)
    );
    assert_eq!(
        Ws::try_connect(&app, &format!("/ws/chat/{}/{other_session}/?token={}", a.company_id, a.visitor)).await.err(),
        Some(403)
    );
    // An agent names the session.
    assert_error(
        app.get(&format!("/api/chat/files/?company_id={}", a.company_id), Some(&a.agent)).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    // The rightful owners still get in, and B's file never shows in A.
    assert_eq!(upload(&app, Some(&b_visitor), "b.txt", b"beta\n".to_vec(), &[]).await.status(), StatusCode::CREATED);
    assert_eq!(files(&app, &a, &a.visitor).await["count"], 0);
    assert_eq!(files(&app, &a, &a.agent).await["count"], 0);
    let blobs = app.state.blobs.list(&format!("chat/{b_company}/{b_session}")).await.expect("list");
    assert_eq!(blobs.len(), 1, "B's blob lives under B's company and session prefix");
    assert!(Ws::try_connect(&app, &ws_path(&a, &a.visitor)).await.is_ok());
}

async fn links_expire_and_resist_tampering(app: TestApp) {
    let (_, c) = setup(&app).await;
    let r = upload(&app, Some(&c.visitor), "notes.txt", b"meeting notes\n".to_vec(), &[]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let f: Value = r.json().await.expect("json");
    let url = f["url"].as_str().expect("url").to_string();
    let ok = app.client.get(&url).send().await.expect("get");
    assert!(ok.status() == StatusCode::OK || ok.status().is_redirection(), "{}", ok.status());
    // Tampered: one character of the token changed.
    let (head, token) = url.rsplit_once('/').expect("token");
    let mut t: Vec<char> = token.chars().collect();
    let i = t.len() / 3;
    t[i] = if t[i] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{head}/{}", t.into_iter().collect::<String>());
    assert_eq!(app.client.get(&tampered).send().await.expect("get").status(), StatusCode::FORBIDDEN);
    // After the TTL (one second here) on the app's clock, the link answers 403.
    app.advance(Duration::from_secs(2));
    assert_eq!(app.client.get(&url).send().await.expect("get").status(), StatusCode::FORBIDDEN);
    // A fresh list signs fresh links.
    let list = files(&app, &c, &c.visitor).await;
    let fresh = list["files"][0]["url"].as_str().expect("url");
    let r = app.client.get(fresh).send().await.expect("get");
    assert!(r.status() == StatusCode::OK || r.status().is_redirection());
}

#[tokio::test]
async fn signed_links_expire_and_resist_tampering_on_local_storage() {
    let app = TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.chat_url_ttl_secs = 1), ..Default::default() }).await;
    links_expire_and_resist_tampering(app).await;
}

#[tokio::test]
async fn signed_links_expire_and_resist_tampering_on_s3() {
    let s3 = Arc::new(S3Server::start().await);
    let app =
        TestApp::spawn_with(Spawn { s3: Some(s3), tweak: Box::new(|c| c.chat_url_ttl_secs = 1), ..Default::default() })
            .await;
    links_expire_and_resist_tampering(app).await;
}

#[tokio::test]
async fn infected_uploads_are_refused_when_scanning_is_configured() {
    let Some(clamd) = Clamd::start().await else { return };
    let address = clamd.address.clone();
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(move |c| c.clamd_address = Some(address)), ..Default::default() })
            .await;
    let (_, c) = setup(&app).await;
    let r = upload(&app, Some(&c.visitor), "eicar.txt", fixtures::eicar(), &[]).await;
    let body = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "infected").await;
    assert!(body["error"].as_str().is_some_and(|e| e.contains("EICAR")), "{body}");
    assert_eq!(files(&app, &c, &c.visitor).await["count"], 0);
    assert!(app.state.blobs.list("chat").await.expect("list").is_empty());
    let metrics = app.get("/metrics", None).await.text().await.expect("text");
    assert!(metrics.contains("vitrine_chat_uploads_total{result=\"refused\",reason=\"infected\"}"));
    // A clean file passes the scanner.
    assert_eq!(
        upload(&app, Some(&c.visitor), "clean.txt", b"all good\n".to_vec(), &[]).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn an_unreachable_scanner_refuses_uploads_unless_configured_to_fail_open() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let a2 = addr.clone();
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(move |c| c.clamd_address = Some(a2)), ..Default::default() }).await;
    let (_, c) = setup(&app).await;
    let r = upload(&app, Some(&c.visitor), "a.txt", b"hello\n".to_vec(), &[]).await;
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert_eq!(files(&app, &c, &c.visitor).await["count"], 0);
    let open = TestApp::spawn_with(Spawn {
        tweak: Box::new(move |c| {
            c.clamd_address = Some(addr);
            c.clamd_fail_open = true;
        }),
        ..Default::default()
    })
    .await;
    let (_, c) = setup(&open).await;
    assert_eq!(upload(&open, Some(&c.visitor), "a.txt", b"hello\n".to_vec(), &[]).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_widget_and_agent_pages_render() {
    let app = TestApp::spawn().await;
    let (_, c) = setup(&app).await;
    let r = app.get(&format!("/chat/widget/?widget_key={}", c.widget_key), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"].to_str().expect("csp").to_string();
    assert!(csp.contains("frame-ancestors *"), "the widget may be framed: {csp}");
    assert!(r.headers().get("x-frame-options").is_none());
    let html = r.text().await.expect("html");
    assert!(html.contains("Acme") && html.contains(&c.widget_key));
    assert!(html.contains("/static/sdk/chat-file-upload.js"));
    assert_eq!(app.get("/chat/widget/?widget_key=nope", None).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/chat/widget/", None).await.status(), StatusCode::NOT_FOUND);
    // The agent page wants a signed-in user.
    let r = app.get("/agent/", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sdk = app.get("/static/sdk/chat-file-upload.js", None).await;
    assert_eq!(sdk.status(), StatusCode::OK);
    assert!(sdk.text().await.expect("js").contains("ChatbotFileUpload"));
}

/// A visitor on one instance and the agent on another share the session through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_and_agent_on_two_instances_share_the_session() {
    let Some(bus) = crate::helpers::redis::redis_url().await else { return };
    let (a, b) = crate::helpers::redis::pair(&bus).await;
    let (_, c) = setup(&a).await;
    let mut visitor = Ws::connect(&a, &ws_path(&c, &c.visitor)).await;
    visitor.next_of("connection_established").await;
    let mut agent = Ws::connect(&b, &ws_path(&c, &c.agent)).await;
    agent.next_of("connection_established").await;
    // Subscriptions on the bus are asynchronous: retry the first event until it crosses.
    let mut first = None;
    // (At most 8: uploads are limited to 10 a minute per uploader.)
    for i in 0..8 {
        let r = upload(&a, Some(&c.visitor), "a.txt", format!("note {i}\n").into_bytes(), &[]).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        if let Some(v) = agent.next_within(Duration::from_millis(500)).await {
            first = Some(v);
            break;
        }
    }
    let first = first.expect("a file uploaded on instance A reaches the agent on instance B");
    assert_eq!(first["type"], "file_shared");
    assert!(first["url"].as_str().is_some_and(|u| u.contains("/files/")), "signed before it crossed: {first}");
    assert!(first.get("thumbnail").is_some());
    agent.send(&json!({"type": "message", "text": "Got it, from B"})).await;
    let m = loop {
        let v = visitor.next().await;
        if v["type"] == "message" {
            break v;
        }
    };
    assert_eq!(m["text"], "Got it, from B");
    assert_eq!(m["sender"], "agent");
    // Both instances number the session's events in one sequence.
    assert_eq!(agent.next_of("message").await["seq"], m["seq"]);
}

/// Messages one socket sends at once (SPEC §9) are stored with rising seqs in send order, reach
/// the other side in that order, and are listed and replayed in that order; none is refused.
async fn a_burst_of_messages_on_one_socket_is_stored_and_delivered_in_send_order(db: Db) {
    let app = TestApp::on(db).await;
    let (_, c) = setup(&app).await;
    let mut agent = Ws::connect(&app, &ws_path(&c, &c.agent)).await;
    let start = agent.next_of("connection_established").await["seq"].as_i64().expect("seq");
    let mut visitor = Ws::connect(&app, &ws_path(&c, &c.visitor)).await;
    visitor.next_of("connection_established").await;
    // Within the socket's burst allowance (20 a second, 40 at once).
    let sent: Vec<String> = (0..35).map(|i| format!("m{i}")).collect();
    for m in &sent {
        visitor.send(&json!({"type": "message", "text": m})).await;
    }
    let mut live = Vec::new();
    let mut last = start;
    while live.len() < sent.len() {
        let v = agent.next_within(Duration::from_secs(10)).await.expect("every message arrives");
        if v["type"] != "message" {
            continue;
        }
        let seq = v["seq"].as_i64().expect("seq");
        assert!(seq > last, "rising seqs: {v}");
        last = seq;
        live.push(v["text"].as_str().expect("text").to_string());
    }
    assert_eq!(live, sent, "delivered in send order");
    let listed: Value = app
        .get(&format!("/api/chat/messages/?session_id={}&company_id={}", c.session_id, c.company_id), Some(&c.agent))
        .await
        .json()
        .await
        .expect("json");
    let stored: Vec<&str> =
        listed["messages"].as_array().expect("messages").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(stored, sent, "stored in send order");
    let mut again = Ws::connect(&app, &format!("{}&last_seq={start}", ws_path(&c, &c.agent))).await;
    assert_eq!(again.next_of("connection_established").await["recovered"], true);
    let mut replayed = Vec::new();
    while replayed.len() < sent.len() {
        replayed.push(again.next_of("message").await["text"].as_str().expect("text").to_string());
    }
    assert_eq!(replayed, sent, "replayed in send order");
}

/// Revoked access closes the sockets it covers at once, on every instance (issue 18, item 4):
/// an agent removed from the company on instance A loses their chat socket on instance B (the
/// visitor's stays), and a disabled account loses its notification socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_agent_or_disabling_an_account_closes_their_sockets_on_every_instance() {
    let Some(bus) = crate::helpers::redis::redis_url().await else { return };
    let (a, b) = crate::helpers::redis::pair(&bus).await;
    let (admin, c) = setup(&a).await;
    let me: Value = a.get("/api/auth/me/", Some(&c.agent)).await.json().await.expect("json");
    let agent_id = me["id"].as_i64().expect("id");
    let mut agent = Ws::connect(&b, &ws_path(&c, &c.agent)).await;
    agent.next_of("connection_established").await;
    let mut visitor = Ws::connect(&b, &ws_path(&c, &c.visitor)).await;
    visitor.next_of("connection_established").await;
    let mut notes = Ws::connect(&b, &format!("/ws/notifications/?token={}", c.agent)).await;
    notes.next_of("connection_established").await;

    let r = a.delete(&format!("/api/companies/{}/agents/{agent_id}/", c.company_id), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(agent.close_code(Duration::from_secs(1)).await, Some(1008), "closed within 1 s");
    assert_eq!(Ws::try_connect(&b, &ws_path(&c, &c.agent)).await.err(), Some(403));
    visitor.send(&json!({"type": "ping"})).await;
    assert_eq!(visitor.next_of("pong").await["type"], "pong", "the visitor's socket stays");

    let r = a.patch_json(&format!("/api/admin/users/{agent_id}/"), Some(&admin), &json!({"is_active": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(notes.close_code(Duration::from_secs(1)).await, Some(1008), "closed within 1 s");
}
