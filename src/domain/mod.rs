//! Types that are valid by construction: request bodies are parsed into these at the edge,
//! and the store accepts only these. No I/O here.

pub mod analytics;
pub mod assets;
pub mod audit;
pub mod chat;
pub mod collaboration;
pub mod collections;
pub mod comments;
pub mod digest;
pub mod file_requests;
pub mod filetype;
pub mod gallery;
pub mod pagination;
pub mod policies;
pub mod shares;
pub mod time;
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod visitors;
pub mod webhooks;
