//! cvtk: image classification by transfer learning, in Rust.
//!
//! This facade re-exports the workspace crates, one per step of the workflow, so
//! examples and applications can depend on one crate:
//!
//! | module | crate | owns |
//! |---|---|---|
//! | [`dataset`] | `cvtk-dataset` | images on disk, labels, splits, manifests, storage paths, the image loader |
//! | [`augment`] | `cvtk-augment` | image-to-image transforms and pipelines |
//! | [`model`] | `cvtk-model` | networks, weights files, training, scoring, features, SVM |
//! | [`eval`] | `cvtk-eval` | metrics, curves, plots, the HTML report |
//! | [`deploy`] | `cvtk-deploy` | the REST scoring service, its client, deployments, load tests |
//! | [`annotate`] | `cvtk-annotate` | the browser page to look at images and correct labels |

pub use cvtk_annotate as annotate;
pub use cvtk_augment as augment;
pub use cvtk_dataset as dataset;
pub use cvtk_deploy as deploy;
pub use cvtk_eval as eval;
pub use cvtk_model as model;
