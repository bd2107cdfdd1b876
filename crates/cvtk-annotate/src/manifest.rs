//! [`manifest_for`]: which manifest `cvtk annotate` edits for a dataset.

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
}

impl ManifestChoice {
    /// The manifest's path.
    pub fn path(&self) -> &Path {
        match self {
            ManifestChoice::Existing(p) | ManifestChoice::Created(p, _) => p,
        }
    }
}

/// The manifest to edit: `dataset` itself when it is a manifest; for a folder,
/// `manifest` if given, else `FOLDER.json` beside the folder, made (by
/// scanning the folder) on the first run and reused after.
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
    if path.is_file() {
        return Ok(ManifestChoice::Existing(path));
    }
    let ds = ClassificationDataset::open(dataset)?;
    ds.to_manifest(&path)?;
    Ok(ManifestChoice::Created(path, ds.len()))
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
        assert!(manifest_for(&beside, Some(&beside)).unwrap_err().to_string().contains("already a manifest"));
        assert!(manifest_for(&dir.path().join("nope"), None).unwrap_err().to_string().contains("neither"));
    }
}
