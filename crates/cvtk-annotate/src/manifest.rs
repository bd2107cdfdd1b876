//! [`manifest_for`]: which manifest `cvtk annotate` edits for a dataset.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cvtk_dataset::{ClassificationDataset, ScanOptions};

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
        /// Images in neither part of the manifest's split (the new ones).
        unsplit: usize,
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
            ManifestChoice::Updated { path, added, removed, unsplit } => Some(format!(
                "updated the manifest {} to the folder's files ({added} new, {removed} gone), keeping your fixes{}",
                path.display(),
                if *unsplit > 0 {
                    format!(
                        "; {unsplit} images are in neither part of its split: re-split with cvtk dataset split {0} \
                         --out {0}",
                        path.display()
                    )
                } else {
                    String::new()
                }
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
    let (path, automatic) = match manifest {
        Some(m) => (m.to_path_buf(), false),
        None => {
            let folder = std::fs::canonicalize(dataset)
                .map_err(|e| cvtk_core::IoError::new("cannot resolve", dataset.to_path_buf(), e))?;
            (folder.with_file_name(format!("{}.json", ClassificationDataset::name_of_folder(&folder))), true)
        }
    };
    // Held from looking at the manifest to writing it: two first runs, or a
    // run beside `cvtk annotate`, never overwrite each other's.
    let lock = cvtk_core::FileLock::acquire(&path)?;
    if !path.is_file() {
        let ds = ClassificationDataset::open(dataset)?;
        ds.to_manifest_locked(&lock)?;
        return Ok(ManifestChoice::Created(path, ds.len()));
    }
    if !automatic {
        // A manifest named with --manifest is the user's: used as it is.
        return Ok(ManifestChoice::Existing(path));
    }
    // Made on an earlier run: brought up to date with the folder if files
    // came or went since (file names compared, no image decoded), keeping
    // what was done on it: ids, labels fixed, labels added, images excluded,
    // the audit's findings, the split of the images still there.
    let earlier = ClassificationDataset::from_manifest(&path)?;
    let quick = ClassificationDataset::open_with(dataset, &ScanOptions::default().verify(false))?;
    let listed = |ds: &ClassificationDataset| ds.len() + ds.excluded().len();
    let kept = quick.same_images_in(&earlier).len();
    if kept == listed(&earlier) && kept == listed(&quick) {
        return Ok(ManifestChoice::Existing(path));
    }
    let mut ds = ClassificationDataset::open(dataset)?;
    ds.keep_ids_from(&earlier);
    let same = ds.same_images_in(&earlier).len();
    ds.keep_fixes_from(&earlier)?;
    let (before, now) = (earlier.len() + earlier.excluded().len(), ds.len() + ds.excluded().len());
    let mut unsplit = 0;
    if let Some(split) = earlier.split_info() {
        let mut split = split.clone();
        let here: HashSet<u64> = ds.images().iter().chain(ds.excluded()).map(|i| i.id).collect();
        for ids in [&mut split.train, &mut split.test] {
            ids.retain(|id| here.contains(id));
        }
        unsplit = ds.images().iter().filter(|i| !split.train.contains(&i.id) && !split.test.contains(&i.id)).count();
        ds.set_split(split)?;
    }
    ds.to_manifest_locked(&lock)?;
    Ok(ManifestChoice::Updated { path, added: now - same, removed: before - same, unsplit })
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
        assert_eq!(updated, ManifestChoice::Updated { path: beside.clone(), added: 1, removed: 1, unsplit: 0 });
        let now = ClassificationDataset::from_manifest(&beside).unwrap();
        assert_eq!(now.len(), 2);
        let fixed = now.images().iter().find(|i| i.path.ends_with("cup/a.png")).unwrap();
        assert_eq!(now.labels()[fixed.label()].name, "bowl", "the fix was lost");
        assert_eq!(fixed.id, cup, "a rescan renumbered the images");
        assert!(manifest_for(&beside, Some(&beside)).unwrap_err().to_string().contains("already a manifest"));
        assert!(manifest_for(&dir.path().join("nope"), None).unwrap_err().to_string().contains("neither"));
    }
}
