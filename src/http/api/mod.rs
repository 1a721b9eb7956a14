//! JSON API handlers, one file per feature, each with its `router()` at the top.

pub mod admin;
pub mod analytics;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod collaboration;
pub mod collections;
pub mod comments;
pub mod file_request_tus;
pub mod file_requests;
pub mod gallery;
pub mod notifications;
pub mod ops;
pub mod policies;
pub mod shares;
pub mod tokens;
pub mod uploads;
pub mod webhooks;
