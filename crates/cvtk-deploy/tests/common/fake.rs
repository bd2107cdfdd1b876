//! A scorer with no libtorch in it, for the tests of what takes a `Scorer`
//! (the service here, batch scoring in cvtk-score): it sleeps per batch,
//! records batch sizes, can fail as a model does, and scores an image by its
//! mean intensity.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cvtk_core::ScoreKind;
use cvtk_dataset::{ColorMode, ImageBatch, LoaderConfig, Normalization};
use cvtk_model::{Engine, Scorer};

/// The calibration temperature [`Fake`] reports.
pub const FAKE_TEMPERATURE: f32 = 2.0;

/// A scorer that sleeps per batch and records batch sizes. Its logits are
/// calibrated at [`FAKE_TEMPERATURE`].
pub struct Fake {
    pub delay: Duration,
    /// Panic in `score_images` (as a tch call without `f_` does on CUDA out of memory).
    pub panics: bool,
    /// Panic with "CUDA out of memory" (tch's message) on a batch of more images than this.
    pub memory_for: Option<usize>,
    pub batches: Arc<Mutex<Vec<usize>>>,
    labels: Vec<String>,
}

impl Fake {
    pub fn new(delay: Duration) -> Self {
        Fake { delay, panics: false, memory_for: None, batches: Arc::default(), labels: vec!["x".into(), "y".into()] }
    }
}

impl Scorer for Fake {
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn loader_config(&self) -> LoaderConfig {
        LoaderConfig { color: ColorMode::Gray, normalization: Normalization::UNIT, ..LoaderConfig::square(8) }
    }
    fn score_images(&self, images: &ImageBatch) -> cvtk_model::Result<Vec<Vec<f32>>> {
        let n = images.len();
        assert!(!self.panics, "simulated failure inside the model");
        if self.memory_for.is_some_and(|most| n > most) {
            panic!("Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB\")");
        }
        self.batches.lock().unwrap().push(n);
        std::thread::sleep(self.delay);
        // Score = mean intensity for "x", its negation for "y".
        let per = images.data().len() / n.max(1);
        Ok(images
            .data()
            .chunks(per.max(1))
            .map(|px| {
                let m = px.iter().sum::<f32>() / px.len().max(1) as f32;
                vec![m, -m]
            })
            .collect())
    }
    /// Maps on a 2x2 grid: each cell's mean intensity for "x" (so the map's
    /// mean is the score), its negation for "y".
    fn class_maps(&self, images: &ImageBatch) -> cvtk_model::Result<Vec<cvtk_model::ClassMaps>> {
        let [n, _, h, w] = images.shape();
        let per = h * w;
        Ok((0..n)
            .map(|i| {
                let px = &images.data()[i * per..(i + 1) * per];
                let cell = |cy: usize, cx: usize| {
                    let mut sum = 0.0;
                    for y in cy * h / 2..(cy + 1) * h / 2 {
                        for x in cx * w / 2..(cx + 1) * w / 2 {
                            sum += px[y * w + x];
                        }
                    }
                    sum / (per / 4) as f32
                };
                let x: Vec<f32> = [(0, 0), (0, 1), (1, 0), (1, 1)].iter().map(|&(cy, cx)| cell(cy, cx)).collect();
                let m = x.iter().sum::<f32>() / 4.0;
                let mut values = x.clone();
                values.extend(x.iter().map(|v| -v));
                cvtk_model::ClassMaps { scores: vec![m, -m], height: 2, width: 2, values }
            })
            .collect())
    }
    fn score_kind(&self) -> ScoreKind {
        ScoreKind::Logits { temperature: FAKE_TEMPERATURE }
    }
    fn engine(&self) -> Engine {
        Engine::Torch
    }
    fn describe(&self) -> String {
        "fake".into()
    }
}
