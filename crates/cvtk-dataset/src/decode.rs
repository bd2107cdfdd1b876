//! Decoding one image file into 8-bit RGB: format sniffing, a decompression-bomb
//! guard, EXIF orientation, and conversion from grayscale, RGBA, palette and
//! 16-bit images (alpha is dropped, as Pillow's `convert("RGB")` does, so scores
//! match the Python stack).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::{Error, Result};

/// Pillow's default: it refuses images with more than twice its
/// `MAX_IMAGE_PIXELS` (89,478,485) pixels.
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// File extensions treated as images when scanning a folder (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp"];

/// True when `path` has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// True when a file or folder `name` is hidden (starts with `.`: macOS's
/// `._` files, cvtk's own temporary files): what every folder walk skips.
pub fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn reader_for<'a>(bytes: &'a [u8], path: &Path, max_pixels: u64) -> Result<ImageReader<Cursor<&'a [u8]>>> {
    if bytes.is_empty() {
        return Err(Error::Decode { path: path.to_path_buf(), reason: "the file is empty (0 bytes)".into() });
    }
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::io("cannot read", path, e))?;
    if reader.format().is_none() {
        return Err(Error::Decode {
            path: path.to_path_buf(),
            reason: "not an image this program can read (supported: jpeg, png, bmp, gif, tiff, webp)".into(),
        });
    }
    let mut limits = Limits::default();
    // 8 bytes a pixel covers 16-bit RGBA; dimensions are checked separately below.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    Ok(reader)
}

fn decode_error(path: &Path, e: image::ImageError) -> Error {
    let reason = match &e {
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file is truncated (ends before the image data does)".to_string()
        }
        _ => e.to_string(),
    };
    Error::Decode { path: path.to_path_buf(), reason }
}

fn check_size(path: &Path, (width, height): (u32, u32), max_pixels: u64) -> Result<()> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(Error::TooLarge { path: path.to_path_buf(), width, height, max_pixels });
    }
    if width == 0 || height == 0 {
        return Err(Error::Decode {
            path: path.to_path_buf(),
            reason: format!("image has no pixels ({width}x{height})"),
        });
    }
    Ok(())
}

/// Decodes image bytes (named `path` in errors) to upright 8-bit RGB.
pub fn decode_rgb_bytes(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let reader = reader_for(bytes, path, max_pixels)?;
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(path, e))?;
    check_size(path, decoder.dimensions(), max_pixels)?;
    // A broken EXIF block should not make a readable image unusable.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))?;
    img.apply_orientation(orientation);
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// Reads and decodes an image file as it is stored: its own pixel layout
/// (gray, gray with alpha, RGB, RGBA; 8 or 16 bits) and orientation (EXIF
/// not applied), the way Pillow's `Image.open` gives it. For statistics that
/// depend on how an image is stored; [`decode_rgb`] is what a network sees.
pub fn decode_stored(path: &Path, max_pixels: u64) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    let reader = reader_for(&bytes, path, max_pixels)?;
    let decoder = reader.into_decoder().map_err(|e| decode_error(path, e))?;
    check_size(path, decoder.dimensions(), max_pixels)?;
    DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))
}

/// Reads and decodes an image file to upright 8-bit RGB.
pub fn decode_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    decode_rgb_bytes(&bytes, path, max_pixels)
}

/// A JPEG (quality `quality`) of the image at `path`, upright, fitting in a
/// `side` x `side` box with its aspect ratio kept and never enlarged: the
/// thumbnails of the pages cvtk writes and serves. None if it cannot be read.
pub fn thumbnail_jpeg(path: &Path, side: u32, quality: u8) -> Option<Vec<u8>> {
    let img = decode_rgb(path, DEFAULT_MAX_PIXELS).ok()?;
    encode_jpeg(&fit_in(&img, side), quality)
}

/// `img` shrunk to fit in a `side` x `side` box, its aspect ratio kept,
/// never enlarged.
pub fn fit_in(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let scale = (f64::from(side) / w.max(h)).min(1.0);
    let (tw, th) = (((w * scale).round() as u32).max(1), ((h * scale).round() as u32).max(1));
    image::imageops::thumbnail(img, tw, th)
}

/// `img` as a JPEG of quality `quality`; None if it cannot be encoded.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Option<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).ok()?;
    Some(out.into_inner())
}

/// Reads only the header: checks that the file is an image of a supported
/// format within the size limit, and returns its (width, height).
pub fn probe(path: &Path, max_pixels: u64) -> Result<(u32, u32)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    let reader = reader_for(&bytes, path, max_pixels)?;
    let dims = reader.into_dimensions().map_err(|e| decode_error(path, e))?;
    check_size(path, dims, max_pixels)?;
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgba, RgbaImage};

    fn encode(img: &DynamicImage, fmt: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, fmt).unwrap();
        out.into_inner()
    }

    #[test]
    fn converts_gray_rgba_and_16_bit_to_rgb() {
        let p = Path::new("x.png");
        let gray = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([200])));
        let rgb = decode_rgb_bytes(&encode(&gray, ImageFormat::Png), p, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(0, 0).0, [200, 200, 200]);

        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(2, 2, Rgba([10, 20, 30, 0])));
        let rgb = decode_rgb_bytes(&encode(&rgba, ImageFormat::Png), p, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(rgb.get_pixel(1, 1).0, [10, 20, 30], "alpha is dropped, colour kept");

        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(2, 2, image::Rgb([65535u16, 0, 32896])));
        let rgb = decode_rgb_bytes(&encode(&deep, ImageFormat::Png), p, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 0, 128]);
    }

    #[test]
    fn rejects_empty_and_non_image_bytes_with_reason() {
        let p = Path::new("bad.jpg");
        let e = decode_rgb_bytes(b"", p, DEFAULT_MAX_PIXELS).unwrap_err().to_string();
        assert!(e.contains("bad.jpg") && e.contains("empty"), "{e}");
        let e = decode_rgb_bytes(b"hello, I am text", p, DEFAULT_MAX_PIXELS).unwrap_err().to_string();
        assert!(e.contains("not an image"), "{e}");
    }

    #[test]
    fn rejects_images_over_the_pixel_limit_before_decoding() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(100, 100));
        let bytes = encode(&img, ImageFormat::Png);
        let e = decode_rgb_bytes(&bytes, Path::new("big.png"), 5_000).unwrap_err();
        assert!(matches!(e, Error::TooLarge { width: 100, height: 100, .. }), "{e}");
    }

    /// A small gradient image in every compiled-in format.
    fn seeds() -> Vec<(ImageFormat, Vec<u8>)> {
        let img =
            DynamicImage::ImageRgb8(RgbImage::from_fn(24, 17, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77])));
        [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::Tiff, ImageFormat::WebP]
            .into_iter()
            .map(|f| (f, encode(&img, f)))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 3000, failure_persistence: None, ..proptest::prelude::ProptestConfig::default()
        })]

        /// Damaged images (bytes overwritten, the file cut short) in every
        /// format are errors, never panics, and never decode past the pixel
        /// limit.
        #[test]
        fn the_decoder_never_panics_on_damaged_images(
            which in 0..6usize,
            edits in proptest::collection::vec((0..1usize << 16, proptest::prelude::any::<u8>()), 1..6),
            cut in 0..1usize << 16,
        ) {
            let (_, mut bytes) = seeds().swap_remove(which);
            let n = bytes.len();
            for (i, x) in edits {
                bytes[i % n] = x;
            }
            if cut % 3 == 0 {
                bytes.truncate(cut % n);
            }
            if let Ok(img) = decode_rgb_bytes(&bytes, Path::new("fuzz"), 1 << 16) {
                proptest::prop_assert!(u64::from(img.width()) * u64::from(img.height()) <= 1 << 16);
            }
        }
    }
}
