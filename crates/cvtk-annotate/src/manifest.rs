//! [`manifest_for`]: which manifest `cvtk annotate` edits for a dataset.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cvtk_dataset::ClassificationDataset;

use crate::{Error, Result};

/// The manifest the annotation page edits for `dataset` (a manifest, or a
/// folder with one sub-folder per label) and whether it was just made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestChoice {
    /// An existing manifest: the one given, or the folder's from an earlier run.
    Existing(PathBuf),
    /// A manifest just written for the folder (scanned now), with its image count.
    Created(PathBuf, usize),
    /// The folder's manifest from an earlier run, brought up to date: files
    /// were added to the folder or removed since (fixes, findings and the
    /// split of the images still there kept; new images are in no part).
    Updated {
        /// The manifest.
        path: PathBuf,
        /// Images new in the folder.
        added: usize,
        /// Images gone from it.
        removed: usize,
    },
}

impl ManifestChoice {
    /// What happened, for a person (none when `dataset` was the manifest itself).
    pub fn describe(&self, dataset: &Path) -> Option<String> {
        match self {
            ManifestChoice::Existing(m) if m == dataset => None,
            ManifestChoice::Existing(m) => Some(format!(
                "using the manifest {} made from this folder earlier (it keeps your fixes; delete it to start over)",
                m.display()
            )),
            ManifestChoice::Created(m, n) => Some(format!("wrote the manifest {} ({n} images)", m.display())),
            ManifestChoice::Updated { path, added, removed } => Some(format!(
                "updated the manifest {} to the folder's files ({added} new, {removed} gone), keeping your fixes",
                path.display()
            )),
        }
    }

    /// The manifest's path.
    pub fn path(&self) -> &Path {
        match self {
            ManifestChoice::Existing(p) | ManifestChoice::Created(p, _) | ManifestChoice::Updated { path: p, .. } => p,
        }
    }
}

/// The manifest to edit: `dataset` itself when it is a manifest; for a folder,
/// `manifest` if given, else `FOLDER.json` beside the folder, made (by
/// scanning the folder) on the first run, and on later runs reused, brought
/// up to date first when the folder's files changed.
pub fn manifest_for(dataset: &Path, manifest: Option<&Path>) -> Result<ManifestChoice> {
    let invalid = |reason: String| Error::Dataset(cvtk_dataset::Error::InvalidConfig { field: "dataset", reason });
    if dataset.is_file() {
        if manifest.is_some() {
            return Err(invalid(format!(
                "--manifest is for a dataset folder; {} is already a manifest",
                dataset.display()
            )));
        }
        return Ok(ManifestChoice::Existing(dataset.to_path_buf()));
    }
    if !dataset.is_dir() {
        return Err(invalid(format!("{} is neither a dataset folder nor a manifest", dataset.display())));
    }
    let path = match manifest {
        Some(m) => m.to_path_buf(),
        None => {
            let folder = std::fs::canonicalize(dataset)
                .map_err(|e| cvtk_core::IoError::new("cannot resolve", dataset.to_path_buf(), e))?;
            folder.with_file_name(format!("{}.json", ClassificationDataset::name_of_folder(&folder)))
        }
    };
    let mut ds = ClassificationDataset::open(dataset)?;
    if !path.is_file() {
        ds.to_manifest(&path)?;
        return Ok(ManifestChoice::Created(path, ds.len()));
    }
    // Made on an earlier run: brought up to date with the folder if files
    // came or went since, keeping what was done on it (labels fixed, images
    // excluded, the audit's findings, the split of the images still there).
    let lock = cvtk_core::FileLock::acquire(&path)?;
    let earlier = ClassificationDataset::from_manifest(&path)?;
    let same = ds.same_images_in(&earlier);
    let (before, now) = (earlier.len() + earlier.excluded().len(), ds.len() + ds.excluded().len());
    if same.len() == before && same.len() == now {
        return Ok(ManifestChoice::Existing(path));
    }
    let ids: HashMap<u64, u64> = same.iter().map(|(id, img, _)| (img.id, *id)).collect();
    ds.keep_fixes_from(&earlier)?;
    if let Some(split) = earlier.split_info() {
        let mut split = split.clone();
        for ids_of_part in [&mut split.train, &mut split.test] {
            *ids_of_part = ids_of_part.iter().filter_map(|id| ids.get(id).copied()).collect();
        }
        ds.set_split(split)?;
    }
    ds.to_manifest_locked(&lock)?;
    Ok(ManifestChoice::Updated { path, added: now - same.len(), removed: before - same.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_gets_a_manifest_beside_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("dishes");
        for label in ["bowl", "cup"] {
            std::fs::create_dir_all(data.join(label)).unwrap();
            image::RgbImage::new(4, 4).save(data.join(label).join("a.png")).unwrap();
        }
        let first = manifest_for(&data, None).unwrap();
        let beside = std::fs::canonicalize(dir.path()).unwrap().join("dishes.json");
        assert_eq!(first, ManifestChoice::Created(beside.clone(), 2));
        assert_eq!(manifest_for(&data, None).unwrap(), ManifestChoice::Existing(beside.clone()));
        assert_eq!(manifest_for(&beside, None).unwrap(), ManifestChoice::Existing(beside.clone()));
        // A file added to the folder, one removed: the manifest follows, a fixed label stays.
        let mut ds = ClassificationDataset::from_manifest(&beside).unwrap();
        let cup = ds.images().iter().find(|i| i.path.ends_with("cup/a.png")).unwrap().id;
        ds.set_label(cup, 0).unwrap();
        ds.to_manifest(&beside).unwrap();
        image::RgbImage::new(4, 4).save(data.join("cup").join("b.png")).unwrap();
        std::fs::remove_file(data.join("bowl").join("a.png")).unwrap();
        let updated = manifest_for(&data, None).unwrap();
        assert_eq!(updated, ManifestChoice::Updated { path: beside.clone(), added: 1, removed: 1 });
        let now = ClassificationDataset::from_manifest(&beside).unwrap();
        assert_eq!(now.len(), 2);
        let fixed = now.images().iter().find(|i| i.path.ends_with("cup/a.png")).unwrap();
        assert_eq!(now.labels()[fixed.label()].name, "bowl", "the fix was lost");
        assert!(manifest_for(&beside, Some(&beside)).unwrap_err().to_string().contains("already a manifest"));
        assert!(manifest_for(&dir.path().join("nope"), None).unwrap_err().to_string().contains("neither"));
    }
}
