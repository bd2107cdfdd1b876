//! Decompression bombs for the abuse tests and `make soak`: small valid
//! images whose headers claim a huge size, in every format cvtk decodes.
//! Shared with examples/soak.rs by `#[path]`.

/// A small valid image of `format` whose header claims `side` x `side`
/// pixels: a decompression bomb as far as any decoder can tell before it
/// allocates.
pub fn bomb(format: image::ImageFormat, side: u32) -> Vec<u8> {
    use image::ImageFormat as F;
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(16, 16).write_to(&mut out, format).expect("encoding a 16x16 image");
    let small = out.into_inner();
    let mut b = small.clone();
    match format {
        F::Png => {
            // IHDR: width and height big-endian after the chunk type, then its CRC.
            b[16..20].copy_from_slice(&side.to_be_bytes());
            b[20..24].copy_from_slice(&side.to_be_bytes());
            let crc = crc32fast::hash(&b[12..29]);
            b[29..33].copy_from_slice(&crc.to_be_bytes());
        }
        F::Jpeg => {
            let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG has SOF0");
            let s = u16::try_from(side.min(65_500)).unwrap().to_be_bytes();
            b[sof + 5..sof + 7].copy_from_slice(&s);
            b[sof + 7..sof + 9].copy_from_slice(&s);
        }
        F::Gif => {
            let s = u16::try_from(side.min(65_500)).unwrap().to_le_bytes();
            for at in [6, 8] {
                b[at..at + 2].copy_from_slice(&s);
            }
            let desc = b.iter().position(|&x| x == 0x2C).expect("an image descriptor");
            b[desc + 5..desc + 7].copy_from_slice(&s);
            b[desc + 7..desc + 9].copy_from_slice(&s);
        }
        F::Bmp => {
            b[18..22].copy_from_slice(&side.to_le_bytes());
            b[22..26].copy_from_slice(&side.to_le_bytes());
        }
        F::Tiff => {
            assert_eq!(&b[..2], b"II");
            let ifd = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
            let n = u16::from_le_bytes(b[ifd..ifd + 2].try_into().unwrap()) as usize;
            for e in (0..n).map(|i| ifd + 2 + 12 * i) {
                let tag = u16::from_le_bytes(b[e..e + 2].try_into().unwrap());
                if tag == 256 || tag == 257 || tag == 278 {
                    b[e + 2..e + 4].copy_from_slice(&4u16.to_le_bytes()); // LONG
                    b[e + 4..e + 8].copy_from_slice(&1u32.to_le_bytes());
                    b[e + 8..e + 12].copy_from_slice(&side.to_le_bytes());
                }
            }
        }
        F::WebP => {
            // Lossless: 14 bits of width - 1, then 14 of height - 1 (image-webp
            // reads 16384 as 0, so 16383 is the largest side it takes).
            assert_eq!(&b[12..16], b"VP8L");
            let s = side.min(16_383) - 1;
            let old = u32::from_le_bytes(b[21..25].try_into().unwrap());
            let bits = (old & 0xF000_0000) | s | (s << 14);
            b[21..25].copy_from_slice(&bits.to_le_bytes());
        }
        other => panic!("no bomb for {other:?}"),
    }
    assert_ne!(b, small, "the header was patched");
    b
}
