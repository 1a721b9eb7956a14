//! One story through the whole Store, on SQLite always and PostgreSQL when configured.

use serde_json::json;
use vitrine::domain::assets::{AssetCommit, AssetMeta, AssetPatch, CompletedUpload, MediaType, asset_location};
use vitrine::domain::audit::{AuditAction, AuditEntry, AuditFilter, Who};
use vitrine::domain::pagination::PageRequest;
use vitrine::domain::uploads::{Upload, UploadState};
use vitrine::domain::users::User;
use vitrine::domain::users::{Email, PersonName, Role};
use vitrine::store::assets::StoredFile;
use vitrine::store::users::Created;
use vitrine::store::{AssetFilter, Store};

use crate::helpers::{Db, TestApp};

crate::on_both_databases!(
    the_store_keeps_accounts_and_assets_consistent,
    concurrent_registrations_get_distinct_ids_and_one_admin,
    a_comment_that_cannot_be_stored_fails_alone,
    links_made_before_collections_survive_the_upgrade,
    a_resumable_upload_becomes_one_asset_in_one_transaction
);

/// The audit entry of a new account (the store's tests act as the operator).
fn created(id: i64, role: Role) -> AuditEntry {
    Who::system().entry(AuditAction::UserCreated, id, json!({"role": role.as_str()}))
}

/// The audit entry of a deleted asset.
fn gone(id: i64) -> AuditEntry {
    Who::system().entry(AuditAction::AssetDeleted, id, json!({}))
}

const ADA: &str = "ada@example.com";
/// When the story's writes happen (the store takes the time from its callers).
const NOW: i64 = 1_705_314_600_000;

/// Ada, the first account (so an admin).
async fn ada(store: &Store) -> User {
    let (email, name) = (Email::parse(ADA).expect("email"), PersonName::parse("Ada").expect("name"));
    match store.create_user(&email, &name, "hash", None, NOW, created).await.expect("create") {
        Created::Ok(u) => u,
        Created::EmailTaken => panic!("{ADA} is new"),
    }
}

fn file(sha: &str) -> StoredFile {
    StoredFile {
        name: "a.pdf".into(),
        mime_type: "application/pdf".into(),
        media_type: MediaType::Document,
        size: 10,
        sha256: sha.into(),
        blob_key: format!("assets/1/{sha}"),
        thumb_key: None,
        width: None,
        height: Some(7),
        duration_seconds: Some(1.5),
    }
}

async fn the_store_keeps_accounts_and_assets_consistent(db: Db) {
    let app = TestApp::on(db).await;
    let store = &app.state.store;
    let ada = ada(store).await;
    assert_eq!(ada.role, Role::Admin);
    let (email, name) = (Email::parse(ADA).expect("email"), PersonName::parse("Ada").expect("name"));
    assert!(matches!(
        store.create_user(&email, &name, "hash", None, NOW, created).await.expect("create"),
        Created::EmailTaken
    ));
    let bob_email = Email::parse("bob@example.com").expect("email");
    let Created::Ok(bob) = store.create_user(&bob_email, &name, "hash", None, NOW, created).await.expect("create")
    else {
        panic!("created")
    };
    assert_eq!(bob.role, Role::User);
    assert_eq!(store.user_by_email("BOB@example.com").await.expect("q").map(|u| u.id), Some(bob.id));
    let changes = [
        Who { actor_id: Some(ada.id), ip: None }.entry(
            AuditAction::UserRoleChanged,
            bob.id,
            json!({"to": "dashboard"}),
        ),
        Who { actor_id: Some(ada.id), ip: None }.entry(AuditAction::UserDeactivated, bob.id, json!({})),
    ];
    let bob = store
        .update_user(bob.id, Some(Role::Dashboard), Some(false), NOW, &changes)
        .await
        .expect("update")
        .expect("exists");
    assert_eq!((bob.role, bob.is_active), (Role::Dashboard, false));
    // Each write's audit entries committed with it; the refused second Ada left none.
    let all = PageRequest { page: 1, page_size: 10 };
    let (log, count) = store.audit_page(&AuditFilter::default(), all).await.expect("audit");
    let actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(count, 4);
    assert_eq!(actions, ["user.deactivated", "user.role_changed", "user.created", "user.created"]);
    assert_eq!(log[0].actor_email.as_deref(), Some(ADA));
    assert_eq!(log[0].target_id, bob.id.to_string());
    let mine = AuditFilter { actor_id: Some(ada.id), ..AuditFilter::default() };
    assert_eq!(store.audit_page(&mine, all).await.expect("audit").1, 2);
    let batch = store.audit_batch(&AuditFilter::default(), Some(log[1].id), 10).await.expect("batch");
    assert_eq!(batch.iter().map(|r| r.id).collect::<Vec<_>>(), vec![log[2].id, log[3].id]);
    assert_eq!(store.delete_audit_before(NOW).await.expect("delete"), 0);
    assert_eq!(store.delete_audit_before(NOW + 1).await.expect("delete"), 4);
    assert_eq!(store.count_admins().await.expect("count"), 1);

    let meta = AssetMeta {
        title: "T".into(),
        description: "D".into(),
        tags: vec!["a".into(), "b".into()],
        content_type: "prop".into(),
    };
    // A file without a duration first: the duration parameter is then NULL, and a later
    // duration must still be stored (PostgreSQL fixes a cached statement's parameter types).
    let undated = StoredFile { duration_seconds: None, ..file("zzz") };
    let id0 = store.insert_asset(ada.id, &meta, &undated, NOW).await.expect("insert without a duration");
    assert_eq!(store.asset(id0).await.expect("q").expect("exists").duration_seconds, None);
    assert!(store.delete_asset(id0, NOW, &gone(id0)).await.expect("delete"));
    let id1 = store.insert_asset(ada.id, &meta, &file("aaa"), NOW).await.expect("insert");
    let id2 = store.insert_asset(ada.id, &meta, &file("bbb"), NOW).await.expect("insert");
    assert!(id2 > id1);
    let a = store.asset(id1).await.expect("q").expect("exists");
    assert_eq!((a.owner_name.as_str(), a.tags.len(), a.height, a.duration_seconds), ("Ada", 2, Some(7), Some(1.5)));
    let (page, count) =
        store.list_assets(AssetFilter::Owner(ada.id), PageRequest { page: 1, page_size: 1 }).await.expect("list");
    assert_eq!((count, page[0].id), (2, id2));
    let (_, none) =
        store.list_assets(AssetFilter::Owner(bob.id), PageRequest { page: 1, page_size: 10 }).await.expect("list");
    assert_eq!(none, 0);
    let (_, all) = store.list_assets(AssetFilter::All, PageRequest { page: 1, page_size: 10 }).await.expect("list");
    assert_eq!(all, 2);
    let patched = store
        .update_asset(id1, &AssetPatch { title: Some("New".into()), tags: Some(vec![]), ..Default::default() }, NOW)
        .await
        .expect("patch")
        .expect("exists");
    assert_eq!((patched.title.as_str(), patched.description.as_str(), patched.tags.len()), ("New", "D", 0));
    assert!(store.blob_referenced("assets/1/aaa").await.expect("q"));
    assert_eq!(store.stored_bytes().await.expect("sum"), 20);
    assert!(store.delete_asset(id1, NOW, &gone(id1)).await.expect("delete"));
    assert!(!store.delete_asset(id1, NOW, &gone(id1)).await.expect("delete"));
    assert!(!store.blob_referenced("assets/1/aaa").await.expect("q"));
    // One entry per asset actually deleted; the second delete of id1 changed nothing and wrote none.
    let deleted = AuditFilter { action: Some(AuditAction::AssetDeleted), ..AuditFilter::default() };
    let (entries, n) = store.audit_page(&deleted, PageRequest { page: 1, page_size: 10 }).await.expect("audit");
    assert_eq!(n, 2);
    assert_eq!(entries.iter().map(|e| e.target_id.clone()).collect::<Vec<_>>(), vec![id1.to_string(), id0.to_string()]);
}

async fn concurrent_registrations_get_distinct_ids_and_one_admin(db: Db) {
    let app = TestApp::on(db).await;
    let mut tasks = vec![];
    for i in 0..12 {
        let store = app.state.store.clone();
        tasks.push(tokio::spawn(async move {
            let email = Email::parse(&format!("u{i}@example.com")).expect("email");
            let name = PersonName::parse("U").expect("name");
            match store.create_user(&email, &name, "hash", None, NOW, created).await.expect("create") {
                Created::Ok(u) => u,
                Created::EmailTaken => panic!("distinct emails"),
            }
        }));
    }
    let mut ids = vec![];
    let mut admins = 0;
    for t in tasks {
        let u = t.await.expect("join");
        ids.push(u.id);
        admins += usize::from(u.role == Role::Admin);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12);
    assert_eq!(admins, 1, "exactly one first account");
}

/// Comments stored at the same moment share a transaction on SQLite; one that the database
/// refuses (here a trigger refuses the text "refuse") fails alone and the others are stored.
async fn a_comment_that_cannot_be_stored_fails_alone(db: Db) {
    use vitrine::domain::comments::NewComment;
    use vitrine::store::comments::Author;
    let app = TestApp::on(db).await;
    let store = &app.state.store;
    let ada = ada(store).await;
    let meta = AssetMeta { title: "T".into(), description: String::new(), tags: vec![], content_type: "prop".into() };
    let asset = store.insert_asset(ada.id, &meta, &file("ccc"), NOW).await.expect("insert");
    let refuse: &[&str] = match store.dialect() {
        vitrine::store::Dialect::Sqlite => &["CREATE TRIGGER refuse BEFORE INSERT ON comments
             WHEN NEW.content = 'refuse' BEGIN SELECT RAISE(ABORT, 'refused'); END"],
        vitrine::store::Dialect::Postgres => &[
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN IF NEW.content = 'refuse' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON comments FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
    };
    for sql in refuse {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(store.pool()).await.expect("trigger");
    }
    let comment = |i: usize| NewComment {
        content: if i == 20 { "refuse".into() } else { format!("c{i}") },
        position_x: None,
        position_y: None,
        timestamp_ms: None,
        parent_id: None,
    };
    let author = Author::User(ada.id);
    let results = futures::future::join_all((0..41).map(|i| {
        let (c, author) = (comment(i), author.clone());
        async move { store.insert_comment(asset, &author, &c, 1_000).await }
    }))
    .await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), i != 20, "comment {i}: {:?}", r.as_ref().err());
    }
    let stored = store.comments_of_asset(asset).await.expect("list");
    assert_eq!(stored.len(), 40);
    let ids: std::collections::BTreeSet<i64> = stored.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 40);
}

/// SQLite copies committed writes into the database file in the background, not inside a
/// commit: a moment after a write, a copy of the main file alone (without its WAL) has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpoints_in_the_background() {
    let app = TestApp::on(Db::Sqlite).await;
    let store = &app.state.store;
    let (auto,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint").fetch_one(store.pool()).await.expect("pragma");
    assert_eq!(auto, 0, "no checkpoint inside a commit");
    let ada = ada(store).await;
    let main = app.dir.path().join("vitrine.db");
    let copy = app.dir.path().join("copy.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        std::fs::copy(&main, &copy).expect("copy the main file");
        let url = format!("sqlite://{}?mode=rw", copy.display());
        let found = match <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await {
            Ok(mut conn) => sqlx::query_as::<_, (i64,)>("SELECT id FROM users WHERE email = $1")
                .bind(ADA)
                .fetch_optional(&mut conn)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        if found == Some((ada.id,)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the write never reached the database file");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A database made by the release before collections (migrations 0001-0010) with a link and its
/// download grant: the upgrade keeps both, and links may then target a collection (asset_id NULL).
async fn links_made_before_collections_survive_the_upgrade(db: Db) {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db.fresh_url(dir.path()).await;
    sqlx::any::install_default_drivers();
    {
        let old = sqlx::migrate::Migrator::new(std::path::Path::new("./migrations")).await.expect("migrations");
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
        old.run_to(10, &mut conn).await.expect("old schema");
        for sql in [
            "INSERT INTO users (id, email, name, password_hash, role, is_active, created_at, updated_at)
             VALUES (1, 'ada@example.com', 'Ada', 'h', 'admin', 1, 0, 0)",
            "INSERT INTO assets (id, owner_id, title, description, tags, name, mime_type, media_type, size, sha256,
                blob_key, content_type, created_at, updated_at)
             VALUES (7, 1, 'T', '', '', 'a.pdf', 'application/pdf', 'document', 10, 'x', 'k', 'document', 0, 0)",
            "INSERT INTO shares (id, uuid, asset_id, owner_id, share_type, allow_preview, allow_download, allow_comments,
                allow_collaboration, notify_on_access, download_count, view_count, title, description, allowed_emails,
                created_at, updated_at)
             VALUES (3, 'u-1', 7, 1, 'public', 1, 1, 0, 0, 0, 2, 5, 'T', '', '', 0, 0)",
            "INSERT INTO share_download_grants (share_id, visitor_key, expires_at) VALUES (3, 'v', 99)",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect(sql);
        }
        conn.close().await.expect("close");
    }
    let store = Store::connect(&url, 4).await.expect("connect");
    store.migrate().await.expect("upgrade");
    store.migrate().await.expect("a second start changes nothing");
    let share = store.share_by_uuid("u-1").await.expect("read").expect("the link survived");
    assert_eq!((share.download_count, share.view_count), (2, 5));
    assert!(store.has_download_grant(3, "v", 1).await.expect("grant"), "the grant survived");
    let ada = store.user_by_email(ADA).await.expect("q").expect("ada");
    let c = store.insert_collection(ada.id, "Set", "", NOW).await.expect("collection");
    assert_eq!(store.add_collection_items(c.id, &[7, 7], NOW).await.expect("items"), 1);
    // A link without an asset is now allowed, and deleting its collection removes it.
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::query(
        "INSERT INTO shares (id, uuid, asset_id, collection_id, owner_id, share_type, allow_preview, allow_download,
            allow_comments, allow_collaboration, notify_on_access, download_count, view_count, title, description,
            allowed_emails, created_at, updated_at)
         VALUES (4, 'u-2', NULL, $1, 1, 'public', 1, 1, 0, 0, 0, 0, 0, 'C', '', '', 0, 0)",
    )
    .bind(c.id)
    .execute(&mut conn)
    .await
    .expect("a collection link");
    if matches!(db, Db::Sqlite) {
        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut conn).await.expect("pragma");
    }
    sqlx::query("DELETE FROM collections WHERE id = $1").bind(c.id).execute(&mut conn).await.expect("delete");
    let (left,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM shares WHERE id = 4").fetch_one(&mut conn).await.expect("q");
    assert_eq!(left, 0, "the collection's link went with it");
    let (items,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM collection_items").fetch_one(&mut conn).await.expect("q");
    assert_eq!(items, 0);
    let (assets,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM assets").fetch_one(&mut conn).await.expect("q");
    assert_eq!(assets, 1, "never the assets");
}

/// The asset's row and its upload's `done` commit together: a second completion of the same upload
/// (another request, or a retry after a crash) writes nothing and says so.
async fn a_resumable_upload_becomes_one_asset_in_one_transaction(db: Db) {
    let app = TestApp::on(db).await;
    let store = &app.state.store;
    let ada = ada(store).await;
    let up = Upload {
        id: "0b7b7a3e-2f7e-4b8e-9a59-0c1b2d3e4f50".into(),
        scope: format!("user:{}", ada.id),
        owner_id: ada.id,
        length: 10,
        offset: 10,
        metadata: Default::default(),
        data_key: "uploads/0b7b7a3e-2f7e-4b8e-9a59-0c1b2d3e4f50/data".into(),
        multipart_id: None,
        part_size: 0,
        parts_bytes: 0,
        tail_key: None,
        tail_len: 0,
        state: UploadState::Open,
        result: None,
        created_at: NOW,
        updated_at: NOW,
        expires_at: NOW + 3_600_000,
    };
    assert!(store.insert_upload(&up, 1).await.expect("upload row"), "under the limit");
    let meta = AssetMeta { title: "t".into(), ..Default::default() };
    let commit = AssetCommit {
        settles: None,
        completes: Some(CompletedUpload { id: up.id.clone(), expires_at: NOW + 7_200_000, names_asset: true }),
        event: None,
    };
    let id = store.insert_asset_from(ada.id, &meta, &file("f1"), None, &commit, NOW).await.expect("insert");
    let id = id.expect("the open upload became this asset");
    let done = store.upload(&up.id).await.expect("q").expect("row kept until it expires");
    assert_eq!(done.state, UploadState::Done);
    assert_eq!(done.result.as_deref(), Some(asset_location(id).as_str()));
    assert_eq!(done.expires_at, NOW + 7_200_000);

    let again = store.insert_asset_from(ada.id, &meta, &file("f2"), None, &commit, NOW).await.expect("insert");
    assert_eq!(again, None, "a finished upload does not become a second asset");
    let (assets, total) =
        store.list_assets(AssetFilter::Owner(ada.id), PageRequest { page: 1, page_size: 10 }).await.expect("list");
    assert_eq!(total, 1, "the refused completion left no asset row: {assets:?}");
    assert_eq!(assets[0].id, id);
}
