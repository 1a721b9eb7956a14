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
mod file_requests;
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
mod s3;
mod scaleout;
mod scan;
mod shares;
mod shutdown;
mod store;
mod tls;
