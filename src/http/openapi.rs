//! The OpenAPI document (`/api/openapi.json`): the `ApiDoc` head, and `complete`, which adds the
//! answers that the shared extractors give on every route so that each operation documents every
//! status it can answer (issue 18, item 14).
//!
//! The handlers' `#[utoipa::path]` annotations document their own outcomes (201, 409, 410, 422,
//! 429...). What the extractors of `crate::http::extract` answer before a handler runs is the same
//! on every route, so it is added here from what the annotation already declares:
//!
//! - a bearer requirement (`security(("bearer" = []))`, optional or not): 401 (no or bad
//!   credentials) and 403 (disabled account);
//! - a path parameter: 404 (a malformed one names nothing);
//! - a query parameter: 400 (`invalid_query` and friends);
//! - a request body: 400 (malformed), 413 (over the body limit), and 415 for JSON bodies sent
//!   without their content type;
//! - a WebSocket (`101`): 400 and 426 when the request is not a handshake.
//!
//! Every error answer refers to the one `Error` schema (SPEC §0); HTML pages document their
//! HTML error pages alongside.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};

/// The name of the error schema in the document (SPEC §0 error shape).
pub const ERROR_SCHEMA: &str = "ErrorResponse";

#[derive(OpenApi)]
#[openapi(
    info(title = "Vitrine API", description = "Share files through links you control, review them together, see who looked, curate a gallery, exchange files in support chat."),
    modifiers(&SecurityAddon),
    components(schemas(crate::error::ErrorResponse)),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "admin", description = "User management and the audit log"),
        (name = "assets", description = "Uploaded files"),
        (name = "collections", description = "Several files behind one link"),
        (name = "uploads", description = "Resumable uploads (tus 1.0.0)"),
        (name = "files", description = "Signed downloads"),
        (name = "shares", description = "Share links (owner)"),
        (name = "analytics", description = "Who looked at what"),
        (name = "notifications", description = "Live notifications"),
        (name = "comments", description = "Comments on assets"),
        (name = "collaboration", description = "Live review sessions"),
        (name = "gallery", description = "The shared-media gallery"),
        (name = "chat", description = "Chat file sharing: companies, sessions, files, messages"),
        (name = "webhooks", description = "Signed HTTP callbacks of events"),
        (name = "share links", description = "Share links (recipient)"),
        (name = "ops", description = "Health, readiness, metrics"),
        (name = "pages", description = "HTML pages")
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

/// The security scheme of `Authorization: Bearer` (a sign-in's JWT or a `vtr_` access token).
pub const BEARER: &str = "bearer";
/// The page session cookie, accepted on every API endpoint for same-origin requests.
pub const COOKIE: &str = "cookie";
/// The page's CSRF token in `X-CSRF-Token`, required with the cookie on state-changing methods.
pub const CSRF: &str = "csrf";

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut Document) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or vtr_ access token")
                    .description(Some(
                        "`Authorization: Bearer <token>`: the JWT of a sign-in (`POST /api/auth/login/`) or a \
                         personal access token (`vtr_…`, `POST /api/auth/tokens/`, limited to its scopes). \
                         Accepted from any origin, on every method.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::http::extract::SESSION_COOKIE,
                "The session cookie the login page sets, accepted on every API endpoint for same-origin \
                 requests only (a request with another site's `Origin`, or `Sec-Fetch-Site: cross-site`, is \
                 refused with 403 `csrf_failed`). State-changing methods (POST, PATCH, PUT, DELETE) must \
                 also send the page's CSRF token in `X-CSRF-Token` (the `csrf` scheme); without it: 403 \
                 `csrf_failed`.",
            ))),
        );
        components.add_security_scheme(
            CSRF,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The page's CSRF token (the `csrf_token` of its forms), required with the session cookie \
                 on state-changing methods, exactly as the pages' forms require it.",
            ))),
        );
    }
}

/// Adds to every operation the statuses its extractors can answer, and gives every error answer
/// the `Error` schema (see the module documentation).
pub fn complete(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for (safe, op) in [true, false, false, false, true, true, false, true].into_iter().zip(ops) {
            let Some(op) = op else { continue };
            complete_operation(path, op);
            add_cookie_rule(op, safe);
        }
    }
}

/// One authentication rule for the API (SPEC §0): wherever a bearer token is accepted, so is the
/// page's session cookie from this origin, with the `X-CSRF-Token` header on state-changing methods.
fn add_cookie_rule(op: &mut Operation, safe: bool) {
    use utoipa::openapi::security::SecurityRequirement;
    let Some(reqs) = op.security.as_mut() else { return };
    let has_bearer = reqs.iter().any(|r| serde_json::to_value(r).is_ok_and(|v| v.get(BEARER).is_some()));
    if !has_bearer {
        return;
    }
    let cookie = SecurityRequirement::new(COOKIE, Vec::<String>::new());
    let cookie = if safe { cookie } else { cookie.add(CSRF, Vec::<String>::new()) };
    // After the bearer requirement, before an optional empty one (`()`): credentials stay optional there.
    let at =
        reqs.iter().position(|r| serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty())));
    reqs.insert(at.unwrap_or(reqs.len()), cookie);
}

fn error_ref() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(Ref::from_schema_name(ERROR_SCHEMA))
}

fn json_error(description: &str) -> Response {
    ResponseBuilder::new().description(description).content("application/json", Content::new(Some(error_ref()))).build()
}

/// A body of `content_type` without a schema (an HTML page, a plain sentence).
fn untyped() -> RefOr<Content> {
    RefOr::T(Content::new(None::<RefOr<utoipa::openapi::schema::Schema>>))
}

fn error_content() -> RefOr<Content> {
    RefOr::T(Content::new(Some(error_ref())))
}

fn is_page(op: &Operation) -> bool {
    op.tags.as_ref().is_some_and(|t| t.iter().any(|t| t == "pages"))
}

fn complete_operation(path: &str, op: &mut Operation) {
    let has_bearer = op
        .security
        .as_ref()
        .is_some_and(|reqs| reqs.iter().any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("bearer").is_some())));
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path = params.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
    let has_query = params.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    let body_types: Vec<String> = match &op.request_body {
        Some(RefOr::T(b)) => b.content.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let is_socket = op.responses.responses.contains_key("101");

    let mut add = |status: &str, description: &str| {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| RefOr::T(json_error(description)));
    };
    if has_bearer {
        add("401", "Not authenticated: no, expired or invalid credentials");
        add("403", "Forbidden: the account is disabled, or it may not do this");
    }
    if has_path {
        add("404", "Not found");
    }
    if has_query || !body_types.is_empty() {
        add("400", "Invalid request");
    }
    // The connection rules (http::conn) answer every route: over a connection cap, 503
    // `too_many_connections`; a request body that stalls or trickles under the minimum rate, 408.
    add("503", "Unavailable: too many connections, or a service the request needs is down");
    if !body_types.is_empty() {
        add("408", "The request body stalled or came slower than the minimum rate");
        add("413", "The body is larger than the limit");
        add("415", "The body is not sent in the documented content type");
    }
    // Credentials are optional on share links, embeds, the gallery's public API and the forms of
    // pages, but bad ones are refused rather than ignored.
    let path_reads_credentials =
        path.starts_with("/api/") || path.starts_with("/share/") || path.starts_with("/embed/");
    if !is_socket && (path_reads_credentials || !body_types.is_empty()) {
        add("401", "Not authenticated: the credentials sent are expired or invalid");
    }
    if is_socket {
        for (status, description) in
            [("400", "Not a WebSocket handshake"), ("426", "The connection cannot be upgraded to a WebSocket")]
        {
            let entry =
                op.responses.responses.entry(status.to_string()).or_insert_with(|| RefOr::T(json_error(description)));
            if let RefOr::T(r) = entry {
                r.content.entry("text/plain".to_string()).or_insert_with(untyped);
            }
        }
    }

    // Every error answer has the one error schema; pages also answer with an HTML page.
    let page = is_page(op);
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        if !status.starts_with('4') && !status.starts_with('5') {
            continue;
        }
        if page {
            response.content.entry("text/html".to_string()).or_insert_with(untyped);
        }
        response.content.entry("application/json".to_string()).or_insert_with(error_content);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(crate::http::openapi_document()).expect("the document serialises")
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                    out.push((path.clone(), method.clone(), op.clone()));
                }
            }
        }
        out
    }

    /// utoipa keys schemas by their Rust name: two types with one name from different modules would
    /// silently share one schema (the chat session once was documented with the collaboration
    /// session's). Every feature router's schemas are compared by name.
    #[test]
    fn no_two_schemas_share_a_name() {
        let mut seen: BTreeMap<String, (usize, Value)> = BTreeMap::new();
        for (i, router) in crate::http::feature_routers().into_iter().enumerate() {
            let (_, doc) = router.split_for_parts();
            let doc = serde_json::to_value(doc).expect("json");
            let Some(schemas) = doc["components"]["schemas"].as_object() else { continue };
            for (name, schema) in schemas {
                if let Some((j, other)) = seen.get(name) {
                    assert_eq!(other, schema, "schema {name} of router {i} differs from the one of router {j}");
                } else {
                    seen.insert(name.clone(), (i, schema.clone()));
                }
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "{name} is referred to but not defined");
        }
    }

    #[test]
    fn every_operation_documents_what_its_extractors_answer() {
        let doc = document();
        for (path, method, op) in operations(&doc) {
            let responses = op["responses"].as_object().expect("responses");
            let has = |s: &str| responses.contains_key(s);
            let label = format!("{method} {path}");
            assert!(
                responses.keys().any(|s| s.starts_with('1') || s.starts_with('2') || s.starts_with('3')),
                "{label}: a success"
            );
            let secured = op["security"].as_array().is_some_and(|r| r.iter().any(|r| r.get("bearer").is_some()));
            if secured {
                assert!(has("401") && has("403"), "{label}: 401 and 403 for its bearer token");
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            if params.iter().any(|p| p["in"] == "path") {
                assert!(has("404"), "{label}: 404 for its path");
                for name in path.split('{').skip(1).map(|s| s.split('}').next().unwrap_or_default()) {
                    assert!(params.iter().any(|p| p["in"] == "path" && p["name"] == name), "{label}: {name} declared");
                }
            }
            if params.iter().any(|p| p["in"] == "query") || op.get("requestBody").is_some() {
                assert!(has("400"), "{label}: 400 for its query or body");
            }
            if op["requestBody"]["content"].get("application/json").is_some() {
                assert!(has("413") && has("415"), "{label}: 413 and 415 for its JSON body");
            }
            assert!(has("503"), "{label}: 503 over the connection caps");
            if op.get("requestBody").is_some() {
                assert!(has("408"), "{label}: 408 for a body under the minimum rate");
            }
            for (status, response) in responses {
                if status == "204" {
                    assert!(response.get("content").is_none(), "{label}: 204 has no body");
                }
                if status.starts_with('4') || status.starts_with('5') {
                    if status == "503" && path == "/readyz" {
                        continue;
                    }
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema,
                        &Value::from(format!("#/components/schemas/{ERROR_SCHEMA}")),
                        "{label}: {status} answers with the error schema"
                    );
                }
            }
        }
    }

    #[test]
    fn the_error_schema_is_the_shape_of_app_error() {
        let doc = document();
        let error = &doc["components"]["schemas"][ERROR_SCHEMA];
        assert_eq!(error["required"], serde_json::json!(["error", "code"]));
        for field in ["error", "code", "fields"] {
            assert!(error["properties"].get(field).is_some(), "{field}");
        }
    }

    /// The two schemas that were wrong (issue 18, item 14).
    #[test]
    fn chat_sessions_and_gallery_deletes_have_their_own_schemas() {
        let doc = document();
        let schema_of = |path: &str, method: &str, status: &str| {
            doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .map(|r| r.trim_start_matches("#/components/schemas/").to_string())
                .unwrap_or_default()
        };
        let chat = schema_of("/api/chat/sessions", "post", "201");
        let props = &doc["components"]["schemas"][&chat]["properties"];
        assert!(props.get("token").is_some() && props.get("widget_key").is_none(), "{chat}: {props}");
        assert!(props.get("participants").is_none(), "{chat} is not the collaboration session");
        let collab = schema_of("/api/v3/collaboration/sessions/{id}", "get", "200");
        assert!(doc["components"]["schemas"][&collab]["properties"].get("participants").is_some(), "{collab}");
        let deleted = schema_of("/api/dashboard/shared-media/{id}/delete", "delete", "200");
        let props = &doc["components"]["schemas"][&deleted]["properties"];
        assert_eq!(props.as_object().map(|p| p.keys().cloned().collect::<Vec<_>>()), Some(vec!["message".to_string()]));
        let messages = schema_of("/api/chat/messages", "get", "200");
        let item = doc["components"]["schemas"][&messages]["properties"]["messages"]["items"]["$ref"]
            .as_str()
            .map(|r| r.trim_start_matches("#/components/schemas/").to_string())
            .unwrap_or_default();
        assert_ne!(item, deleted, "a chat message is not the gallery's confirmation");
        assert_eq!(item, "ChatMessageOut");
    }

    /// One authentication rule (SPEC §0): bearer (JWT or `vtr_`), or the same-origin cookie, with
    /// the CSRF header on writes, on every bearer-secured operation.
    #[test]
    fn the_api_documents_bearer_and_the_cookie_with_its_csrf_header() {
        let doc = document();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[BEARER]["scheme"], "bearer");
        assert!(schemes[BEARER]["bearerFormat"].as_str().is_some_and(|f| f.contains("JWT") && f.contains("vtr_")));
        assert_eq!(
            (&schemes[COOKIE]["type"], &schemes[COOKIE]["in"]),
            (&Value::from("apiKey"), &Value::from("cookie"))
        );
        assert_eq!(schemes[COOKIE]["name"], crate::http::extract::SESSION_COOKIE);
        assert_eq!(
            (&schemes[CSRF]["in"], &schemes[CSRF]["name"]),
            (&Value::from("header"), &Value::from("X-CSRF-Token"))
        );
        let mut seen = 0;
        for (path, method, op) in operations(&doc) {
            let reqs = op["security"].as_array().cloned().unwrap_or_default();
            if !reqs.iter().any(|r| r.get(BEARER).is_some()) {
                continue;
            }
            seen += 1;
            let cookie = reqs.iter().find(|r| r.get(COOKIE).is_some());
            let cookie = cookie.unwrap_or_else(|| panic!("{method} {path}: the cookie is accepted"));
            let safe = ["get", "head", "options"].contains(&method.as_str());
            assert_eq!(cookie.get(CSRF).is_some(), !safe, "{method} {path}: X-CSRF-Token exactly on writes");
        }
        assert!(seen > 50, "{seen} secured operations");
        let upload = &doc["paths"]["/api/chat/upload"]["post"]["security"];
        assert!(upload.as_array().is_some_and(|r| r.iter().any(|r| r.get(COOKIE).is_some() && r.get(CSRF).is_some())));
    }
}
