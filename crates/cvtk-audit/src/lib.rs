//! The data audit: which images of a dataset a person should look at, and why.
//!
//! [`DatasetAudit::run`] features every image with a pretrained network (or
//! a trained model's, [`cvtk_model::Featurizer::of_model`]) and decodes it
//! once more for its pixels, then finds:
//!
//! - **label issues** by confident learning (Northcutt, Jiang and Chuang,
//!   "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR
//!   2021) on out-of-sample probabilities from a linear model fitted on the
//!   other folds ([`crossfit`]); on the same probabilities it flags the same
//!   images as cleanlab's `find_label_issues` with its default filter (ties
//!   broken in image order) and ranks them by the same label-quality scores
//!   as `get_label_quality_scores` (a test runs cleanlab and compares);
//! - images whose nearest neighbours carry another label, and **outliers**
//!   ([`neighbours`], [`outliers`]: cleanlab's score and Datalab's fence);
//! - **exact and near duplicates**, and the sets that leak across the split
//!   ([`duplicates`], [`pixels`]);
//! - **image quality**: CleanVision's checks on the same statistics of the
//!   same pixels ([`quality`], on ports of Pillow's operations in [`pil`]);
//! - the images per label, and the small labels.
//!
//! [`DatasetAudit::findings`] is what the manifest keeps for `cvtk annotate`
//! and `cvtk dataset split --keep-duplicates-together`; [`write_report`]
//! writes the findings as one page. `cvtk audit` prints them.
//!
//! ```
//! use cvtk_audit::label_issues;
//! # fn main() -> Result<(), cvtk_audit::Error> {
//! // Three images labelled 0 and three labelled 1; the model is sure the
//! // last "0" is a 1.
//! let labels = [0, 0, 0, 1, 1, 1];
//! let probs = [
//!     vec![0.9, 0.1], vec![0.8, 0.2], vec![0.05, 0.95],
//!     vec![0.1, 0.9], vec![0.2, 0.8], vec![0.15, 0.85],
//! ];
//! let issues = label_issues(&labels, &probs)?;
//! assert_eq!(issues.len(), 1);
//! assert_eq!((issues[0].index, issues[0].given, issues[0].suggested), (2, 0, 1));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// No unwrap on anything a user can influence (tests may: see clippy.toml).
#![warn(clippy::unwrap_used)]

mod audit;
mod cache;
pub mod crossfit;
pub mod duplicates;
mod error;
pub mod label_issues;
pub mod logistic;
pub mod neighbours;
pub mod outliers;
pub mod pil;
pub mod pixels;
pub mod quality;
mod report;
mod stats;

pub use audit::{
    AuditOptions, DatasetAudit, DuplicateMember, DuplicateSet, ImageLabelIssue, ImageRef, LabelCount, Outlier,
    QualityCount, QualityFinding, SMALL_LABEL,
};
pub use cache::{CacheUse, FeatureCache, Shard};
pub use error::{Error, Result};
pub use label_issues::{find_label_issues, label_issues, label_quality_scores, LabelIssue};
pub use report::{write_report, SHOWN};
