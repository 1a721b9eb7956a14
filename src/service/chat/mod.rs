//! Chat file sharing (SPEC §7, docs/chat.md): who may reach which session (`access`), companies and
//! agents (`admin`), visitor sessions and their lists (`sessions`), the files as both sides see
//! them (`files`), and receiving an upload (`uploads`).

pub mod access;
pub mod admin;
pub mod files;
pub mod sessions;
pub mod uploads;
