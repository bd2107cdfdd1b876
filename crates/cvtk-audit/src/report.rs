//! The audit report: one self-contained HTML page (no file or network
//! request besides itself) with the counts at the top, the images per label,
//! and a gallery per finding kind: thumbnails, given and suggested labels,
//! duplicate sets side by side (leaks first), the quality statistic that
//! failed. The page draws everything from the same JSON `--json` prints,
//! embedded in it, so its figures are those.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use rayon::prelude::*;
use serde::Serialize;

use crate::{DatasetAudit, Error, Result};

const TEMPLATE: &str = include_str!("report.html");

/// Tiles (or duplicate sets) per gallery of the page, with their thumbnails;
/// the rest are counted (and all are in `--json`).
pub const SHOWN: usize = 200;

#[derive(Serialize)]
struct Data<'a> {
    dataset: String,
    base_model: &'a str,
    command: &'a str,
    audit: &'a DatasetAudit,
    thumbnails: std::collections::BTreeMap<u64, String>,
    /// [`SHOWN`].
    shown: usize,
    /// Each quality check's threshold, as the page explains them.
    thresholds: BTreeMap<&'static str, f64>,
}

/// A small JPEG of the image at `path` as a data URL; none if it cannot be read.
fn thumbnail(path: &Path) -> Option<String> {
    let jpeg = cvtk_dataset::decode::thumbnail_jpeg(path, 112, 80)?;
    Some(format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg)))
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
    use crate::quality::thresholds as t;
    let thresholds = BTreeMap::from([
        ("dark", t::DARK),
        ("light", t::LIGHT),
        ("blurry", t::BLURRY),
        ("low_information", t::LOW_INFORMATION),
        ("odd_aspect_ratio", t::ODD_ASPECT_RATIO),
    ]);
    // The images the page shows: the first SHOWN of each gallery, in its
    // order (duplicate sets leaks first), each once.
    let mut sets: Vec<&crate::DuplicateSet> = audit.duplicates.iter().collect();
    sets.sort_by_key(|d| !d.leak);
    let named = audit
        .label_issues
        .iter()
        .take(SHOWN)
        .chain(audit.neighbour_issues.iter().take(SHOWN))
        .map(|i| (i.id, i.path.as_path()))
        .chain(audit.outliers.iter().take(SHOWN).map(|o| (o.image.id, o.image.path.as_path())))
        .chain(sets.iter().take(SHOWN).flat_map(|d| d.images.iter().map(|m| (m.image.id, m.image.path.as_path()))))
        .chain(audit.quality.iter().take(SHOWN).map(|q| (q.image.id, q.image.path.as_path())));
    let mut seen = std::collections::HashSet::new();
    let shown: Vec<(u64, &Path)> = named.filter(|(id, _)| seen.insert(*id)).collect();
    let thumbnails = shown.par_iter().filter_map(|(id, path)| thumbnail(path).map(|t| (*id, t))).collect();
    let data = Data { dataset: dataset.to_string(), base_model, command, audit, thumbnails, shown: SHOWN, thresholds };
    // No `<` at all in the script element the data sits in: `</script>` or
    // `<!--` in a file name would end or derail it.
    let json = serde_json::to_string(&data).map_err(|e| Error::Invalid(e.to_string()))?.replace('<', "\\u003c");
    let path = dir.join("audit.html");
    cvtk_core::write_atomic(&path, TEMPLATE.replace("{{DATA}}", &json).as_bytes())?;
    Ok(path)
}
