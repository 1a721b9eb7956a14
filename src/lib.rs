//! Vitrine: a self-hosted server for sharing files through links you control.

/// Analytics: capture queue, batched writer, geo, user agents, reports.
pub mod analytics;
/// `AppState` and the serve loop.
pub mod app;
/// Password hashing, access tokens, generated secrets, CSRF tokens.
pub mod auth;
/// Blob storage over object_store (local or S3) and signed download URLs.
pub mod blob;
/// The event bus between instances: in-process, or Redis pub/sub.
pub mod bus;
/// Command line: serve, migrate, user create, config check|example.
pub mod cli;
/// Typed, layered, validated configuration.
pub mod config;
/// Domain types, valid by construction; no I/O.
pub mod domain;
/// `AppError`: the one place statuses and error codes are chosen.
pub mod error;
/// The edge: routers, extractors, JSON handlers, pages and WebSocket protocols.
pub mod http;
/// Background jobs (leftover sweeper, analytics writer and retention, view counts, limiter cleanup).
pub mod jobs;
/// Rate limits.
pub mod limits;
/// Outgoing e-mail (SMTP, in the background).
pub mod mail;
/// Image dimensions and thumbnails, media durations.
pub mod media;
/// Owner-only files and directories under `data_dir`.
pub mod private_fs;
/// QR codes (PNG, SVG).
pub mod qr;
/// Rooms: ordered live delivery, recovery, presence; the count of live sockets.
pub mod realtime;
/// Virus scanning of uploads through clamd.
pub mod scan;
/// The operations of each feature, below the HTTP edge (handlers, pages, sockets) and the CLI.
pub mod service;
/// Every SQL query, written once for SQLite and PostgreSQL.
pub mod store;
/// Preview renditions of images on preview-only links, with the tiled watermark text.
pub mod watermark;
/// ZIP archives written while they are sent (collection downloads).
pub mod zipstream;
