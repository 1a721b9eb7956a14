//! The operations of each feature (create an account, post a comment, receive a chat file, …):
//! what HTTP handlers, pages, sockets, the CLI and jobs all call. No HTTP types here: callers
//! parse and authorise the request, services do the work through the store, the blob store, the
//! bus and the rooms, and return domain values or `AppError`.

pub mod analytics;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod chat;
pub mod collaboration;
pub mod collections;
pub mod comments;
pub mod file_requests;
pub mod gallery;
pub mod notifications;
pub mod oidc;
pub mod policies;
pub mod resumable;
pub mod shares;
pub mod tokens;
pub mod uploads;
pub mod webhooks;
