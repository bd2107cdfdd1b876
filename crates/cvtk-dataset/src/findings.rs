//! [`Findings`]: what the last `cvtk audit` found, kept in the manifest for
//! the people and commands that act on it: `cvtk annotate` filters the
//! images by finding and offers the suggested labels, `cvtk dataset split
//! --keep-duplicates-together` keeps each duplicate set on one side. They
//! are only notes: nothing changes a label or excludes an image by itself.
//!
//! ```json
//! "findings": { "audited_images": 164, "base_model": "efficientnet-lite0",
//!   "images": { "12": [{ "kind": "label_issue", "suggested": "7", "probability": 0.93 }],
//!               "40": [{ "kind": "quality", "issues": ["dark"] }] },
//!   "duplicate_sets": [{ "ids": [3, 161], "exact": true }] }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ClassificationDataset, Error, Result};

/// What the last audit found, by image id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Findings {
    /// Images the audit looked at.
    pub audited_images: usize,
    /// The network whose features it used.
    #[serde(default)]
    pub base_model: String,
    /// Each image's findings (images with none are left out).
    #[serde(default)]
    pub images: BTreeMap<u64, Vec<Finding>>,
    /// Sets of images that are the same picture.
    #[serde(default)]
    pub duplicate_sets: Vec<DuplicateIds>,
}

/// A set of images that are the same picture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateIds {
    /// The images' ids, in dataset order.
    pub ids: Vec<u64>,
    /// All the same pixels.
    pub exact: bool,
}

/// One finding about one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Finding {
    /// The out-of-sample model finds another label likelier.
    LabelIssue {
        /// The likelier label.
        suggested: String,
        /// Its probability.
        probability: f64,
    },
    /// Most of the nearest images carry another label.
    NeighboursDisagree {
        /// Their most common label.
        suggested: String,
        /// Its share of the neighbours.
        share: f64,
    },
    /// Far from every other image.
    Outlier {
        /// cleanlab's out-of-distribution score (lower is farther).
        score: f64,
    },
    /// In a duplicate set (`Findings::duplicate_sets[set]`).
    Duplicate {
        /// The set's index.
        set: usize,
    },
    /// Fails quality checks.
    Quality {
        /// The checks (`dark`, `light`, `blurry`, `low_information`,
        /// `odd_aspect_ratio`, `odd_size`, `grayscale`).
        issues: Vec<String>,
    },
}

impl Finding {
    /// The kind's name, as in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::LabelIssue { .. } => "label_issue",
            Finding::NeighboursDisagree { .. } => "neighbours_disagree",
            Finding::Outlier { .. } => "outlier",
            Finding::Duplicate { .. } => "duplicate",
            Finding::Quality { .. } => "quality",
        }
    }

    /// The label it suggests, if any.
    pub fn suggested(&self) -> Option<&str> {
        match self {
            Finding::LabelIssue { suggested, .. } | Finding::NeighboursDisagree { suggested, .. } => Some(suggested),
            _ => None,
        }
    }
}

impl Findings {
    /// The same findings for the images `map` renames (earlier id to id
    /// here), dropping those of images it does not name.
    pub fn remapped(&self, map: &std::collections::HashMap<u64, u64>) -> Findings {
        let mut sets = Vec::new();
        let mut set_index = std::collections::HashMap::new();
        for (i, set) in self.duplicate_sets.iter().enumerate() {
            let ids: Vec<u64> = set.ids.iter().filter_map(|id| map.get(id).copied()).collect();
            if ids.len() > 1 {
                set_index.insert(i, sets.len());
                sets.push(DuplicateIds { ids, exact: set.exact });
            }
        }
        let images = self
            .images
            .iter()
            .filter_map(|(id, found)| {
                let found: Vec<Finding> = found
                    .iter()
                    .filter_map(|f| match f {
                        Finding::Duplicate { set } => set_index.get(set).map(|&set| Finding::Duplicate { set }),
                        other => Some(other.clone()),
                    })
                    .collect();
                Some((*map.get(id)?, found)).filter(|(_, f)| !f.is_empty())
            })
            .collect();
        Findings {
            audited_images: self.audited_images,
            base_model: self.base_model.clone(),
            images,
            duplicate_sets: sets,
        }
    }
}

impl ClassificationDataset {
    /// What the last audit found, if the manifest holds it.
    pub fn findings(&self) -> Option<&Findings> {
        self.findings.as_ref()
    }

    /// Keeps `findings` with the dataset (its manifest carries them). Ids not
    /// in the dataset (excluded images count as in it) are an error.
    pub fn set_findings(&mut self, findings: Findings) -> Result<()> {
        self.check_findings(&findings)?;
        self.findings = Some(findings);
        Ok(())
    }

    pub(crate) fn check_findings(&self, findings: &Findings) -> Result<()> {
        let unknown = |id: u64| Error::InvalidConfig {
            field: "findings",
            reason: format!("image id {id} is not in dataset '{}'", self.name),
        };
        for id in findings.images.keys().chain(findings.duplicate_sets.iter().flat_map(|s| &s.ids)) {
            if self.any_image(*id).is_none() {
                return Err(unknown(*id));
            }
        }
        for found in findings.images.values() {
            for f in found {
                if let Finding::Duplicate { set } = f {
                    if *set >= findings.duplicate_sets.len() {
                        return Err(Error::InvalidConfig {
                            field: "findings",
                            reason: format!(
                                "duplicate set {set} named, but there are {}",
                                findings.duplicate_sets.len()
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
