//! The audit report: one self-contained HTML page (no file or network
//! request besides itself) with the counts at the top, the images per label,
//! and a gallery per finding kind: thumbnails, given and suggested labels,
//! duplicate sets side by side (leaks first), the quality statistic that
//! failed. The page draws everything from the same JSON `--json` prints,
//! embedded in it, so its figures are those.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::Engine;
use rayon::prelude::*;
use serde::Serialize;

use crate::{DatasetAudit, Error, Result};

const TEMPLATE: &str = include_str!("report.html");

/// Most thumbnails a report embeds (about 4 KB each): images beyond are
/// listed without a picture.
pub const MAX_THUMBNAILS: usize = 3000;

#[derive(Serialize)]
struct Data<'a> {
    dataset: String,
    base_model: &'a str,
    command: &'a str,
    audit: &'a DatasetAudit,
    thumbnails: std::collections::BTreeMap<u64, String>,
}

/// A small JPEG of the image at `path` as a data URL; none if it cannot be read.
fn thumbnail(path: &Path) -> Option<String> {
    let img = cvtk_dataset::decode::decode_rgb(path, cvtk_dataset::decode::DEFAULT_MAX_PIXELS).ok()?;
    let thumb = image::DynamicImage::ImageRgb8(img).thumbnail(112, 112).to_rgb8();
    let mut buf = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 80).encode_image(&thumb).ok()?;
    Some(format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(buf.into_inner())))
}

/// Writes the report of `audit` (of `dataset`, with features of
/// `base_model`, made by `command`) to `dir/audit.html`, atomically; returns
/// its path.
pub fn write_report(
    dir: &Path,
    audit: &DatasetAudit,
    dataset: &str,
    base_model: &str,
    command: &str,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| cvtk_core::IoError::new("cannot create folder", dir, e))?;
    // Every image a finding names, once, in the order the page shows them.
    let named = audit
        .label_issues
        .iter()
        .chain(&audit.neighbour_issues)
        .map(|i| (i.id, i.path.as_path()))
        .chain(audit.outliers.iter().map(|o| (o.image.id, o.image.path.as_path())))
        .chain(audit.duplicates.iter().flat_map(|d| d.images.iter().map(|m| (m.image.id, m.image.path.as_path()))))
        .chain(audit.quality.iter().map(|q| (q.image.id, q.image.path.as_path())));
    let mut seen = std::collections::HashSet::new();
    let shown: Vec<(u64, &Path)> = named.filter(|(id, _)| seen.insert(*id)).collect();
    let thumbnails =
        shown.par_iter().take(MAX_THUMBNAILS).filter_map(|(id, path)| thumbnail(path).map(|t| (*id, t))).collect();
    let data = Data { dataset: dataset.to_string(), base_model, command, audit, thumbnails };
    // `</` would end the script element the data sits in.
    let json = serde_json::to_string(&data).map_err(|e| Error::Invalid(e.to_string()))?.replace("</", "<\\/");
    let path = dir.join("audit.html");
    cvtk_core::write_atomic(&path, TEMPLATE.replace("{{DATA}}", &json).as_bytes())?;
    Ok(path)
}
