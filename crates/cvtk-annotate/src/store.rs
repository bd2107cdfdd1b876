//! [`Store`]: the dataset being annotated, its manifest on disk, and the undo
//! history. Every edit is checked against the state the page saw, applied to a
//! copy of the dataset, written atomically to the manifest, and only then kept.
//! Each edit holds the manifest's [`FileLock`] from re-reading the
//! manifest (when another program, or another `cvtk annotate`, changed it) to
//! writing it back, so edits of different images never overwrite each other
//! and edits of the same image are refused as conflicts. The baseline kept
//! for noticing other writers is the bytes this store wrote, never a re-read.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use cvtk_core::FileLock;
use cvtk_dataset::{ClassificationDataset, DuplicateIds, Finding, ImageInfo};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A model's prediction for one image, shown beside it: its best label and
/// that label's calibrated probability, as `{"label", "probability"}`, the
/// shape of every prediction cvtk writes ([`cvtk_core::Ranked`]).
pub type Prediction = cvtk_core::Ranked;

/// The part of an image a person edits: its label and whether it is excluded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageState {
    /// The label's name.
    pub label: String,
    /// Whether the image is left out of the dataset.
    pub excluded: bool,
}

/// One image as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageView {
    /// The image's id in the manifest.
    pub id: u64,
    /// Its file name.
    pub name: String,
    /// Its label.
    pub label: String,
    /// Whether it is excluded.
    pub excluded: bool,
    /// `"train"`, `"test"` or none, from the manifest's split.
    pub part: Option<&'static str>,
    /// The model's prediction, when a model was given.
    pub prediction: Option<Prediction>,
    /// How doubtful the label is, when a model was given: `1 + score` when the
    /// prediction disagrees with the label (a confident disagreement first),
    /// else `1 - score`. "Most doubtful first" sorts by this, highest first.
    pub doubt: Option<f32>,
    /// What the last `cvtk audit` found about it (none without an audit).
    pub findings: Vec<Finding>,
}

/// The last audit, as the page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct AuditView {
    /// Images it looked at.
    pub audited_images: usize,
    /// The network whose features it used.
    pub base_model: String,
    /// Its duplicate sets (the images' `duplicate` findings index them).
    pub duplicate_sets: Vec<DuplicateIds>,
}

/// The whole dataset as the page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetView {
    /// The dataset's name.
    pub name: String,
    /// The manifest being edited.
    pub manifest: PathBuf,
    /// Label names, in label order.
    pub labels: Vec<String>,
    /// Images per label (excluded images not counted).
    pub counts: BTreeMap<String, usize>,
    /// How many images are excluded.
    pub excluded: usize,
    /// Whether predictions are shown.
    pub has_model: bool,
    /// Whether the model's maps can be shown on the large view
    /// (`/api/images/{id}/explain`).
    pub has_maps: bool,
    /// Whether there is a change to undo.
    pub can_undo: bool,
    /// Every image, excluded ones too, in id order.
    pub images: Vec<ImageView>,
    /// The last `cvtk audit`'s findings, when the manifest holds them.
    pub audit: Option<AuditView>,
}

/// A change to one image, as asked for by the page: the state it saw (`expect`)
/// and what to change.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    /// The image's state when the page last saw it.
    pub expect: ImageState,
    /// The new label, if it changes.
    #[serde(default)]
    pub label: Option<String>,
    /// Excluded or not, if it changes.
    #[serde(default)]
    pub excluded: Option<bool>,
}

#[derive(Clone, Debug)]
struct Change {
    id: u64,
    before: ImageState,
    after: ImageState,
}

/// The dataset being annotated (see the module documentation).
pub struct Store {
    manifest: PathBuf,
    dataset: ClassificationDataset,
    /// The manifest's bytes as last read or written, to notice other writers.
    on_disk: Vec<u8>,
    undo: Vec<Change>,
    predictions: HashMap<u64, Prediction>,
    maps: Option<Overlays>,
}

/// Draws an image's map over it (a PNG), given the image's id and file:
/// where in it the evidence for the model's predicted label was. None when
/// the image cannot be explained.
pub type Overlays = std::sync::Arc<dyn Fn(u64, &Path) -> Option<Vec<u8>> + Send + Sync>;

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("cannot read manifest", path.to_path_buf(), e))
}

impl Store {
    /// Opens the manifest at `manifest`; `predictions` (by image id) are shown
    /// beside the images.
    pub fn open(manifest: impl Into<PathBuf>, predictions: HashMap<u64, Prediction>) -> Result<Self> {
        let manifest = manifest.into();
        let on_disk = read(&manifest)?;
        let dataset = ClassificationDataset::from_manifest(&manifest)?;
        Ok(Store { manifest, dataset, on_disk, undo: Vec::new(), predictions, maps: None })
    }

    /// Shows maps on the large view, drawn by `overlays`.
    pub fn with_overlays(mut self, overlays: Overlays) -> Self {
        self.maps = Some(overlays);
        self
    }

    /// What draws the maps, if any.
    pub fn overlays(&self) -> Option<Overlays> {
        self.maps.clone()
    }

    /// The manifest being edited.
    pub fn manifest(&self) -> &Path {
        &self.manifest
    }

    /// The dataset as it is now.
    pub fn dataset(&self) -> &ClassificationDataset {
        &self.dataset
    }

    /// Re-reads the manifest if another writer changed it.
    fn refresh(&mut self) -> Result<()> {
        let bytes = read(&self.manifest)?;
        if bytes != self.on_disk {
            tracing::info!(manifest = %self.manifest.display(), "the manifest changed on disk; reloading it");
            self.dataset = ClassificationDataset::from_manifest(&self.manifest)?;
            self.on_disk = bytes;
        }
        Ok(())
    }

    fn all_images(&self) -> impl Iterator<Item = (&ImageInfo, bool)> {
        self.dataset.images().iter().map(|i| (i, false)).chain(self.dataset.excluded().iter().map(|i| (i, true)))
    }

    fn state(&self, id: u64) -> Result<ImageState> {
        let excluded = self.dataset.is_excluded(id).ok_or(Error::NoSuchImage { id })?;
        let img = self.dataset.any_image(id).ok_or(Error::NoSuchImage { id })?;
        Ok(ImageState { label: self.label_name(img), excluded })
    }

    fn label_name(&self, img: &ImageInfo) -> String {
        self.dataset.labels().get(img.label()).map(|l| l.name.clone()).unwrap_or_default()
    }

    fn view_of(&self, img: &ImageInfo, excluded: bool, parts: &HashMap<u64, &'static str>) -> ImageView {
        let label = self.label_name(img);
        let prediction = self.predictions.get(&img.id).cloned();
        let doubt =
            prediction.as_ref().map(|p| if p.label == label { 1.0 - p.probability } else { 1.0 + p.probability });
        ImageView {
            id: img.id,
            name: img.name.clone(),
            label,
            excluded,
            part: parts.get(&img.id).copied(),
            prediction,
            doubt,
            findings: self.dataset.findings().and_then(|f| f.images.get(&img.id)).cloned().unwrap_or_default(),
        }
    }

    fn parts(&self) -> HashMap<u64, &'static str> {
        let mut parts = HashMap::new();
        if let Some(split) = self.dataset.split_info() {
            parts.extend(split.train.iter().map(|&id| (id, "train")));
            parts.extend(split.test.iter().map(|&id| (id, "test")));
        }
        parts
    }

    /// One image as the page shows it.
    pub fn image_view(&self, id: u64) -> Option<ImageView> {
        let excluded = self.dataset.is_excluded(id)?;
        let img = self.dataset.any_image(id)?;
        Some(self.view_of(img, excluded, &self.parts()))
    }

    /// The whole dataset as the page shows it (re-read first if it changed on disk).
    pub fn view(&mut self) -> Result<DatasetView> {
        self.refresh()?;
        let parts = self.parts();
        let mut images: Vec<ImageView> = self.all_images().map(|(img, ex)| self.view_of(img, ex, &parts)).collect();
        images.sort_by_key(|v| v.id);
        let labels = self.dataset.label_names();
        let mut counts: BTreeMap<String, usize> = labels.iter().map(|l| (l.clone(), 0)).collect();
        for v in images.iter().filter(|v| !v.excluded) {
            *counts.entry(v.label.clone()).or_default() += 1;
        }
        Ok(DatasetView {
            name: self.dataset.name().to_string(),
            manifest: self.manifest.clone(),
            labels,
            counts,
            excluded: self.dataset.excluded().len(),
            has_model: !self.predictions.is_empty(),
            has_maps: self.maps.is_some(),
            can_undo: !self.undo.is_empty(),
            images,
            audit: self.dataset.findings().map(|f| AuditView {
                audited_images: f.audited_images,
                base_model: f.base_model.clone(),
                duplicate_sets: f.duplicate_sets.clone(),
            }),
        })
    }

    /// The file of image `id` (excluded images too); `None` for any other id.
    pub fn image_path(&self, id: u64) -> Option<PathBuf> {
        self.dataset.any_image(id).map(|i| i.path.clone())
    }

    /// Whether there is a change to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Locks the manifest and brings the dataset up to date with it: the
    /// start of every change.
    fn lock(&mut self) -> Result<FileLock> {
        let lock = FileLock::acquire(&self.manifest)?;
        self.refresh()?;
        Ok(lock)
    }

    /// Writes `dataset` to the manifest (whose lock the caller holds) and
    /// keeps it; on failure nothing changes.
    fn save(&mut self, dataset: ClassificationDataset, lock: &FileLock) -> Result<()> {
        // An atomic rename would replace even a read-only file: honour the mode.
        if std::fs::metadata(&self.manifest).is_ok_and(|m| m.permissions().readonly()) {
            return Err(Error::ReadOnly { path: self.manifest.clone() });
        }
        self.on_disk = dataset.to_manifest_locked(lock)?;
        self.dataset = dataset;
        Ok(())
    }

    fn apply(&self, id: u64, to: &ImageState) -> Result<ClassificationDataset> {
        let mut ds = self.dataset.clone();
        let label = ds.label_index(&to.label).map_err(|_| Error::UnknownLabel(to.label.clone()))?;
        ds.set_label(id, label)?;
        ds.set_excluded(id, to.excluded)?;
        Ok(ds)
    }

    /// Changes image `id` as `edit` says, if it is still as the page saw it
    /// ([`Error::Conflict`] otherwise), saves, and returns its new view.
    pub fn edit(&mut self, id: u64, edit: &Edit) -> Result<ImageView> {
        let lock = self.lock()?;
        let before = self.state(id)?;
        if before != edit.expect {
            return Err(Error::Conflict { id });
        }
        let after = ImageState {
            label: edit.label.clone().unwrap_or_else(|| before.label.clone()),
            excluded: edit.excluded.unwrap_or(before.excluded),
        };
        if after != before {
            let ds = self.apply(id, &after)?;
            self.save(ds, &lock)?;
            self.undo.push(Change { id, before, after });
        }
        self.image_view(id).ok_or(Error::NoSuchImage { id })
    }

    /// Reverts the last change, if its image is still as that change left it;
    /// returns the image's view.
    pub fn undo(&mut self) -> Result<ImageView> {
        let lock = self.lock()?;
        let change = self.undo.pop().ok_or(Error::NothingToUndo)?;
        let id = change.id;
        if self.state(id)? != change.after {
            // Changed since by someone else: undoing would overwrite that.
            return Err(Error::Conflict { id });
        }
        let result = self.apply(id, &change.before).and_then(|ds| self.save(ds, &lock));
        if let Err(e) = result {
            // Not saved: the change can still be undone later.
            self.undo.push(change);
            return Err(e);
        }
        self.image_view(id).ok_or(Error::NoSuchImage { id })
    }

    /// Adds a label (kept sorted) and saves; returns the labels.
    pub fn add_label(&mut self, name: &str) -> Result<Vec<String>> {
        let lock = self.lock()?;
        let mut ds = self.dataset.clone();
        ds.add_label(name)?;
        // An existing name changes nothing and needs no save.
        if ds.labels().len() != self.dataset.labels().len() {
            self.save(ds, &lock)?;
        }
        Ok(self.dataset.label_names())
    }
}
