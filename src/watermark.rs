//! Preview renditions of images on preview-only links (issue 22 part 7): the image decoded under
//! the same bounds as thumbnails, reduced to at most [`PREVIEW_MAX`] pixels on its longest side,
//! re-encoded without its metadata, and, on a watermarked link, covered with a tiled,
//! semi-transparent diagonal text. The original bytes never leave through such a link. A
//! deterrent, not DRM: a screenshot still shows what the screen shows.
//!
//! The text is drawn with ab_glyph from DejaVu Sans Mono Bold (assets/fonts, Bitstream Vera
//! licence), embedded in the binary.

use std::io::Cursor;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{DynamicImage, ImageFormat, ImageReader, Limits, Rgba, RgbaImage};

use crate::media::ImageError;

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono-Bold.ttf");

/// Longest side of a preview rendition.
pub const PREVIEW_MAX: u32 = 2048;
/// The text's opacity where a glyph covers a pixel fully.
const OPACITY: f32 = 0.38;

/// A re-encoded preview of the image `bytes` (MIME `mime`), with `text` tiled over it when given.
/// JPEG stays JPEG; every other type becomes PNG. Returns the bytes and their MIME type.
pub fn rendition(
    bytes: &[u8],
    mime: &str,
    text: Option<&str>,
    max_pixels: u64,
    max_alloc: u64,
) -> Result<(Vec<u8>, &'static str), ImageError> {
    let img = decode(bytes, max_pixels, max_alloc)?;
    let img = if img.width() > PREVIEW_MAX || img.height() > PREVIEW_MAX {
        img.resize(PREVIEW_MAX, PREVIEW_MAX, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let alpha = img.color().has_alpha();
    let mut rgba = img.to_rgba8();
    if let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) {
        stamp(&mut rgba, t);
    }
    if mime == "image/jpeg" {
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(rgba)
            .to_rgb8()
            .write_to(&mut out, ImageFormat::Jpeg)
            .map_err(|e| ImageError::Corrupt(e.to_string()))?;
        return Ok((out.into_inner(), "image/jpeg"));
    }
    let (w, h) = rgba.dimensions();
    let (color, data) = if alpha {
        (png::ColorType::Rgba, rgba.into_raw())
    } else {
        (png::ColorType::Rgb, DynamicImage::ImageRgba8(rgba).to_rgb8().into_raw())
    };
    png_with_marker(w, h, color, &data).map(|b| (b, "image/png")).map_err(|e| ImageError::Corrupt(e.to_string()))
}

/// A PNG that says it is a Vitrine preview (a `tEXt` chunk): even a picture whose pixels come
/// through unchanged is never the stored file byte for byte.
fn png_with_marker(w: u32, h: u32, color: png::ColorType, data: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.add_text_chunk("Software".into(), "Vitrine preview rendition".into())?;
    let mut writer = enc.write_header()?;
    writer.write_image_data(data)?;
    writer.finish()?;
    Ok(out)
}

/// Decodes under a pixel limit read from the header and the decode memory budget.
fn decode(bytes: &[u8], max_pixels: u64, max_alloc: u64) -> Result<DynamicImage, ImageError> {
    let corrupt = |e: image::ImageError| ImageError::Corrupt(e.to_string());
    let (width, height) = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?
        .into_dimensions()
        .map_err(corrupt)?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ImageError::TooLarge { width, height });
    }
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width.max(1));
    limits.max_image_height = Some(height.max(1));
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 * 1024 * 1024).min(max_alloc));
    reader.limits(limits);
    match reader.decode() {
        Ok(img) => Ok(img),
        Err(image::ImageError::Limits(_)) => Err(ImageError::TooLarge { width, height }),
        Err(e) => Err(corrupt(e)),
    }
}

/// `text` rendered once as a coverage mask (row-major, `w` x `h`, 0..1).
struct Mask {
    w: usize,
    h: usize,
    cover: Vec<f32>,
}

fn mask(text: &str, px: f32) -> Option<Mask> {
    let font = FontRef::try_from_slice(FONT).ok()?;
    let scale = PxScale::from(px);
    let sf = font.as_scaled(scale);
    let mut caret = 0.0f32;
    let mut last = None;
    let mut glyphs = vec![];
    for c in text.chars().filter(|c| !c.is_control()).take(120) {
        let id = sf.glyph_id(c);
        if let Some(prev) = last {
            caret += sf.kern(prev, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(caret, sf.ascent())));
        caret += sf.h_advance(id);
        last = Some(id);
    }
    let (w, h) = (caret.ceil().max(1.0) as usize, (sf.ascent() - sf.descent()).ceil().max(1.0) as usize);
    let mut cover = vec![0f32; w * h];
    for g in glyphs {
        let Some(o) = font.outline_glyph(g) else { continue };
        let b = o.px_bounds();
        o.draw(|x, y, c| {
            let (px, py) = (x as i64 + b.min.x as i64, y as i64 + b.min.y as i64);
            if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < h {
                let i = py as usize * w + px as usize;
                cover[i] = cover[i].max(c);
            }
        });
    }
    Some(Mask { w, h, cover })
}

/// Tiles `text` over the image along a 30° diagonal, every other row shifted by half a tile:
/// each pixel is mapped back into the unrotated tiling and takes the text's coverage there.
fn stamp(img: &mut RgbaImage, text: &str) {
    let (w, h) = img.dimensions();
    let px = (w.min(h) as f32 / 22.0).clamp(12.0, 64.0);
    let Some(m) = mask(text, px) else { return };
    let tile_w = m.w as f32 + px * 3.0;
    let tile_h = m.h as f32 + px * 3.0;
    let (sin, cos) = (-std::f32::consts::FRAC_PI_6).sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        // Rotate the pixel back by the text's angle.
        let u = dx * cos + dy * sin;
        let v = -dx * sin + dy * cos;
        let row = (v / tile_h).floor();
        let shift = if (row as i64).rem_euclid(2) == 1 { tile_w / 2.0 } else { 0.0 };
        let tu = (u + shift).rem_euclid(tile_w);
        let tv = v.rem_euclid(tile_h);
        let (mx, my) = (tu as usize, tv as usize);
        if mx >= m.w || my >= m.h {
            continue;
        }
        let a = m.cover[my * m.w + mx] * OPACITY;
        if a <= 0.0 {
            continue;
        }
        // Light text with a dark edge reads on dark and light pictures alike: blend towards a
        // mid grey lifted by the pixel's own darkness.
        let Rgba([r, g, b, alpha]) = *p;
        let lum = (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / 255.0;
        let ink = if lum > 0.5 { 40.0 } else { 235.0 };
        let mix = |c: u8| ((c as f32) * (1.0 - a) + ink * a).round().clamp(0.0, 255.0) as u8;
        *p = Rgba([mix(r), mix(g), mix(b), alpha.max((a * 255.0) as u8)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img).write_to(&mut out, ImageFormat::Png).expect("png");
        out.into_inner()
    }

    #[test]
    fn the_text_changes_pixels_and_the_size_stays() {
        let src = png(400, 300);
        let (plain, mime) = rendition(&src, "image/png", None, 1 << 30, 1 << 30).expect("plain");
        assert_eq!(mime, "image/png");
        let (marked, _) = rendition(&src, "image/png", Some("ada@example.com"), 1 << 30, 1 << 30).expect("marked");
        let a = image::load_from_memory(&plain).expect("decode").to_rgba8();
        let b = image::load_from_memory(&marked).expect("decode").to_rgba8();
        assert_eq!(a.dimensions(), (400, 300));
        assert_eq!(b.dimensions(), (400, 300));
        let changed = a.pixels().zip(b.pixels()).filter(|(x, y)| x != y).count();
        // Tiled over the whole picture: a real share of it, never all of it.
        assert!(changed > 400 * 300 / 50 && changed < 400 * 300 / 2, "{changed} pixels changed");
    }

    #[test]
    fn big_images_are_reduced_and_jpeg_stays_jpeg() {
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(image::RgbImage::new(3000, 1000)).write_to(&mut out, ImageFormat::Jpeg).expect("jpeg");
        let (bytes, mime) = rendition(out.get_ref(), "image/jpeg", Some("t"), 1 << 30, 1 << 30).expect("ok");
        assert_eq!(mime, "image/jpeg");
        let img = image::load_from_memory(&bytes).expect("decode");
        assert_eq!((img.width(), img.height()), (2048, 683));
        assert!(matches!(rendition(&png(100, 100), "image/png", None, 50, 1 << 30), Err(ImageError::TooLarge { .. })));
    }
}
