//! [`TrainingImages`]: which images a model was trained on, recorded in its
//! folder when it is trained, so that evaluating it on them can say so (an
//! accuracy on training images is not a test accuracy).
//!
//! An image is known by its resolved path (absolute, links followed) and by
//! its content (its size and the first 128 bits of its SHA-256): one found
//! again by either counts, so a dataset folder that was moved or copied is
//! still recognised, and so is a file copied into both parts of a split.
//! Recording reads each training image once more, after training has read
//! them (60,000 files of MNIST's size, 20 MB: about a second on 2 cores);
//! looking images up reads only those whose size is that of a training image.
//!
//! The record is `training-images-<stamp>.json` beside the weights of the same
//! stamp, named by `model.json`'s `training_images`:
//!
//! ```json
//! { "format": "cvtk-training-images", "version": 1, "root": "/home/me/digits",
//!   "images": [{ "path": "0/00001.png", "bytes": 312, "sha256": "<32 hex digits>" }] }
//! ```
//!
//! Paths are relative to `root`, the folder all of them are under. Model
//! folders written before cvtk recorded this have no record and load as
//! before: for them, which images they were trained on is not known.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cvtk_dataset::ClassificationDataset;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const FORMAT: &str = "cvtk-training-images";
const VERSION: u32 = 1;

/// The first 128 bits of a file's SHA-256.
type Digest = [u8; 16];

/// One training image: where it was, and its size and digest when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Image {
    path: PathBuf,
    content: Option<(u64, Digest)>,
}

/// The images a model was trained on (see the module doc for how an image
/// is recognised). [`Classifier::training_images`](crate::Classifier::training_images)
/// gives a model's; [`find_in`](Self::find_in) says which images of a dataset
/// are among them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrainingImages {
    images: Vec<Image>,
}

/// `path` absolute with links followed, or only absolute when it cannot be resolved.
fn resolved(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// The size and digest of the file at `path`.
fn content(path: &Path) -> std::io::Result<(u64, Digest)> {
    use sha2::Digest as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let mut digest = Digest::default();
    digest.copy_from_slice(&hasher.finalize()[..16]);
    Ok((bytes, digest))
}

impl TrainingImages {
    /// The record of `dataset`'s images: each file's resolved path, size and
    /// digest, the files read in parallel. A file that cannot be read is
    /// recorded by its path alone.
    pub fn of(dataset: &ClassificationDataset) -> Self {
        let images = dataset
            .images()
            .par_iter()
            .map(|img| {
                let path = resolved(&img.path);
                let content = content(&path)
                    .map_err(|e| tracing::debug!("{} is recorded by its path alone: {e}", path.display()))
                    .ok();
                Image { path, content }
            })
            .collect();
        TrainingImages { images }
    }

    /// How many images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The ids of `dataset`'s images that are among these, in dataset order:
    /// the same size and digest (only files of a size some training image
    /// has are read), or, for a training image recorded without a digest,
    /// the same resolved path. A file whose content changed since training
    /// is not the image trained on.
    pub fn find_in(&self, dataset: &ClassificationDataset) -> Vec<u64> {
        let paths: HashSet<&Path> =
            self.images.iter().filter(|i| i.content.is_none()).map(|i| i.path.as_path()).collect();
        let mut by_size: HashMap<u64, HashSet<Digest>> = HashMap::new();
        for (bytes, digest) in self.images.iter().filter_map(|i| i.content) {
            by_size.entry(bytes).or_default().insert(digest);
        }
        dataset
            .images()
            .par_iter()
            .filter(|img| {
                let path = resolved(&img.path);
                if paths.contains(path.as_path()) {
                    return true;
                }
                let Some(digests) = std::fs::metadata(&path).ok().and_then(|m| by_size.get(&m.len())) else {
                    return false;
                };
                content(&path).is_ok_and(|(_, digest)| digests.contains(&digest))
            })
            .map(|img| img.id)
            .collect()
    }

    /// Adds `other`'s images (a model trained again on more), each path once.
    pub(crate) fn extend(&mut self, other: TrainingImages) {
        let known: HashSet<PathBuf> = self.images.iter().map(|i| i.path.clone()).collect();
        self.images.extend(other.images.into_iter().filter(|i| !known.contains(&i.path)));
    }

    /// Writes the record to `path` atomically (compact JSON: it holds a line per image's worth of text).
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let root = common_folder(self.images.iter().map(|i| i.path.as_path()));
        let file = RecordFile {
            format: FORMAT.into(),
            version: VERSION,
            root: root.to_string_lossy().into_owned(),
            images: self
                .images
                .iter()
                .map(|i| RecordImage {
                    path: i.path.strip_prefix(&root).unwrap_or(&i.path).to_string_lossy().into_owned(),
                    bytes: i.content.map(|c| c.0),
                    sha256: i.content.map(|c| c.1.iter().map(|b| format!("{b:02x}")).collect()),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&file)
            .map_err(|e| Error::ModelFile { path: path.to_path_buf(), reason: format!("cannot serialise: {e}") })?;
        Ok(cvtk_core::write_atomic(path, &bytes)?)
    }

    /// Reads a record written by [`Self::write`].
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::ModelFile { path: path.to_path_buf(), reason };
        let text =
            std::fs::read(path).map_err(|e| bad(format!("cannot read the record of the training images: {e}")))?;
        let file: RecordFile = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("not a record of training images ({e}); the file is corrupt")))?;
        if file.format != FORMAT {
            return Err(bad(format!("not a record of training images (no \"format\": \"{FORMAT}\")")));
        }
        if file.version > VERSION {
            return Err(bad(format!(
                "record version {} is newer than this cvtk reads ({VERSION}); upgrade cvtk",
                file.version
            )));
        }
        let root = PathBuf::from(file.root);
        let images = file
            .images
            .into_iter()
            .map(|i| {
                let content = match (i.bytes, i.sha256) {
                    (Some(bytes), Some(hex)) => Some((
                        bytes,
                        parse_digest(&hex)
                            .ok_or_else(|| bad(format!("image {}: \"sha256\" is not 32 hex digits: {hex}", i.path)))?,
                    )),
                    _ => None,
                };
                Ok(Image { path: root.join(&i.path), content })
            })
            .collect::<Result<_>>()?;
        Ok(TrainingImages { images })
    }
}

fn parse_digest(hex: &str) -> Option<Digest> {
    let mut digest = Digest::default();
    if hex.len() != 2 * digest.len() || !hex.is_ascii() {
        return None;
    }
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

/// The deepest folder every path is under (`/` at worst).
fn common_folder<'a>(mut paths: impl Iterator<Item = &'a Path>) -> PathBuf {
    let Some(first) = paths.next() else { return PathBuf::new() };
    let mut common = first.parent().unwrap_or(first).to_path_buf();
    for p in paths {
        while !p.starts_with(&common) && common.pop() {}
    }
    common
}

#[derive(Serialize, Deserialize)]
struct RecordFile {
    format: String,
    version: u32,
    root: String,
    images: Vec<RecordImage>,
}

#[derive(Serialize, Deserialize)]
struct RecordImage {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

/// A model's record of its training images: in memory once it has been
/// trained, a file of its folder (read when asked for) once loaded, or none
/// (not trained by cvtk yet, or a folder written before cvtk recorded them).
#[derive(Clone, Debug, Default)]
pub(crate) enum Record {
    #[default]
    None,
    InMemory(Arc<TrainingImages>),
    File(PathBuf),
}

impl Record {
    /// The record, reading its file if it is one.
    pub fn get(&self) -> Result<Option<Arc<TrainingImages>>> {
        match self {
            Record::None => Ok(None),
            Record::InMemory(r) => Ok(Some(Arc::clone(r))),
            Record::File(path) => TrainingImages::read(path).map(|r| Some(Arc::new(r))),
        }
    }

    /// After training on `dataset`: these images besides those of earlier training.
    pub fn add(&mut self, dataset: &ClassificationDataset) {
        let mut all = match self.get() {
            Ok(r) => r.map(|r| (*r).clone()).unwrap_or_default(),
            Err(e) => {
                tracing::warn!("the images the model was trained on before are not known: {e}");
                TrainingImages::default()
            }
        };
        all.extend(TrainingImages::of(dataset));
        *self = Record::InMemory(Arc::new(all));
    }

    /// What a save writes: the record, or none when there is none or it
    /// cannot be read (said, not an error: the model itself is whole).
    pub fn for_save(&self) -> Option<Arc<TrainingImages>> {
        self.get()
            .map_err(|e| tracing::warn!("the model is saved without the record of its training images: {e}"))
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(paths: &[PathBuf]) -> ClassificationDataset {
        let images = paths
            .iter()
            .enumerate()
            .map(|(i, p)| cvtk_dataset::ImageInfo {
                id: i as u64,
                name: String::new(),
                path: p.clone(),
                labels: vec![0],
            })
            .collect();
        ClassificationDataset::from_parts("d", vec![cvtk_dataset::Label { name: "a".into() }], images).unwrap()
    }

    #[test]
    fn training_images_are_found_by_path_or_content_and_survive_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let (a, b) = (file("train/a.png", b"aaaa"), file("train/sub/b.png", b"bbbb"));
        let record = TrainingImages::of(&dataset(&[a.clone(), b.clone()]));
        let path = dir.path().join("record.json");
        record.write(&path).unwrap();
        let back = TrainingImages::read(&path).unwrap();
        assert_eq!(back, record);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"path\":\"sub/b.png\""), "paths are relative to their common folder: {text}");
        // The same files through another path, a copy, a file of the same
        // size but other bytes, a file of another size.
        std::os::unix::fs::symlink(dir.path().join("train"), dir.path().join("link")).unwrap();
        let evaluated = [
            dir.path().join("link/a.png"),
            file("copy/b.png", b"bbbb"),
            file("other/c.png", b"cccc"),
            file("other/d.png", b"ddddd"),
        ];
        assert_eq!(back.find_in(&dataset(&evaluated)), [0, 1]);
        // A training file rewritten since, with other bytes, is not what was trained on.
        std::fs::write(&a, b"zzzz").unwrap();
        assert_eq!(back.find_in(&dataset(&[a.clone(), b.clone()])), [1]);
        std::fs::write(&a, b"aaaa").unwrap();
        // A record of an earlier training is kept when training again.
        let mut all = back.clone();
        all.extend(TrainingImages::of(&dataset(&[a, evaluated[2].clone()])));
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn a_record_that_is_corrupt_or_newer_is_an_error_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        for (text, says) in [
            ("{", "corrupt"),
            (r#"{"format": "x", "version": 1, "root": "/", "images": []}"#, "not a record"),
            (r#"{"format": "cvtk-training-images", "version": 9, "root": "/", "images": []}"#, "newer"),
            (
                r#"{"format": "cvtk-training-images", "version": 1, "root": "/", "images": [{"path": "a", "bytes": 1, "sha256": "zz"}]}"#,
                "32 hex digits",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = TrainingImages::read(&path).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
