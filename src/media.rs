//! Looking inside media: image dimensions and thumbnails with bounded decoding (a decompression
//! bomb is refused, not processed), and the duration of MP4/MOV and WAV files.
//!
//! Decoding is bounded three ways (issue 18 item 2): a pixel limit read from the header before any
//! decoding, a memory budget per decode, and [`Decoder`], one semaphore shared by every caller so
//! that at most a few images (by default one per core) are decoded at once; callers wait their turn.
//! Thumbnails come from a reduced decode where the format allows it:
//! - PNG (not interlaced): rows are streamed and averaged into the thumbnail band by band; the
//!   full-size picture never exists (memory: a band of rows).
//! - JPEG (8-bit grey or RGB): decoded at 1/2, 1/4 or 1/8 scale by a reduced-size IDCT
//!   (`jpeg-decoder`'s `scale`), then resized.
//! - Everything else (GIF, WebP, interlaced PNG, CMYK or 16-bit JPEG): a full decode under the
//!   memory budget (`image::Limits::max_alloc`), then resized.

use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::sync::Arc;

use image::{DynamicImage, ImageBuffer, ImageFormat, ImageReader, Limits};
use tokio::sync::Semaphore;

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

/// The one gate of image decoding: a semaphore sized to the cores (or `image_decode_concurrency`)
/// and the memory budget of each decode. Cheap to clone; every clone shares the permits.
#[derive(Clone)]
pub struct Decoder {
    permits: Arc<Semaphore>,
    slots: usize,
    max_alloc: u64,
}

impl Decoder {
    /// `concurrency` 0 means one decode per available core.
    pub fn new(concurrency: usize, max_alloc: u64) -> Decoder {
        let slots = if concurrency == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            concurrency
        };
        Decoder { permits: Arc::new(Semaphore::new(slots)), slots, max_alloc }
    }

    /// How many decodes may run at once.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Permits free now (`slots()` when nothing is being decoded).
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// `work(max_alloc)` on the blocking pool once a permit is free (preview renditions share the
    /// decode gate with thumbnails).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(u64) -> Result<T, ImageError> + Send + 'static,
    ) -> Result<T, ImageError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ImageError::Corrupt("the image decoder is shut down".into()))?;
        let max_alloc = self.max_alloc;
        match tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(max_alloc)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "an image decoder failed");
                Err(ImageError::Corrupt("the decoder failed on this image".into()))
            }
        }
    }

    /// [`probe_image`] on the blocking pool once a permit is free. The permit goes back when the
    /// decode ends, whether it succeeded, failed or panicked.
    pub async fn probe<R, F>(&self, open: F, max_pixels: u64) -> Result<ImageInfo, ImageError>
    where
        R: Read + Seek,
        F: FnMut() -> R + Send + 'static,
    {
        let waiting = std::time::Instant::now();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ImageError::Corrupt("the image decoder is shut down".into()))?;
        metrics::histogram!("vitrine_image_decode_wait_seconds").record(waiting.elapsed().as_secs_f64());
        let max_alloc = self.max_alloc;
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            probe_image(open, max_pixels, max_alloc)
        });
        match job.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "an image decoder failed");
                Err(ImageError::Corrupt("the decoder failed on this image".into()))
            }
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> ImageError {
    ImageError::Corrupt(e.to_string())
}

/// Reads the header, refuses images over `max_pixels`, then decodes (a reduced decode where the
/// format allows, else a full one under `max_alloc` bytes) and makes a thumbnail. `open` must
/// return a fresh reader over the whole file each time. Blocking: call it through [`Decoder`].
pub fn probe_image<R, F>(mut open: F, max_pixels: u64, max_alloc: u64) -> Result<ImageInfo, ImageError>
where
    R: Read + Seek,
    F: FnMut() -> R,
{
    let header = ImageReader::new(BufReader::new(open())).with_guessed_format().map_err(corrupt)?;
    let format = header.format();
    let (width, height) = header.into_dimensions().map_err(corrupt)?;
    if width as u64 * height as u64 > max_pixels || width == 0 || height == 0 {
        return Err(ImageError::TooLarge { width, height });
    }
    let too_large = ImageError::TooLarge { width, height };
    let (tw, th) = fit(width, height, THUMB_MAX);
    let reduced = (tw, th) != (width, height);
    let small = match format {
        Some(ImageFormat::Png) if reduced => png_reduced(open(), (tw, th), max_alloc, too_large)?,
        Some(ImageFormat::Jpeg) if reduced => jpeg_reduced(open(), max_alloc, too_large)?,
        _ => None,
    };
    let small = match small {
        Some(img) => img,
        None => full_decode(open(), (width, height), max_pixels, max_alloc)?,
    };
    Ok(ImageInfo { width, height, thumbnail: encode_thumbnail(small) })
}

/// The size of a thumbnail of a `w`x`h` image: the image itself when it fits, else scaled down
/// to fit `max` (as `image`'s `thumbnail` computes it).
fn fit(w: u32, h: u32, max: u32) -> (u32, u32) {
    if w <= max && h <= max {
        return (w, h);
    }
    let ratio = (max as f64 / w as f64).min(max as f64 / h as f64);
    let side = |n: u32| ((n as f64 * ratio).round() as u32).max(1);
    (side(w), side(h))
}

/// A full decode under the memory budget, reduced to a thumbnail.
fn full_decode<R: Read + Seek>(
    r: R,
    (width, height): (u32, u32),
    max_pixels: u64,
    max_alloc: u64,
) -> Result<DynamicImage, ImageError> {
    let mut reader = ImageReader::new(BufReader::new(r)).with_guessed_format().map_err(corrupt)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width.max(1));
    limits.max_image_height = Some(height.max(1));
    // RGBA at 8 bits per channel plus slack for decoders' own buffers, within the budget.
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 * 1024 * 1024).min(max_alloc));
    reader.limits(limits);
    let img = match reader.decode() {
        Ok(img) => img,
        Err(image::ImageError::Limits(_)) => return Err(ImageError::TooLarge { width, height }),
        Err(e) => return Err(corrupt(e)),
    };
    Ok(img.thumbnail(THUMB_MAX, THUMB_MAX))
}

/// A PNG streamed row by row into a `tw`x`th` thumbnail: each output row is the area average of
/// its band of input rows. `None` for interlaced images (their rows come in passes).
fn png_reduced<R: Read + Seek>(
    r: R,
    (tw, th): (u32, u32),
    max_alloc: u64,
    too_large: ImageError,
) -> Result<Option<DynamicImage>, ImageError> {
    let limits = png::Limits { bytes: usize::try_from(max_alloc).unwrap_or(usize::MAX) };
    let mut decoder = png::Decoder::new_with_limits(BufReader::new(r), limits);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = match decoder.read_info() {
        Ok(r) => r,
        Err(png::DecodingError::LimitsExceeded) => return Err(too_large),
        Err(e) => return Err(corrupt(e)),
    };
    let (w, h, interlaced) = {
        let info = reader.info();
        (info.width, info.height, info.interlaced)
    };
    if interlaced {
        return Ok(None);
    }
    // The largest band of rows kept at once.
    let line = reader.output_line_size(w).map_or(u64::MAX, |n| n as u64);
    let band = (h.div_ceil(th) as u64 + 1).saturating_mul(line);
    if band > max_alloc {
        return Err(too_large);
    }
    let make: fn(u32, u32, Vec<u8>) -> Option<DynamicImage> = match reader.output_color_type().0 {
        png::ColorType::Grayscale => |w, h, px| ImageBuffer::from_raw(w, h, px).map(DynamicImage::ImageLuma8),
        png::ColorType::GrayscaleAlpha => |w, h, px| ImageBuffer::from_raw(w, h, px).map(DynamicImage::ImageLumaA8),
        png::ColorType::Rgb => |w, h, px| ImageBuffer::from_raw(w, h, px).map(DynamicImage::ImageRgb8),
        png::ColorType::Rgba => |w, h, px| ImageBuffer::from_raw(w, h, px).map(DynamicImage::ImageRgba8),
        // EXPAND turns palettes into RGB(A); anything else goes the general way.
        png::ColorType::Indexed => return Ok(None),
    };
    bands(&mut reader, (w, h), (tw, th), make).map(Some)
}

/// Output row `oy` is the area average (`thumbnail_exact`, compiled optimised inside `image`) of
/// its band of input rows `[oy*h/th, (oy+1)*h/th)`; `th <= h`, so every band has a row.
fn bands<R: std::io::BufRead + Seek>(
    reader: &mut png::Reader<R>,
    (w, h): (u32, u32),
    (tw, th): (u32, u32),
    make: fn(u32, u32, Vec<u8>) -> Option<DynamicImage>,
) -> Result<DynamicImage, ImageError> {
    let mut out = Vec::new();
    let mut y = 0u32;
    for oy in 0..th {
        let end = ((oy as u64 + 1) * h as u64 / th as u64) as u32;
        let first = y;
        let mut band = Vec::new();
        while y < end {
            let row = reader.next_row().map_err(corrupt)?.ok_or_else(|| corrupt("the image data ends early"))?;
            band.extend_from_slice(row.data());
            y += 1;
        }
        let rows = make(w, end - first, band).ok_or_else(|| corrupt("a row has the wrong length"))?;
        out.extend_from_slice(rows.thumbnail_exact(tw, 1).as_bytes());
    }
    make(tw, th, out).ok_or_else(|| corrupt("the thumbnail has the wrong size"))
}

/// A JPEG decoded at the smallest of 1/1, 1/2, 1/4, 1/8 that still covers the thumbnail, then
/// resized. `None` for pixel formats left to the general decoder (16-bit grey, CMYK).
fn jpeg_reduced<R: Read>(r: R, max_alloc: u64, too_large: ImageError) -> Result<Option<DynamicImage>, ImageError> {
    let mut decoder = jpeg_decoder::Decoder::new(BufReader::new(r));
    decoder.set_max_decoding_buffer_size(usize::try_from(max_alloc).unwrap_or(usize::MAX));
    // What this decoder cannot read (arithmetic coding, odd markers) goes the general way.
    let Ok((sw, sh)) = decoder.scale(THUMB_MAX as u16, THUMB_MAX as u16) else {
        return Ok(None);
    };
    let Some(info) = decoder.info() else { return Ok(None) };
    // A progressive JPEG keeps every coefficient of the full-size picture (2 bytes each).
    if info.coding_process == jpeg_decoder::CodingProcess::DctProgressive
        && let ImageError::TooLarge { width, height } = too_large
        && width as u64 * height as u64 * info.pixel_format.pixel_bytes() as u64 * 2 > max_alloc
    {
        return Err(too_large);
    }
    let format = Some(info.pixel_format);
    let (sw, sh) = (sw as u32, sh as u32);
    let img = match format {
        Some(jpeg_decoder::PixelFormat::L8) => {
            let Ok(px) = decoder.decode() else { return Ok(None) };
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(sw, sh, px).ok_or_else(|| corrupt("short JPEG data"))?)
        }
        Some(jpeg_decoder::PixelFormat::RGB24) => {
            let Ok(px) = decoder.decode() else { return Ok(None) };
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(sw, sh, px).ok_or_else(|| corrupt("short JPEG data"))?)
        }
        _ => return Ok(None),
    };
    Ok(Some(img.thumbnail(THUMB_MAX, THUMB_MAX)))
}

/// JPEG for opaque images, PNG when there is transparency.
fn encode_thumbnail(small: DynamicImage) -> Option<(Vec<u8>, &'static str)> {
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
        let info = probe_image(|| Cursor::new(bytes.clone()), 1_000_000, BUDGET).expect("decodes");
        assert_eq!((info.width, info.height), (800, 400));
        let (thumb, mime) = info.thumbnail.expect("thumbnail");
        assert_eq!(mime, "image/jpeg");
        let t = image::load_from_memory(&thumb).expect("thumb decodes");
        assert_eq!((t.width(), t.height()), (320, 160));
    }

    const BUDGET: u64 = 512 * 1024 * 1024;

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap_or_default();
        out.into_inner()
    }

    /// Left half red, right half blue.
    fn halves(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, _| if x < w / 2 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) })
    }

    fn thumb_of(bytes: &[u8], budget: u64) -> (image::DynamicImage, &'static str) {
        let info = probe_image(|| Cursor::new(bytes.to_vec()), 100_000_000, budget).expect("decodes");
        let (thumb, mime) = info.thumbnail.expect("thumbnail");
        (image::load_from_memory(&thumb).expect("thumb decodes"), mime)
    }

    #[test]
    fn a_big_png_is_reduced_row_by_row_within_a_small_budget() {
        let bytes = encode(DynamicImage::ImageRgb8(halves(3000, 1500)), ImageFormat::Png);
        // The full picture needs 13.5 MB; the streamed reduction fits in 2 MB.
        let (t, mime) = thumb_of(&bytes, 2 * 1024 * 1024);
        assert_eq!((t.width(), t.height(), mime), (320, 160, "image/jpeg"));
        let rgb = t.to_rgb8();
        assert!(rgb.get_pixel(10, 80)[0] > 200 && rgb.get_pixel(10, 80)[2] < 50, "left stays red");
        assert!(rgb.get_pixel(310, 80)[2] > 200 && rgb.get_pixel(310, 80)[0] < 50, "right stays blue");
        // A full decode of the same file does not fit that budget.
        let gif = encode(DynamicImage::ImageRgb8(halves(1000, 1000)), ImageFormat::Gif);
        assert_eq!(
            probe_image(|| Cursor::new(gif.clone()), 100_000_000, 2 * 1024 * 1024).err(),
            Some(ImageError::TooLarge { width: 1000, height: 1000 })
        );
    }

    #[test]
    fn transparency_survives_the_streamed_reduction() {
        let img = image::RgbaImage::from_fn(1000, 700, |x, _| image::Rgba([0, 200, 0, if x < 500 { 0 } else { 255 }]));
        let (t, mime) = thumb_of(&encode(DynamicImage::ImageRgba8(img), ImageFormat::Png), BUDGET);
        assert_eq!((t.width(), t.height(), mime), (320, 224, "image/png"));
        assert_eq!(t.to_rgba8().get_pixel(5, 5)[3], 0);
        assert_eq!(t.to_rgba8().get_pixel(315, 5)[3], 255);
    }

    #[test]
    fn a_big_jpeg_is_decoded_at_a_reduced_scale() {
        let bytes = encode(DynamicImage::ImageRgb8(halves(4000, 2000)), ImageFormat::Jpeg);
        // 1/8 scale: 500x250 RGB, well under 1 MB; the full picture would be 24 MB.
        let (t, mime) = thumb_of(&bytes, 1024 * 1024);
        assert_eq!((t.width(), t.height(), mime), (320, 160, "image/jpeg"));
        let rgb = t.to_rgb8();
        assert!(rgb.get_pixel(10, 80)[0] > 200, "left stays red");
        assert!(rgb.get_pixel(310, 80)[2] > 200, "right stays blue");
    }

    #[test]
    fn a_truncated_png_is_corrupt_not_a_panic() {
        let bytes = encode(DynamicImage::ImageRgb8(halves(2000, 2000)), ImageFormat::Png);
        let cut = bytes[..bytes.len() / 2].to_vec();
        assert!(matches!(probe_image(|| Cursor::new(cut.clone()), 100_000_000, BUDGET), Err(ImageError::Corrupt(_))));
    }

    #[tokio::test]
    async fn permits_bound_decodes_and_come_back_after_errors() {
        let decoder = Decoder::new(1, BUDGET);
        assert_eq!((decoder.slots(), decoder.available()), (1, 1));
        let bad = b"\x89PNG\r\n\x1a\nnot really".to_vec();
        assert!(decoder.probe(move || Cursor::new(bad.clone()), 1_000_000).await.is_err());
        assert_eq!(decoder.available(), 1);
        let good = png(400, 300);
        let info = decoder.probe(move || Cursor::new(good.clone()), 1_000_000).await.expect("decodes");
        assert_eq!((info.width, info.height), (400, 300));
        assert_eq!(decoder.available(), 1);
        assert!(Decoder::new(0, BUDGET).slots() >= 1);
    }

    #[test]
    fn too_many_pixels_are_refused_before_decoding() {
        let bytes = png(2000, 2000);
        assert_eq!(
            probe_image(|| Cursor::new(bytes.clone()), 1_000_000, BUDGET).err(),
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
