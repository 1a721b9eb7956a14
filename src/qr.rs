//! QR codes of share URLs, as PNG (exactly `size` pixels wide, modules centred on white) or SVG.

use std::io::Cursor;

use image::{ImageFormat, Luma};
use qrcode::QrCode;
use qrcode::render::svg;

pub const MIN_SIZE: u32 = 64;
pub const MAX_SIZE: u32 = 2048;
pub const DEFAULT_SIZE: u32 = 300;

/// A `size` x `size` PNG; the code keeps its quiet zone and whole-pixel modules.
pub fn png(data: &str, size: u32) -> anyhow::Result<Vec<u8>> {
    let code = QrCode::new(data.as_bytes())?;
    let img = code.render::<Luma<u8>>().max_dimensions(size, size).build();
    let mut canvas = image::GrayImage::from_pixel(size, size, Luma([255]));
    let (x, y) = ((size.saturating_sub(img.width())) / 2, (size.saturating_sub(img.height())) / 2);
    image::imageops::overlay(&mut canvas, &img, x as i64, y as i64);
    let mut out = Cursor::new(Vec::new());
    canvas.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// An SVG of `size` x `size` user units.
pub fn svg(data: &str, size: u32) -> anyhow::Result<String> {
    let code = QrCode::new(data.as_bytes())?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(size, size)
        .max_dimensions(size, size)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// `data:image/png;base64,...` of the default size, for `qr_code_data`.
pub fn data_url(data: &str) -> anyhow::Result<String> {
    use base64::Engine;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png(data, DEFAULT_SIZE)?)))
}
