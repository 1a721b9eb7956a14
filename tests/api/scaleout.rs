//! SPEC §9 on two instances that share one database and one Redis bus, each request sent to the
//! other instance than the one before: every limit and lockout is spent together, a write is
//! seen by both at the next request, and losing Redis degrades to counting alone, then recovers.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::redis::{OwnRedis, pair_with, redis_url};
use crate::helpers::{TestApp, assert_error, created, fixtures};

/// An owner with a PDF on `a`.
async fn owner_with_pdf(a: &TestApp) -> (String, i64) {
    let (token, _) = a.register("owner@example.com", "Olive Owner").await;
    let asset = a.upload(&token, "deck.pdf", fixtures::pdf(3)).await;
    (token, asset["id"].as_i64().expect("id"))
}

async fn share(app: &TestApp, token: &str, asset: i64, body: Value) -> Value {
    created(app.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(token), &body).await).await
}

/// The JSON twin of a share page, as a recipient asks for it.
async fn view(app: &TestApp, uuid: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/share/{uuid}/")))
        .header("accept", "application/json")
        .send()
        .await
        .expect("share page")
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("Retry-After")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_link_out_on_every_instance() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair_with(&bus, |_| {}).await;
    let (owner, asset) = owner_with_pdf(&a).await;
    let s = share(&a, &owner, asset, json!({"share_type": "protected", "password": "secure123"})).await;
    let unlock = format!("/api/v3/shares/{}/unlock/", s["uuid"].as_str().expect("uuid"));
    let apps = [&a, &b];
    for i in 0..5 {
        let r = apps[i % 2].post_json(&unlock, None, &json!({"password": format!("guess-{i}")})).await;
        assert_error(r, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    // Each instance saw only two or three of the five: the lockout is still the deployment's.
    for app in apps {
        let r = app.post_json(&unlock, None, &json!({"password": "secure123"})).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the right password is refused during the lockout");
        assert!(retry_after(&r) > 800, "locked out for the configured 15 minutes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_download_and_link_creation_budgets_are_spent_by_both_instances() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair_with(&bus, |c| {
        c.share_access_rate_per_ip_per_minute = 4;
        c.share_create_rate_per_user_per_hour = 3;
    })
    .await;
    let (owner, asset) = owner_with_pdf(&a).await;
    let apps = [&a, &b];
    // Three links an hour for this user, whichever instance creates them.
    let s = share(&a, &owner, asset, json!({"share_type": "protected", "password": "secure123"})).await;
    for app in [&b, &a] {
        share(app, &owner, asset, json!({"share_type": "public"})).await;
    }
    for app in apps {
        let r = app.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(&owner), &json!({})).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(retry_after(&r) >= 60);
    }
    // Four password attempts a minute from this address, whichever instance takes them (the
    // same budget as downloads; downloads across instances need shared storage: tests/api/cluster.rs).
    let unlock = format!("/api/v3/shares/{}/unlock/", s["uuid"].as_str().expect("uuid"));
    for i in 0..4 {
        let r = apps[i % 2].post_json(&unlock, None, &json!({"password": "secure123"})).await;
        assert_eq!(r.status(), StatusCode::OK, "attempt {i}");
    }
    for app in apps {
        let r = app.post_json(&unlock, None, &json!({"password": "secure123"})).await;
        assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_deleting_and_protecting_take_effect_on_both_instances_at_once() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair_with(&bus, |c| c.share_access_rate_per_ip_per_minute = 1000).await;
    let (owner, asset) = owner_with_pdf(&a).await;
    let apps = [&a, &b];
    let revoked = share(&a, &owner, asset, json!({"share_type": "public"})).await;
    let protected = share(&a, &owner, asset, json!({"share_type": "public"})).await;
    let (r_uuid, p_uuid) = (revoked["uuid"].as_str().expect("uuid"), protected["uuid"].as_str().expect("uuid"));
    // Warm both instances' caches.
    for app in apps {
        for u in [r_uuid, p_uuid] {
            assert_eq!(view(app, u).await.status(), StatusCode::OK);
        }
    }
    // Revoke through B: A refuses at the next request (and B too).
    assert_eq!(b.delete(&format!("/api/v3/shares/{r_uuid}/"), Some(&owner)).await.status(), StatusCode::NO_CONTENT);
    for app in apps {
        assert_error(view(app, r_uuid).await, StatusCode::GONE, "share_revoked").await;
    }
    // A password set through A is asked for by B at once.
    let r = a
        .patch_json(
            &format!("/api/v3/shares/{p_uuid}/"),
            Some(&owner),
            &json!({"share_type": "protected", "password": "new-secret-1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    for app in [&b, &a] {
        assert_eq!(view(app, p_uuid).await.status(), StatusCode::UNAUTHORIZED);
    }
    // The asset deleted through B: A no longer serves its link.
    let other = share(&a, &owner, asset, json!({"share_type": "public"})).await;
    let o_uuid = other["uuid"].as_str().expect("uuid");
    for app in apps {
        assert_eq!(view(app, o_uuid).await.status(), StatusCode::OK);
    }
    assert_eq!(b.delete(&format!("/api/v3/assets/{asset}/"), Some(&owner)).await.status(), StatusCode::NO_CONTENT);
    for app in [&a, &b] {
        assert_eq!(view(app, o_uuid).await.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_is_refused_by_both_instances_at_the_next_request() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair_with(&bus, |_| {}).await;
    let (admin, _) = a.register("admin@example.com", "Ada Admin").await;
    let (user, user_id) = a.register("user@example.com", "Uma User").await;
    for app in [&a, &b] {
        assert_eq!(app.get("/api/auth/me/", Some(&user)).await.status(), StatusCode::OK);
    }
    let r = b.patch_json(&format!("/api/admin/users/{user_id}/"), Some(&admin), &json!({"is_active": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    for app in [&a, &b] {
        assert_error(app.get("/api/auth/me/", Some(&user)).await, StatusCode::FORBIDDEN, "account_disabled").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gallery_answers_cached_on_one_instance_drop_a_post_deleted_on_the_other() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair_with(&bus, |_| {}).await;
    let (admin, _) = a.register("admin@example.com", "Ada Admin").await;
    let up = a.upload_with(Some(&admin), "photo.png", fixtures::png(40, 30), &[("content_type", "talent_media")]).await;
    assert_eq!(up.status(), StatusCode::CREATED);
    let asset: Value = up.json().await.expect("json");
    let r = a
        .post_json(
            "/api/dashboard/share-media/",
            Some(&admin),
            &json!({"content_type": "talent_media", "object_id": asset["id"], "caption": "Sunset"}),
        )
        .await;
    let status = r.status();
    let post: Value = r.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{post}");
    let id = post["shared_post"]["id"].as_i64().expect("post id");
    let count = |v: Value| v["count"].as_i64().expect("count");
    for app in [&a, &b] {
        let list = app.get("/api/dashboard/shared-media/", None).await.json::<Value>().await.expect("json");
        assert_eq!(count(list), 1);
    }
    let r = a.delete(&format!("/api/dashboard/shared-media/{id}/delete/"), Some(&admin)).await;
    assert!(r.status().is_success(), "{}", r.status());
    for app in [&b, &a] {
        let list = app.get("/api/dashboard/shared-media/", None).await.json::<Value>().await.expect("json");
        assert_eq!(count(list), 0, "the deleted post is gone from the cached answer");
    }
}

/// A Redis of the test's own, that it stops and starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_instance_counts_alone_and_sharing_resumes_when_it_is_back() {
    if redis_url().await.is_none() {
        return;
    }
    let mut redis = OwnRedis::start().await;
    let (a, b) = pair_with(&redis.url(), |c| c.login_rate_per_account_per_minute = 2).await;
    let (owner, _) = a.register("olive@example.com", "Olive Owner").await;
    let asset = a.upload(&owner, "deck.pdf", fixtures::pdf(3)).await["id"].as_i64().expect("id");
    let link = share(&a, &owner, asset, json!({"share_type": "public"})).await;
    let uuid = link["uuid"].as_str().expect("uuid");
    assert_eq!(view(&b, uuid).await.status(), StatusCode::OK, "B has the link cached");
    let login = |app: &TestApp| {
        let app_client = app.client.clone();
        let url = app.url("/api/auth/login/");
        async move {
            app_client
                .post(url)
                .json(&json!({"email": "olive@example.com", "password": "wrong password!"}))
                .send()
                .await
                .expect("login")
                .status()
        }
    };
    // Shared: two attempts for the account, whichever instance takes them.
    assert_eq!(login(&a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&b).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&a).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(&b).await, StatusCode::TOO_MANY_REQUESTS);
    let ready = |app: &TestApp| {
        let (client, url) = (app.client.clone(), app.url("/readyz"));
        async move {
            let r = client.get(url).send().await.expect("readyz");
            (r.status(), r.json::<Value>().await.expect("json")["bus"].as_str().unwrap_or_default().to_string())
        }
    };
    assert_eq!(ready(&a).await, (StatusCode::OK, "ok".to_string()));

    redis.kill();
    // Nothing crashes: each instance counts on its own (its fresh local budget of two), says so
    // in /metrics, and /readyz reports the bus.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(login(&a).await);
    }
    assert_eq!(statuses, [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]);
    assert!(a.state.limits.counting.alone(), "the instance knows it counts alone");
    let metrics = a.get("/metrics", None).await.text().await.expect("metrics");
    assert!(metrics.contains("vitrine_limiter_shared"), "the fallback shows in /metrics");
    let mut down = false;
    for _ in 0..100 {
        if ready(&b).await == (StatusCode::SERVICE_UNAVAILABLE, "unavailable".to_string()) {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(down, "/readyz reports the bus as down");
    // B cannot hear A's writes now: it does not trust its cache (the revoke reaches no one).
    assert_eq!(a.delete(&format!("/api/v3/shares/{uuid}/"), Some(&owner)).await.status(), StatusCode::NO_CONTENT);
    assert_error(view(&b, uuid).await, StatusCode::GONE, "share_revoked").await;

    redis.restart().await;
    // Back: the instances share again (the restarted Redis starts from an empty budget).
    let mut shared = false;
    for _ in 0..100 {
        if ready(&a).await.0 == StatusCode::OK && ready(&b).await.0 == StatusCode::OK {
            shared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shared, "both instances are ready again");
    // (Past the moment when limit checks retry Redis after a failure.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(login(&b).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&b).await, StatusCode::TOO_MANY_REQUESTS, "counted together again");
    assert!(!a.state.limits.counting.alone() && !b.state.limits.counting.alone());
}
