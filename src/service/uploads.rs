//! What happens to an uploaded file once its bytes are stored in a temporary blob, for every
//! feature that accepts files: what the bytes are (sniffing, the executable check, the allowed
//! types), what they show (image size and thumbnail, media duration), and discarding a refused one.
//! Reading the request (multipart, streaming into the temporary blob) is the edge's
//! (`http::upload`).

use bytes::Bytes;

use crate::app::AppState;
use crate::domain::filetype::{Verdict, classify};
use crate::error::{AppError, AppResult, ErrorCode};

/// Counts an upload's outcome (`vitrine_uploads_total{result}`).
pub fn count(result: &'static str) {
    metrics::counter!("vitrine_uploads_total", "result" => result).increment(1);
}

/// A file that has been received into a temporary blob and not yet committed.
pub struct Received {
    /// Temporary key of the stored bytes.
    pub key: object_store::path::Path,
    pub name: String,
    pub declared_type: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub prefix: Vec<u8>,
}

/// Removes a received file that will not be committed.
pub async fn discard(state: &AppState, rec: &Received) {
    if let Err(e) = state.blobs.delete(rec.key.as_ref()).await {
        tracing::warn!(error = %e, key = %rec.key, "could not remove a refused upload; the sweeper will");
    }
}

/// Decides from the stored bytes what the file is: the MIME type if allowed, else 415/422.
pub async fn inspect(state: &AppState, rec: &Received, allowed: &[String]) -> AppResult<String> {
    if rec.size == 0 {
        count("empty");
        return Err(AppError::validation("file", "the file is empty"));
    }
    let reader = state.blobs.reader(&rec.key, rec.size);
    let prefix = rec.prefix.clone();
    let name = rec.name.clone();
    let allowed = allowed.to_vec();
    let verdict = tokio::task::spawn_blocking(move || classify(reader, &prefix, &name, &allowed))
        .await
        .map_err(AppError::internal)?;
    match verdict {
        Verdict::Allowed(mime) => Ok(mime),
        Verdict::Unsupported(mime) => {
            count("unsupported_type");
            Err(AppError::UnsupportedType(format!("files of type {mime} are not accepted")))
        }
        Verdict::Executable(kind) => {
            count("executable");
            Err(AppError::rejected(ErrorCode::ExecutableRefused, format!("executable content is refused ({kind})")))
        }
    }
}

/// What the bytes of an accepted file tell: image size and thumbnail, media duration.
#[derive(Default)]
pub struct Probed {
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_seconds: Option<f64>,
    /// A small preview of an image (bytes, MIME type).
    pub thumbnail: Option<(Bytes, &'static str)>,
}

/// Which pixel limit an image upload is held to.
#[derive(Debug, Clone, Copy)]
pub enum PixelLimit {
    /// Assets: `image_max_pixels`.
    Asset,
    /// Chat uploads (anonymous visitors among them): `chat_image_max_pixels`.
    Chat,
}

/// Decodes what is needed of a received file of type `mime`: an image too large to decode or that
/// cannot be decoded is refused (422); other kinds never fail. Images are decoded through the
/// shared [`crate::media::Decoder`] (bounded concurrency and memory).
pub async fn probe(state: &AppState, rec: &Received, mime: &str, limit: PixelLimit) -> AppResult<Probed> {
    let mut out = Probed::default();
    match crate::domain::assets::MediaType::from_mime(mime) {
        crate::domain::assets::MediaType::Image => {
            let open = {
                let (key, size, st) = (rec.key.clone(), rec.size, state.clone());
                move || st.blobs.reader(&key, size)
            };
            let (max, setting) = match limit {
                PixelLimit::Asset => (state.config.image_max_pixels, "image_max_pixels"),
                PixelLimit::Chat => {
                    (state.config.chat_image_max_pixels.min(state.config.image_max_pixels), "chat_image_max_pixels")
                }
            };
            match state.decoder.probe(open, max).await {
                Ok(info) => {
                    out.width = Some(info.width as i64);
                    out.height = Some(info.height as i64);
                    out.thumbnail = info.thumbnail.map(|(b, m)| (Bytes::from(b), m));
                }
                Err(crate::media::ImageError::TooLarge { width, height }) => {
                    count("image_too_large");
                    let why = if width as u64 * height as u64 > max {
                        format!("more than the limit of {max} pixels ({setting})")
                    } else {
                        format!(
                            "more than one decode may use (image_decode_max_bytes = {})",
                            state.config.image_decode_max_bytes
                        )
                    };
                    return Err(AppError::rejected(
                        ErrorCode::ImageTooLarge,
                        format!("the image is {width}x{height} pixels, {why}; it was not processed"),
                    ));
                }
                Err(crate::media::ImageError::Corrupt(why)) => {
                    count("corrupt_image");
                    return Err(AppError::rejected(
                        ErrorCode::CorruptImage,
                        format!("the image cannot be decoded: {why}"),
                    ));
                }
            }
        }
        crate::domain::assets::MediaType::Video | crate::domain::assets::MediaType::Audio => {
            let reader = state.blobs.reader(&rec.key, rec.size);
            let m = mime.to_string();
            out.duration_seconds =
                tokio::task::spawn_blocking(move || crate::media::probe_duration(reader, &m)).await.unwrap_or(None);
        }
        _ => {}
    }
    Ok(out)
}

/// Counts an accepted upload and its size.
pub fn accepted(size: u64) {
    count("accepted");
    metrics::histogram!("vitrine_upload_size_bytes").record(size as f64);
}
