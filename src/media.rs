//! Looking inside media: image dimensions and thumbnails with bounded decoding (a decompression
//! bomb is refused, not processed), and the duration of MP4/MOV and WAV files.

use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// Longest side of a thumbnail.
pub const THUMB_MAX: u32 = 320;

#[derive(Debug)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    /// Thumbnail bytes and their MIME type.
    pub thumbnail: Option<(Vec<u8>, &'static str)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ImageError {
    /// More pixels than allowed (or a decoder refused its allocation).
    TooLarge { width: u32, height: u32 },
    /// Not decodable as the image it claims to be.
    Corrupt(String),
}

/// Reads the header, refuses images over `max_pixels`, then decodes under the same bound and
/// makes a thumbnail. `open` must return a fresh reader over the whole file each time.
pub fn probe_image<R, F>(mut open: F, max_pixels: u64) -> Result<ImageInfo, ImageError>
where
    R: Read + Seek,
    F: FnMut() -> R,
{
    let header = ImageReader::new(BufReader::new(open()))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let (width, height) = header.into_dimensions().map_err(|e| ImageError::Corrupt(e.to_string()))?;
    if width as u64 * height as u64 > max_pixels || width == 0 || height == 0 {
        return Err(ImageError::TooLarge { width, height });
    }
    let mut reader = ImageReader::new(BufReader::new(open()))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width.max(1));
    limits.max_image_height = Some(height.max(1));
    // RGBA at 8 bits per channel, plus slack for decoders' own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 * 1024 * 1024));
    reader.limits(limits);
    let img = match reader.decode() {
        Ok(img) => img,
        Err(image::ImageError::Limits(_)) => return Err(ImageError::TooLarge { width, height }),
        Err(e) => return Err(ImageError::Corrupt(e.to_string())),
    };
    Ok(ImageInfo { width, height, thumbnail: thumbnail(&img) })
}

/// JPEG for opaque images, PNG when there is transparency.
fn thumbnail(img: &DynamicImage) -> Option<(Vec<u8>, &'static str)> {
    let small = img.thumbnail(THUMB_MAX, THUMB_MAX);
    let mut out = Cursor::new(Vec::new());
    if small.color().has_alpha() {
        small.write_to(&mut out, ImageFormat::Png).ok()?;
        Some((out.into_inner(), "image/png"))
    } else {
        DynamicImage::ImageRgb8(small.to_rgb8()).write_to(&mut out, ImageFormat::Jpeg).ok()?;
        Some((out.into_inner(), "image/jpeg"))
    }
}

/// Duration in seconds of an MP4/MOV (`moov/mvhd`) or WAV (`fmt `/`data`) file, when readable.
pub fn probe_duration<R: Read + Seek>(mut r: R, mime: &str) -> Option<f64> {
    match mime {
        "video/mp4" | "video/quicktime" | "audio/mp4" => mp4_duration(&mut r),
        "audio/wav" => wav_duration(&mut r),
        _ => None,
    }
}

fn read_u32(r: &mut impl Read) -> Option<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).ok()?;
    Some(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Option<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).ok()?;
    Some(u64::from_be_bytes(b))
}

/// Walks boxes from `start` to `end` looking for `kind`; returns the payload range.
fn find_box<R: Read + Seek>(r: &mut R, start: u64, end: u64, kind: &[u8; 4]) -> Option<(u64, u64)> {
    let mut pos = start;
    for _ in 0..4096 {
        if pos + 8 > end {
            return None;
        }
        r.seek(SeekFrom::Start(pos)).ok()?;
        let size32 = read_u32(r)? as u64;
        let mut t = [0u8; 4];
        r.read_exact(&mut t).ok()?;
        let (size, header) = match size32 {
            1 => (read_u64(r)?, 16),
            0 => (end - pos, 8),
            s => (s, 8),
        };
        if size < header {
            return None;
        }
        if &t == kind {
            return Some((pos + header, pos + size));
        }
        pos = pos.checked_add(size)?;
    }
    None
}

fn mp4_duration<R: Read + Seek>(r: &mut R) -> Option<f64> {
    let end = r.seek(SeekFrom::End(0)).ok()?;
    let (moov_start, moov_end) = find_box(r, 0, end, b"moov")?;
    let (mvhd, _) = find_box(r, moov_start, moov_end, b"mvhd")?;
    r.seek(SeekFrom::Start(mvhd)).ok()?;
    let version = read_u32(r)? >> 24;
    let (timescale, duration) = if version == 1 {
        read_u64(r)?;
        read_u64(r)?;
        (read_u32(r)?, read_u64(r)?)
    } else {
        read_u32(r)?;
        read_u32(r)?;
        (read_u32(r)?, read_u32(r)? as u64)
    };
    (timescale > 0 && duration != u64::MAX && duration != u32::MAX as u64).then(|| duration as f64 / timescale as f64)
}

fn wav_duration<R: Read + Seek>(r: &mut R) -> Option<f64> {
    let mut riff = [0u8; 12];
    r.seek(SeekFrom::Start(0)).ok()?;
    r.read_exact(&mut riff).ok()?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return None;
    }
    let mut byte_rate = None;
    for _ in 0..64 {
        let mut h = [0u8; 8];
        r.read_exact(&mut h).ok()?;
        let size = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as u64;
        match &h[0..4] {
            b"fmt " => {
                let mut f = [0u8; 16];
                r.read_exact(&mut f).ok()?;
                byte_rate = Some(u32::from_le_bytes([f[8], f[9], f[10], f[11]]));
                r.seek(SeekFrom::Current(size as i64 - 16 + (size as i64 & 1))).ok()?;
            }
            b"data" => {
                let rate = byte_rate.filter(|b| *b > 0)?;
                return Some(size as f64 / rate as f64);
            }
            _ => {
                r.seek(SeekFrom::Current(size as i64 + (size as i64 & 1))).ok()?;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img).write_to(&mut out, ImageFormat::Png).unwrap_or_default();
        out.into_inner()
    }

    #[test]
    fn images_get_dimensions_and_a_small_thumbnail() {
        let bytes = png(800, 400);
        let info = probe_image(|| Cursor::new(bytes.clone()), 1_000_000).expect("decodes");
        assert_eq!((info.width, info.height), (800, 400));
        let (thumb, mime) = info.thumbnail.expect("thumbnail");
        assert_eq!(mime, "image/jpeg");
        let t = image::load_from_memory(&thumb).expect("thumb decodes");
        assert_eq!((t.width(), t.height()), (320, 160));
    }

    #[test]
    fn too_many_pixels_are_refused_before_decoding() {
        let bytes = png(2000, 2000);
        assert_eq!(
            probe_image(|| Cursor::new(bytes.clone()), 1_000_000).err(),
            Some(ImageError::TooLarge { width: 2000, height: 2000 })
        );
    }

    #[test]
    fn wav_duration_is_read_from_the_header() {
        let mut w = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0data".to_vec();
        w.extend_from_slice(&32000u32.to_le_bytes());
        w.extend(std::iter::repeat_n(0u8, 32000));
        assert_eq!(probe_duration(Cursor::new(w), "audio/wav"), Some(2.0));
    }
}
