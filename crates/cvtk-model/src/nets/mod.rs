//! The networks, one file per architecture. Every constructor returns a
//! [`Network`]: a feature extractor and, when a class count is given, a linear
//! head; `*_no_final_layer` constructors build the featurizer alone.

pub mod efficientnet_lite;
pub mod resnet;
pub mod small_cnn;

use tch::nn::{self, ModuleT};
use tch::Tensor;

/// A backbone with an optional classifier head.
pub struct Network {
    features: Box<dyn ModuleT + Send>,
    feature_dim: i64,
    head: Option<nn::Linear>,
    dropout: f64,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("feature_dim", &self.feature_dim).field("head", &self.head.is_some()).finish()
    }
}

impl Network {
    pub(crate) fn new(features: impl ModuleT + 'static, feature_dim: i64, head: Option<nn::Linear>) -> Self {
        Network { features: Box::new(features), feature_dim, head, dropout: 0.0 }
    }

    /// Dropout applied to the features before the head, in training only.
    pub(crate) fn with_dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }

    /// Number of features the backbone produces (the head's input size).
    pub fn feature_dim(&self) -> i64 {
        self.feature_dim
    }

    /// Whether the network has a classifier head.
    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// Pooled features `[N, feature_dim]`.
    pub fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.features.forward_t(xs, train)
    }

    /// The head applied to features (with dropout in training); the features
    /// themselves when there is no head.
    pub fn head_t(&self, features: &Tensor, train: bool) -> Tensor {
        match &self.head {
            Some(h) => features.dropout(self.dropout, train).apply(h),
            None => features.shallow_clone(),
        }
    }

    /// Logits `[N, classes]` (features when there is no head).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.head_t(&self.features_t(xs, train), train)
    }
}
