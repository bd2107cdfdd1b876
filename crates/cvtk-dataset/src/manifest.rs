//! Dataset manifests: a dataset and its split as one JSON file, written
//! atomically. Image paths are all stored one way, relative: to the
//! dataset's root when it has one (itself stored relative to the manifest's
//! folder when under it), else to the manifest's folder, with `..` for an
//! image outside it (the originals beside the copies of `cvtk augment`). So
//! a dataset folder and its manifest can move together.
//!
//! ```json
//! { "format": "cvtk-dataset", "version": 2, "name": "dishes", "root": "dishes",
//!   "labels": ["bowl", "cup"],
//!   "images": [{ "id": 0, "name": "a.jpg", "path": "bowl/a.jpg", "labels": ["bowl"] },
//!              { "id": 1, "name": "b.jpg", "path": "bowl/b.jpg", "labels": ["cup"], "excluded": true }],
//!   "skipped": [{ "path": "...", "kind": "corrupt", "reason": "..." }],
//!   "split": { "train_size": 0.66, "stratify": true, "seed": 0, "train": [0], "test": [] },
//!   "findings": { "audited_images": 2, "images": { "1": [{ "kind": "outlier", "score": 0.05 }] } } }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{ImageInfo, Label, Skipped};
use crate::findings::Findings;
use crate::split::Split;
use crate::{ClassificationDataset, Error, Result};
use cvtk_core::fs::write_json_atomic_bytes;
use cvtk_core::FileLock;

const FORMAT: &str = "cvtk-dataset";
/// The newest format this cvtk reads. Version 2 added `findings`; a
/// manifest without them is still written as version 1, so an older cvtk
/// reads it.
const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    format: String,
    version: u32,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root: Option<String>,
    labels: Vec<String>,
    images: Vec<ManifestImage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<Skipped>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    split: Option<Split>,
    /// The last `cvtk audit`'s findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    findings: Option<Findings>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestImage {
    id: u64,
    name: String,
    path: String,
    labels: Vec<String>,
    /// Set by a person in `cvtk annotate`: kept with its label, used nowhere.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    excluded: bool,
}

fn relative_to(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).to_string_lossy().into_owned()
}

/// How image paths are stored: relative to `base`, with `..` for an image
/// outside it. Outside paths are computed between resolved folders (links
/// followed), so that [`ImagePaths::resolve`] finds the same file; an image
/// whose folder cannot be resolved (it is not there) keeps its absolute path.
struct StoredPaths {
    base: PathBuf,
    resolved_base: Option<Option<PathBuf>>,
    resolved_folders: HashMap<PathBuf, Option<PathBuf>>,
}

impl StoredPaths {
    fn new(base: PathBuf) -> Self {
        StoredPaths { base, resolved_base: None, resolved_folders: HashMap::new() }
    }

    fn store(&mut self, path: &Path) -> String {
        let path = absolute(path);
        if let Ok(rel) = path.strip_prefix(&self.base) {
            return rel.to_string_lossy().into_owned();
        }
        let base = self.resolved_base.get_or_insert_with(|| std::fs::canonicalize(&self.base).ok()).clone();
        let (Some(base), Some(folder), Some(name)) = (base, path.parent(), path.file_name()) else {
            return path.to_string_lossy().into_owned();
        };
        let folder = self
            .resolved_folders
            .entry(folder.to_path_buf())
            .or_insert_with(|| std::fs::canonicalize(folder).ok())
            .clone();
        match folder.and_then(|f| climb_to(&f, &base)) {
            Some(rel) => rel.join(name).to_string_lossy().into_owned(),
            None => path.to_string_lossy().into_owned(),
        }
    }
}

/// The relative path from the folder `base` to `path`, both resolved
/// (absolute, no `.`, `..` or links): `..` up to their common folder, then
/// down. None when they share no root (another drive, on Windows).
fn climb_to(path: &Path, base: &Path) -> Option<PathBuf> {
    let (p, b): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return None;
    }
    let mut rel: PathBuf = b[common..].iter().map(|_| std::path::Component::ParentDir).collect();
    rel.extend(&p[common..]);
    Some(rel)
}

/// Where the stored image paths of a manifest lead: joined to `base`; one
/// that climbs out of it (`../`) from the resolved `base`, as it was
/// written, so it leads to the same file whatever links `base` went through.
struct ImagePaths {
    base: PathBuf,
    resolved_base: Option<Option<PathBuf>>,
}

impl ImagePaths {
    fn resolve(&mut self, stored: &str) -> PathBuf {
        let stored = Path::new(stored);
        let ups = stored.components().take_while(|c| matches!(c, std::path::Component::ParentDir)).count();
        if ups == 0 {
            return self.base.join(stored);
        }
        match self.resolved_base.get_or_insert_with(|| std::fs::canonicalize(&self.base).ok()) {
            Some(resolved) => {
                let mut path = resolved.clone();
                for _ in 0..ups {
                    path.pop();
                }
                path.extend(stored.components().skip(ups));
                path
            }
            None => self.base.join(stored),
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl ClassificationDataset {
    /// Writes the dataset (and its split, if set) to a JSON manifest at `path`,
    /// atomically: an interrupted write leaves any previous manifest intact.
    pub fn to_manifest(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let lock = FileLock::acquire(path)?;
        self.to_manifest_locked(&lock).map(|_| ())
    }

    /// Writes the dataset as the manifest `path`, replacing one an earlier
    /// run left there only after `keep(self, earlier)` has carried over what
    /// it holds that this dataset lacks (the fixes a person made in `cvtk
    /// annotate`, say). The manifest is locked from reading the earlier one
    /// to writing this one, so no other writer's change falls in between.
    /// Returns what `keep` returned, or its default when there was no
    /// earlier manifest.
    pub fn replace_manifest<T: Default, E: From<Error>>(
        &mut self,
        path: &Path,
        keep: impl FnOnce(&mut Self, &Self) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let lock = FileLock::acquire(path).map_err(Error::from)?;
        let kept = if path.exists() { keep(self, &Self::from_manifest(path)?)? } else { T::default() };
        self.to_manifest_locked(&lock)?;
        Ok(kept)
    }

    /// Writes the manifest that `lock` holds (see [`FileLock`]: take it
    /// before reading, to make a read-modify-write safe against other
    /// writers), and returns the bytes written.
    pub fn to_manifest_locked(&self, lock: &FileLock) -> Result<Vec<u8>> {
        let path = lock.file();
        let manifest_dir = absolute(path.parent().unwrap_or(Path::new(".")));
        let root = self.root.as_deref().map(absolute);
        // Image paths are relative to the root when under it, else to the manifest.
        let image_base = root.clone().unwrap_or_else(|| manifest_dir.clone());
        let file = ManifestFile {
            format: FORMAT.into(),
            version: if self.findings.is_some() { 2 } else { 1 },
            name: self.name.clone(),
            root: root.as_deref().map(|r| {
                let rel = relative_to(r, &manifest_dir);
                if rel.is_empty() {
                    ".".into()
                } else {
                    rel
                }
            }),
            labels: self.label_names(),
            images: {
                let mut paths = StoredPaths::new(image_base);
                let mut entry = |img: &ImageInfo, excluded: bool| ManifestImage {
                    id: img.id,
                    name: img.name.clone(),
                    path: paths.store(&img.path),
                    labels: img.labels.iter().map(|&l| self.labels[l].name.clone()).collect(),
                    excluded,
                };
                let mut all: Vec<ManifestImage> = self.images.iter().map(|i| entry(i, false)).collect();
                all.extend(self.excluded.iter().map(|i| entry(i, true)));
                all
            },
            skipped: self.skipped.clone(),
            split: self.split.clone(),
            findings: self.findings.clone(),
        };
        Ok(write_json_atomic_bytes(path, &file)?)
    }

    /// Reads a dataset (and its split, if any) from a manifest written by
    /// [`to_manifest`](Self::to_manifest), checking that it is consistent.
    pub fn from_manifest(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| Error::Manifest { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read manifest", path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(bad(format!("not a cvtk dataset manifest (no \"format\": \"{FORMAT}\")")));
        }
        // The version first: a newer manifest may hold fields this cvtk does not know.
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version > u64::from(VERSION) {
            return Err(bad(format!(
                "manifest version {version} is newer than this cvtk supports ({VERSION}); upgrade cvtk"
            )));
        }
        let file: ManifestFile = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        let manifest_dir = absolute(path.parent().unwrap_or(Path::new(".")));
        let root = file.root.as_deref().map(|r| manifest_dir.join(r));
        let mut paths = ImagePaths { base: root.clone().unwrap_or_else(|| manifest_dir.clone()), resolved_base: None };

        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, name) in file.labels.iter().enumerate() {
            if index.insert(name, i).is_some() {
                return Err(bad(format!("label '{name}' is listed twice")));
            }
        }
        let mut images = Vec::with_capacity(file.images.len());
        let mut excluded = Vec::new();
        for img in &file.images {
            let labels = img
                .labels
                .iter()
                .map(|l| {
                    index
                        .get(l.as_str())
                        .copied()
                        .ok_or_else(|| bad(format!("image {} has label '{l}', which is not in \"labels\"", img.id)))
                })
                .collect::<Result<Vec<_>>>()?;
            if labels.is_empty() {
                return Err(bad(format!("image {} has no label", img.id)));
            }
            let info = ImageInfo { id: img.id, name: img.name.clone(), path: paths.resolve(&img.path), labels };
            if img.excluded {
                excluded.push(info);
            } else {
                images.push(info);
            }
        }
        let mut ds = ClassificationDataset {
            name: file.name,
            root,
            labels: file.labels.into_iter().map(|name| Label { name }).collect(),
            images,
            skipped: file.skipped,
            split: None,
            excluded,
            findings: None,
        };
        ds.validate().map_err(|e| bad(e.to_string()))?;
        if let Some(split) = file.split {
            ds.set_split(split).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(findings) = file.findings {
            ds.set_findings(findings).map_err(|e| bad(e.to_string()))?;
        }
        Ok(ds)
    }
}
