//! Reader for the IDX format of MNIST and Fashion-MNIST (`*-ubyte`, optionally
//! gzipped): a big-endian header (magic `0x0000_08_NN` with NN dimensions, then
//! each dimension as u32) followed by unsigned bytes.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[10000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Parses IDX bytes (already decompressed). `name` appears in errors.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    let bad = |what: String| Error::SampleData(format!("{name} is not a valid IDX file: {what}"));
    if bytes.len() < 4 {
        return Err(bad(format!("{} bytes is too short for a header", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(bad(format!("magic {:02x?} is not that of an unsigned-byte IDX file (00 00 08 NN)", &bytes[..4])));
    }
    let ndims = usize::from(bytes[3]);
    if ndims == 0 || ndims > 4 {
        return Err(bad(format!("{ndims} dimensions")));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad("header is truncated".into()));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let body = &bytes[header..];
    if body.len() != expected {
        return Err(bad(format!("dimensions {dims:?} need {expected} bytes of data, found {}", body.len())));
    }
    Ok(IdxArray { dims, data: body.to_vec() })
}

/// Reads an IDX file, gunzipping it first when it starts with the gzip magic.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::SampleData(format!("{} is not valid gzip: {e}", path.display())))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_images_and_labels() {
        let a = parse_idx(&idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), "x").unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
        let l = parse_idx(&idx(&[3], &[7, 0, 9]), "y").unwrap();
        assert_eq!((l.dims, l.data), (vec![3], vec![7, 0, 9]));
    }

    #[test]
    fn rejects_bad_magic_and_wrong_length() {
        let e = parse_idx(&[0, 0, 9, 1, 0, 0, 0, 1, 5], "f").unwrap_err().to_string();
        assert!(e.contains("magic"), "{e}");
        let e = parse_idx(&idx(&[4], &[1, 2]), "f").unwrap_err().to_string();
        assert!(e.contains("need 4 bytes") && e.contains("found 2"), "{e}");
    }

    #[test]
    fn reads_gzipped_files() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.gz");
        let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
        gz.write_all(&idx(&[2], &[3, 4])).unwrap();
        gz.finish().unwrap();
        assert_eq!(read_idx(&p).unwrap().data, vec![3, 4]);
    }
}
