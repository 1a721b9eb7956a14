//! One integration-test binary: every test drives the real app through HTTP (DESIGN rule 7).

mod helpers;

mod accounts;
mod admin;
mod analytics;
mod assets;
mod browser;
mod chat;
mod clock;
mod cluster;
mod collaboration;
mod collection_shares;
mod collections;
mod file_requests;
mod file_requests_tus;
mod files;
mod gallery;
mod hardening_auth;
mod hardening_conn;
mod hardening_media;
mod hardening_ops;
mod jobs;
mod layers;
mod notifications;
mod ops;
mod pages;
mod realtime;
mod resumable_browser;
mod s3;
mod scaleout;
mod scan;
mod shares;
mod shutdown;
mod store;
mod tls;
mod uploads_tus;
