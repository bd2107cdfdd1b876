//! [`ClassificationDataset`]: images with labels, created from a folder per label.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::decode::{self, is_hidden, DEFAULT_MAX_PIXELS};
use crate::split::Split;
use crate::{Error, Result};
use cvtk_core::progress;

/// A class label. Labels are kept sorted by name, so a label's index is
/// deterministic for a given set of names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Label {
    /// The label's name: the name of its folder.
    pub name: String,
}

/// One image of a dataset. Counterpart of the original package's `Image`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInfo {
    /// Stable id, unique within the dataset (kept by subsets and manifests).
    pub id: u64,
    /// File name, e.g. `plate_03.jpg`.
    pub name: String,
    /// Path to the file (absolute when the dataset was made from a folder).
    pub path: PathBuf,
    /// Indices into the dataset's [`labels`](ClassificationDataset::labels); the
    /// first is the image's label for single-label classification.
    pub labels: Vec<usize>,
}

impl ImageInfo {
    /// The image's (first) label index.
    pub fn label(&self) -> usize {
        self.labels.first().copied().unwrap_or(0)
    }
}

/// What [`ClassificationDataset::keep_fixes_from`] carried over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeptFixes {
    /// Images given the earlier manifest's label instead of their folder's.
    pub relabelled: usize,
    /// Images kept excluded.
    pub excluded: usize,
}

/// Why a file found while scanning did not become part of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipKind {
    /// A hidden file or folder (name starts with `.`); skipped without a warning.
    Hidden,
    /// A file directly in the root, not inside a label folder.
    NotInLabelFolder,
    /// A file whose extension is not an image type.
    NotAnImage,
    /// A file of 0 bytes.
    Empty,
    /// An image file that does not decode (truncated, corrupt, wrong content).
    Corrupt,
    /// An image over the pixel limit (decompression-bomb guard).
    TooLarge,
    /// A file or folder that cannot be read (permissions, broken link, ...).
    Unreadable,
    /// A symbolic link that leads back into a folder above it.
    SymlinkLoop,
    /// A file or folder name that is not valid UTF-8.
    NonUtf8Name,
    /// A label folder with no usable image; the label is left out.
    EmptyLabel,
}

impl SkipKind {
    /// A short stable name, as used in JSON (`not_an_image`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SkipKind::Hidden => "hidden",
            SkipKind::NotInLabelFolder => "not_in_label_folder",
            SkipKind::NotAnImage => "not_an_image",
            SkipKind::Empty => "empty",
            SkipKind::Corrupt => "corrupt",
            SkipKind::TooLarge => "too_large",
            SkipKind::Unreadable => "unreadable",
            SkipKind::SymlinkLoop => "symlink_loop",
            SkipKind::NonUtf8Name => "non_utf8_name",
            SkipKind::EmptyLabel => "empty_label",
        }
    }
}

/// A file or folder left out of a dataset, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The path (lossily converted to UTF-8 for display).
    pub path: String,
    /// The kind of problem.
    pub kind: SkipKind,
    /// A sentence saying what is wrong.
    pub reason: String,
}

/// How [`ClassificationDataset::create_from_dir_with`] checks the files it finds.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    verify: bool,
    max_pixels: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { verify: true, max_pixels: DEFAULT_MAX_PIXELS }
    }
}

impl ScanOptions {
    /// Whether every image is fully decoded (catching truncated files) rather
    /// than only its header read. By default, `true`.
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }

    /// The largest image accepted, in pixels. By default, Pillow's limit
    /// ([`DEFAULT_MAX_PIXELS`]).
    pub fn max_pixels(mut self, n: u64) -> Self {
        self.max_pixels = n;
        self
    }
}

/// A set of labelled images. Counterpart of the original package's
/// `ClassificationDataset`.
///
/// Made from a folder per label with [`create_from_dir`](Self::create_from_dir),
/// split with [`split`](Self::split), and saved and loaded as a JSON manifest with
/// [`to_manifest`](Self::to_manifest) / [`from_manifest`](Self::from_manifest).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationDataset {
    pub(crate) name: String,
    pub(crate) root: Option<PathBuf>,
    pub(crate) labels: Vec<Label>,
    pub(crate) images: Vec<ImageInfo>,
    pub(crate) skipped: Vec<Skipped>,
    pub(crate) split: Option<Split>,
    /// Images a person excluded (in `cvtk annotate`): kept in the manifest with
    /// their labels, left out of [`images`](Self::images) and of every split part.
    pub(crate) excluded: Vec<ImageInfo>,
    /// What the last `cvtk audit` found (see [`Findings`](crate::Findings)).
    pub(crate) findings: Option<crate::Findings>,
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl ClassificationDataset {
    /// Builds a dataset from explicit parts. Label indices in `images` refer to
    /// `labels`; ids must be unique.
    pub fn from_parts(name: impl Into<String>, labels: Vec<Label>, images: Vec<ImageInfo>) -> Result<Self> {
        let ds = ClassificationDataset {
            name: name.into(),
            root: None,
            labels,
            images,
            skipped: Vec::new(),
            split: None,
            excluded: Vec::new(),
            findings: None,
        };
        ds.validate()?;
        Ok(ds)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for img in self.images.iter().chain(&self.excluded) {
            if !seen.insert(img.id) {
                return Err(Error::InvalidConfig {
                    field: "images",
                    reason: format!("image id {} appears twice", img.id),
                });
            }
            if let Some(&bad) = img.labels.iter().find(|&&l| l >= self.labels.len()) {
                return Err(Error::InvalidConfig {
                    field: "images",
                    reason: format!(
                        "image {} has label index {bad}, but there are {} labels",
                        img.id,
                        self.labels.len()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Creates a dataset from `root`, which holds one sub-folder per label (nested
    /// folders inside a label folder belong to that label). Every image is decoded
    /// once to catch broken files; see [`create_from_dir_with`](Self::create_from_dir_with).
    ///
    /// Files that cannot be used are skipped with a warning (logged through
    /// `tracing` and listed in [`skipped`](Self::skipped)): hidden files, files
    /// outside label folders, non-images, empty, truncated or oversized images,
    /// unreadable files, symlink loops and non-UTF-8 names.
    pub fn create_from_dir(name: impl Into<String>, root: impl AsRef<Path>) -> Result<Self> {
        Self::create_from_dir_with(name, root, &ScanOptions::default())
    }

    /// A dataset from `path`: a manifest file (with its split and
    /// corrections), or a folder with one sub-folder per label, named after
    /// the folder. What `cvtk dataset info`, `train` and `evaluate` accept.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &ScanOptions::default())
    }

    /// [`open`](Self::open) with explicit [`ScanOptions`] for a folder.
    pub fn open_with(path: impl AsRef<Path>, options: &ScanOptions) -> Result<Self> {
        let path = path.as_ref();
        if path.is_file() {
            return Self::from_manifest(path);
        }
        Self::create_from_dir_with(Self::name_of_folder(path), path, options)
    }

    /// The name a dataset scanned from `folder` gets: the folder's own name
    /// (after resolving `.` and links), or `dataset`.
    pub fn name_of_folder(folder: &Path) -> String {
        std::fs::canonicalize(folder)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "dataset".into())
    }

    /// [`create_from_dir`](Self::create_from_dir) with explicit [`ScanOptions`].
    pub fn create_from_dir_with(
        name: impl Into<String>,
        root: impl AsRef<Path>,
        options: &ScanOptions,
    ) -> Result<Self> {
        let root = root.as_ref();
        let meta = std::fs::metadata(root).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::RootNotFound { path: root.to_path_buf() },
            _ => Error::io("cannot read", root, e),
        })?;
        if !meta.is_dir() {
            return Err(Error::RootNotDir { path: root.to_path_buf() });
        }
        let root = std::fs::canonicalize(root).map_err(|e| Error::io("cannot resolve", root, e))?;
        let mut skipped = Vec::new();
        let skip = |skipped: &mut Vec<Skipped>, path: &Path, kind: SkipKind, reason: String| {
            skipped.push(Skipped { path: lossy(path), kind, reason });
        };

        // 1. Label folders, sorted by name.
        let mut entries: Vec<_> =
            std::fs::read_dir(&root).map_err(|e| Error::io("cannot list", &root, e))?.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        let mut label_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
        for entry in entries {
            let path = entry.path();
            let fname = entry.file_name();
            if is_hidden(&fname) {
                skip(&mut skipped, &path, SkipKind::Hidden, "hidden".into());
                continue;
            }
            match std::fs::metadata(&path) {
                Err(e) => skip(&mut skipped, &path, SkipKind::Unreadable, format!("cannot read: {e}")),
                Ok(m) if m.is_dir() => match fname.to_str() {
                    Some(label) => {
                        label_dirs.insert(label.to_string(), path);
                    }
                    None => skip(
                        &mut skipped,
                        &path,
                        SkipKind::NonUtf8Name,
                        "label folder name is not valid UTF-8; rename it".into(),
                    ),
                },
                Ok(_) => skip(
                    &mut skipped,
                    &path,
                    SkipKind::NotInLabelFolder,
                    "file is directly in the dataset folder; move it into a label folder".into(),
                ),
            }
        }

        // 2. Candidate files per label.
        let mut candidates: Vec<(String, PathBuf)> = Vec::new();
        for (label, dir) in &label_dirs {
            for found in crate::walk::image_files(dir) {
                match found {
                    // A manifest stores paths as text: a name that is not UTF-8 cannot be in one.
                    Ok(path) if path.to_str().is_none() => skip(
                        &mut skipped,
                        &path,
                        SkipKind::NonUtf8Name,
                        "file name is not valid UTF-8; rename it".into(),
                    ),
                    Ok(path) => candidates.push((label.clone(), path)),
                    Err(skipped_one) => skipped.push(skipped_one),
                }
            }
        }

        // 3. Check each candidate (in parallel): header, or a full decode.
        let bar = progress::Progress::start(candidates.len() as u64, "checking images");
        let checks: Vec<Option<Skipped>> = candidates
            .par_iter()
            .map(|(_, path)| {
                let result = if options.verify {
                    decode::decode_rgb(path, options.max_pixels).map(|_| ())
                } else {
                    decode::probe(path, options.max_pixels).map(|_| ())
                };
                bar.inc(1);
                result.err().map(|e| {
                    let kind = match &e {
                        Error::TooLarge { .. } => SkipKind::TooLarge,
                        Error::Io(_) => SkipKind::Unreadable,
                        Error::Decode { reason, .. } if reason.contains("empty") => SkipKind::Empty,
                        _ => SkipKind::Corrupt,
                    };
                    Skipped { path: lossy(path), kind, reason: e.to_string() }
                })
            })
            .collect();
        bar.finish();

        let mut per_label: BTreeMap<String, Vec<PathBuf>> =
            label_dirs.keys().map(|l| (l.clone(), Vec::new())).collect();
        for ((label, path), check) in candidates.into_iter().zip(checks) {
            match check {
                Some(s) => skipped.push(s),
                None => per_label.entry(label).or_default().push(path),
            }
        }
        for (label, paths) in &per_label {
            if paths.is_empty() {
                skip(
                    &mut skipped,
                    &label_dirs[label],
                    SkipKind::EmptyLabel,
                    format!("label folder '{label}' has no usable image; the label is left out"),
                );
            }
        }
        per_label.retain(|_, paths| !paths.is_empty());
        for s in &skipped {
            if s.kind != SkipKind::Hidden {
                tracing::warn!(path = %s.path, kind = s.kind.as_str(), "skipped: {}", s.reason);
            }
        }
        if per_label.is_empty() {
            return Err(Error::NoImages { path: root, skipped: skipped.len() });
        }

        // 4. Labels sorted by name; ids in (label, path) order.
        let labels: Vec<Label> = per_label.keys().map(|name| Label { name: name.clone() }).collect();
        let mut images = Vec::new();
        for (index, paths) in per_label.into_values().enumerate() {
            for path in paths {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                images.push(ImageInfo { id: images.len() as u64, name, path, labels: vec![index] });
            }
        }
        Ok(ClassificationDataset {
            name: name.into(),
            root: Some(root),
            labels,
            images,
            skipped,
            split: None,
            excluded: Vec::new(),
            findings: None,
        })
    }

    /// The dataset's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder the dataset was created from, if any.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Labels, sorted by name; an image's label index points into this list.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Label names, in label-index order.
    pub fn label_names(&self) -> Vec<String> {
        self.labels.iter().map(|l| l.name.clone()).collect()
    }

    /// The index of the label called `name`.
    pub fn label_index(&self, name: &str) -> Result<usize> {
        self.labels
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| Error::UnknownLabel { label: name.to_string(), known: self.label_names().join(", ") })
    }

    /// The images, in id order for a fresh dataset.
    pub fn images(&self) -> &[ImageInfo] {
        &self.images
    }

    /// The images whose file is not there (any more): a manifest whose
    /// folder was moved or deleted, say. Only checks that each file exists.
    pub fn missing_images(&self) -> Vec<&ImageInfo> {
        self.images.iter().filter(|i| !i.path.is_file()).collect()
    }

    /// Mutable access to the images, for relabelling.
    pub fn images_mut(&mut self) -> &mut [ImageInfo] {
        &mut self.images
    }

    /// Files left out when the dataset was created, with reasons.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Number of images per label, in label-index order.
    pub fn counts_per_label(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        for img in &self.images {
            if let Some(c) = counts.get_mut(img.label()) {
                *c += 1;
            }
        }
        counts
    }

    /// The image with id `id`.
    pub fn image(&self, id: u64) -> Option<&ImageInfo> {
        self.images.iter().find(|i| i.id == id)
    }

    /// A dataset holding only the images whose ids are in `ids`, in that order,
    /// with the same labels (so label indices keep their meaning). Unknown ids
    /// are an error.
    pub fn subset(&self, ids: &[u64]) -> Result<ClassificationDataset> {
        let by_id: HashMap<u64, &ImageInfo> = self.images.iter().map(|i| (i.id, i)).collect();
        let images = ids
            .iter()
            .map(|id| {
                by_id.get(id).map(|&i| i.clone()).ok_or_else(|| Error::InvalidConfig {
                    field: "ids",
                    reason: format!("image id {id} is not in dataset '{}'", self.name),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ClassificationDataset {
            name: self.name.clone(),
            root: self.root.clone(),
            labels: self.labels.clone(),
            images,
            skipped: Vec::new(),
            split: None,
            excluded: Vec::new(),
            findings: None,
        })
    }

    /// A dataset with only the labels in `names` (kept in sorted order, so label
    /// indices are re-numbered), and their images.
    pub fn with_labels(&self, names: &[&str]) -> Result<ClassificationDataset> {
        let mut keep: Vec<usize> = names.iter().map(|n| self.label_index(n)).collect::<Result<_>>()?;
        keep.sort_unstable();
        keep.dedup();
        let remap: HashMap<usize, usize> = keep.iter().enumerate().map(|(new, &old)| (old, new)).collect();
        let images = self
            .images
            .iter()
            .filter(|i| remap.contains_key(&i.label()))
            .map(|i| ImageInfo { labels: i.labels.iter().filter_map(|l| remap.get(l).copied()).collect(), ..i.clone() })
            .collect();
        Ok(ClassificationDataset {
            name: self.name.clone(),
            root: self.root.clone(),
            labels: keep.iter().map(|&i| self.labels[i].clone()).collect(),
            images,
            skipped: Vec::new(),
            split: None,
            excluded: Vec::new(),
            findings: None,
        })
    }
}

/// Edits, as `cvtk annotate` makes them: relabel, exclude, add a label. Each
/// names the image by id and works whether the image is excluded or not.
impl ClassificationDataset {
    /// Images a person excluded: not in [`images`](Self::images), not in any
    /// split part, but kept (with their labels) so they can be brought back.
    pub fn excluded(&self) -> &[ImageInfo] {
        &self.excluded
    }

    /// Whether image `id` is excluded; `None` when no image has that id.
    pub fn is_excluded(&self, id: u64) -> Option<bool> {
        if self.images.iter().any(|i| i.id == id) {
            Some(false)
        } else if self.excluded.iter().any(|i| i.id == id) {
            Some(true)
        } else {
            None
        }
    }

    /// The image with id `id`, excluded or not.
    pub fn any_image(&self, id: u64) -> Option<&ImageInfo> {
        self.images.iter().chain(&self.excluded).find(|i| i.id == id)
    }

    fn any_image_mut(&mut self, id: u64) -> Result<&mut ImageInfo> {
        let name = self.name.clone();
        self.images.iter_mut().chain(self.excluded.iter_mut()).find(|i| i.id == id).ok_or_else(|| {
            Error::InvalidConfig { field: "id", reason: format!("image id {id} is not in dataset '{name}'") }
        })
    }

    /// Gives image `id` the single label `label` (an index into
    /// [`labels`](Self::labels)).
    pub fn set_label(&mut self, id: u64, label: usize) -> Result<()> {
        if label >= self.labels.len() {
            return Err(Error::InvalidConfig {
                field: "label",
                reason: format!("label index {label} is out of range ({} labels)", self.labels.len()),
            });
        }
        self.any_image_mut(id)?.labels = vec![label];
        Ok(())
    }

    /// Excludes image `id` from the dataset (`true`) or brings it back
    /// (`false`). A brought-back image returns to the split part it was in.
    pub fn set_excluded(&mut self, id: u64, excluded: bool) -> Result<()> {
        let (from, to) =
            if excluded { (&mut self.images, &mut self.excluded) } else { (&mut self.excluded, &mut self.images) };
        if let Some(pos) = from.iter().position(|i| i.id == id) {
            let img = from.remove(pos);
            let at = to.partition_point(|i| i.id < id);
            to.insert(at, img);
            return Ok(());
        }
        self.any_image_mut(id).map(|_| ())
    }

    /// The images of `earlier` (a manifest of some of the same files) that
    /// this dataset holds too, matched by resolved path: `(their id here,
    /// earlier's entry, whether earlier excluded it)`, in earlier's order.
    pub fn same_images_in<'a>(&self, earlier: &'a ClassificationDataset) -> Vec<(u64, &'a ImageInfo, bool)> {
        let key = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let ids: std::collections::HashMap<PathBuf, u64> =
            self.images.iter().chain(&self.excluded).map(|i| (key(&i.path), i.id)).collect();
        let all = earlier.images().iter().map(|i| (i, false)).chain(earlier.excluded().iter().map(|i| (i, true)));
        all.filter_map(|(img, excluded)| ids.get(&key(&img.path)).map(|&id| (id, img, excluded))).collect()
    }

    /// Gives each image that `earlier` (a manifest of some of the same
    /// files) holds too its id there, and every other image a new id above
    /// all of `earlier`'s: ids stay the same across rescans of a folder, so
    /// a page, a split or findings naming an image keep naming it.
    pub fn keep_ids_from(&mut self, earlier: &ClassificationDataset) {
        let key = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let old: std::collections::HashMap<PathBuf, u64> =
            earlier.images.iter().chain(&earlier.excluded).map(|i| (key(&i.path), i.id)).collect();
        let mut next = old.values().max().map_or(0, |m| m + 1);
        for img in self.images.iter_mut().chain(self.excluded.iter_mut()) {
            img.id = match old.get(&key(&img.path)) {
                Some(&id) => id,
                None => {
                    next += 1;
                    next - 1
                }
            };
        }
    }

    /// Carries the fixes a person made in `earlier` (a manifest of the same
    /// images, edited in `cvtk annotate`) over to this dataset: each image
    /// both hold (by resolved path) gets `earlier`'s label, labels it added
    /// included, and stays excluded when it was. What a command that writes a
    /// manifest afresh over an existing one calls, so that no fix is lost.
    pub fn keep_fixes_from(&mut self, earlier: &ClassificationDataset) -> Result<KeptFixes> {
        let names = earlier.label_names();
        let mut kept = KeptFixes::default();
        // Labels added in `cvtk annotate` that no image has yet, too.
        for name in &names {
            self.add_label(name)?;
        }
        for (id, img, excluded) in self.same_images_in(earlier) {
            if let Some(name) = names.get(img.label()) {
                let label = self.add_label(name)?;
                if self.any_image(id).map(ImageInfo::label) != Some(label) {
                    self.set_label(id, label)?;
                    kept.relabelled += 1;
                }
            }
            if excluded && self.is_excluded(id) == Some(false) {
                self.set_excluded(id, true)?;
                kept.excluded += 1;
            }
        }
        // The last audit's findings too, on the same images.
        if let (None, Some(findings)) = (&self.findings, earlier.findings()) {
            let map = self.same_images_in(earlier).into_iter().map(|(id, img, _)| (img.id, id)).collect();
            self.findings = Some(findings.remapped(&map));
        }
        Ok(kept)
    }

    /// Adds a label with no images yet, keeping labels sorted by name (label
    /// indices after it shift by one). Returns its index; an existing name
    /// returns the existing index.
    pub fn add_label(&mut self, name: &str) -> Result<usize> {
        let name = name.trim();
        check_label_name(name).map_err(|reason| Error::InvalidConfig { field: "label", reason })?;
        if let Ok(i) = self.label_index(name) {
            return Ok(i);
        }
        let at = self.labels.partition_point(|l| l.name.as_str() < name);
        self.labels.insert(at, Label { name: name.to_string() });
        for img in self.images.iter_mut().chain(self.excluded.iter_mut()) {
            for l in &mut img.labels {
                if *l >= at {
                    *l += 1;
                }
            }
        }
        Ok(at)
    }
}

/// Checks that `name` can be a label folder's name; the error says why not.
pub fn check_label_name(name: &str) -> std::result::Result<(), String> {
    if name.trim().is_empty()
        || name != name.trim()
        || name.contains(['/', '\\'])
        || name.starts_with('.')
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "'{name}' cannot be a label: use a non-empty name without slashes, control characters, a leading dot \
             or surrounding spaces"
        ));
    }
    Ok(())
}
