//! ONNX export of every cvtk model, written from Rust: the graph is built op by
//! op from the model's own weights (batch norm folded into the convolutions)
//! and serialised with hand-written prost types of `onnx.proto`
//! ([`proto`]); no Python and no onnx library at run time.
//!
//! An exported graph, opset 17 (IR 8):
//! - input `images`: `[batch, C, H, W]` float32, the batch dimension free;
//!   the values are what cvtk's loader makes: the image resized as
//!   `cvtk.input`'s `resize` says, in 0..255 pixel units, minus `mean` and
//!   over `std` per channel, NCHW;
//! - output `scores`: `[batch, labels]`, the raw scores (logits, or an SVM's
//!   decision values), and `probabilities`: `softmax(scores / T)` with the
//!   model's calibration temperature, what `cvtk predict` prints;
//! - `metadata_props`, everything a runtime needs without cvtk, as JSON values
//!   under `cvtk.*` keys ([`OnnxMetadata`]), and the labels one per line under
//!   `labels`.
//!
//! A model folder keeps its export as `model.onnx` beside the weights, the
//! graph onnxruntime scores with ([`crate::engine`]): derived from the weights
//! (its `cvtk.source` names the weights file and its SHA-256), rebuilt when it
//! is missing, corrupt or made from other weights, never trusted otherwise.

pub(crate) mod graph;
pub mod proto;

use std::path::Path;

use cvtk_core::ScoreKind;
use cvtk_dataset::{ColorMode, LoaderConfig, Normalization, ResizeMode};
use prost::Message;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use self::graph::{GraphBuilder, Vars};
use self::proto::{
    dimension, Dimension, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto, FLOAT,
};
use crate::{Architecture, Error, ModelKind, Result};

/// The ONNX operator set the graphs use.
pub const OPSET: i64 = 17;
/// The graphs' input.
pub const INPUT: &str = "images";
/// The raw scores output.
pub const SCORES: &str = "scores";
/// The calibrated probabilities output.
pub const PROBABILITIES: &str = "probabilities";
/// A backbone-only graph's output.
pub const FEATURES: &str = "features";
/// The optional output of class activation maps, `[batch, labels, h, w]`: the
/// linear head applied to each cell of the last feature map (no bias), so
/// that each map's mean plus the label's bias is its score
/// ([`crate::explain`]).
pub const CLASS_MAPS: &str = "class_maps";
/// The export a model folder keeps beside its weights.
pub const MODEL_ONNX: &str = "model.onnx";
/// Version of cvtk's metadata layout.
pub const METADATA_FORMAT: u32 = 1;

/// What the input must be: size, channels and preprocessing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputContract {
    /// The input's name.
    pub name: String,
    /// Always `NCHW`.
    pub layout: String,
    /// Channels (3 for RGB, 1 for gray).
    pub channels: usize,
    /// Height in pixels.
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
    /// RGB, or gray as Pillow's `convert("L")`.
    pub color: ColorMode,
    /// How an image is brought to `width` x `height`.
    pub resize: ResizeMode,
    /// `(pixel - mean) / std` per channel, pixels in 0..255.
    pub normalization: Normalization,
}

impl InputContract {
    /// The contract a loader of `config` fulfils.
    pub fn of(config: &LoaderConfig) -> Self {
        InputContract {
            name: INPUT.into(),
            layout: "NCHW".into(),
            channels: config.color.channels(),
            height: config.height,
            width: config.width,
            color: config.color,
            resize: config.resize,
            normalization: config.normalization,
        }
    }
}

/// What an exported graph says about itself (its `cvtk.*` metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnnxMetadata {
    /// [`METADATA_FORMAT`].
    pub format: u32,
    /// A fine-tuned network or an SVM.
    pub model_kind: ModelKind,
    /// The base network.
    pub architecture: Architecture,
    /// Labels, in score-column order.
    pub labels: Vec<String>,
    /// The input contract.
    pub input: InputContract,
    /// What `scores` holds and the temperature behind `probabilities`.
    pub score_kind: ScoreKind,
    /// The weights it was made from (`FILE sha256:HEX`), or `in memory`.
    pub source: String,
}

/// An exported model: its serialised graph and what it says about itself.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    metadata: OnnxMetadata,
    bytes: Vec<u8>,
    tta: crate::TtaMode,
}

/// The error for a network without a feature map before its head.
pub(crate) fn no_map(arch: Architecture) -> Error {
    Error::InvalidInput(format!(
        "{arch} has no feature map before its head (it flattens before a hidden layer), so it has no class \
         activation maps; the ResNets and EfficientNet-Lite have them"
    ))
}

fn onnx_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Onnx { path: path.to_path_buf(), reason: reason.into() }
}

fn value_info(name: &str, dims: &[Option<i64>], doc: &str) -> ValueInfoProto {
    let dims: Vec<std::result::Result<i64, &str>> = dims.iter().map(|d| d.ok_or("batch")).collect();
    value_info_named(name, &dims, doc)
}

/// [`value_info`] with each free dimension named (`Err(name)`).
fn value_info_named(name: &str, dims: &[std::result::Result<i64, &str>], doc: &str) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Ok(v) => dimension::Value::DimValue(*v),
                Err(param) => dimension::Value::DimParam((*param).into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto { elem_type: Some(FLOAT), shape: Some(TensorShapeProto { dim }) }),
        }),
        doc_string: Some(doc.into()),
    }
}

/// What follows the backbone in an exported graph.
pub(crate) enum Head {
    /// Nothing: the graph's output is the pooled features.
    Features,
    /// A linear layer `[labels, features]` and bias: the network's own head,
    /// or an SVM's weights.
    Linear {
        /// `[labels, features]`.
        w: Tensor,
        /// `[labels]`.
        b: Tensor,
        /// Whether the graph also outputs [`CLASS_MAPS`].
        maps: bool,
        /// Test-time augmentation baked into the graph: with
        /// [`crate::TtaMode::Flip`], every output is the mean over the image
        /// and its mirror image (maps mirrored back), as cvtk scores.
        tta: crate::TtaMode,
    },
}

/// Builds the graph of `arch`'s backbone over `vars` for `loader`'s input,
/// followed by `head`, and serialises it with `metadata` (None for a
/// features-only graph).
pub(crate) fn build(
    arch: Architecture,
    vars: &Vars,
    loader: &LoaderConfig,
    head: Head,
    metadata: Option<&OnnxMetadata>,
) -> Result<Vec<u8>> {
    let mut g = GraphBuilder::default();
    let size = (i64::from(loader.height), i64::from(loader.width));
    let flip = matches!(head, Head::Linear { tta: crate::TtaMode::Flip, .. });
    let input = if flip { g.with_mirrors(INPUT) } else { INPUT.to_string() };
    let features = (arch.spec().onnx)(&mut g, vars, &input, size)?;
    let input_dims = [None, Some(loader.color.channels() as i64), Some(size.0), Some(size.1)];
    let input_doc = "images resized and normalised as the cvtk.input metadata says, NCHW";
    let outputs = match head {
        Head::Features => {
            g.identity_named(&features, FEATURES);
            vec![value_info(FEATURES, &[None, Some(arch.feature_dim())], "pooled features")]
        }
        Head::Linear { w, b, maps, tta } => {
            let k = w.size()[0];
            let mut scores = g.linear(&features, &w, &b)?;
            if tta == crate::TtaMode::Flip {
                scores = g.mean_of_halves(&scores, false);
            }
            g.identity_named(&scores, SCORES);
            let t = metadata.and_then(|m| m.score_kind.temperature()).unwrap_or(1.0);
            g.softmax_named(&scores, t, PROBABILITIES);
            let mut outputs = vec![
                value_info(SCORES, &[None, Some(k)], "raw scores: logits, or SVM decision values"),
                value_info(PROBABILITIES, &[None, Some(k)], "softmax(scores / calibration temperature)"),
            ];
            if maps {
                let map = g.pooled_map.clone().ok_or_else(|| no_map(arch))?;
                // The head as a 1x1 convolution without its bias: cell by
                // cell, the map's mean over the cells plus the bias is the score.
                let kernel = w.f_view([k, -1, 1, 1])?;
                let zero = Tensor::f_zeros([k], (tch::Kind::Float, tch::Device::Cpu))?;
                let mut maps = g.conv(&map, &kernel, &zero, graph::ConvShape::new(1, 0))?;
                if tta == crate::TtaMode::Flip {
                    maps = g.mean_of_halves(&maps, true);
                }
                g.identity_named(&maps, CLASS_MAPS);
                let doc = "class activation maps: the head on each cell of the last feature map, without its bias";
                outputs.push(value_info_named(
                    CLASS_MAPS,
                    &[Err("batch"), Ok(k), Err("map_height"), Err("map_width")],
                    doc,
                ));
            }
            outputs
        }
    };
    let mut metadata_props = Vec::new();
    if let Some(m) = metadata {
        let json = |v: serde_json::Result<String>| v.map_err(|e| Error::InvalidInput(e.to_string()));
        let mut entry = |key: &str, value: String| {
            metadata_props.push(StringStringEntryProto { key: Some(key.into()), value: Some(value) });
        };
        entry("cvtk.format", m.format.to_string());
        entry("cvtk.model_kind", json(serde_json::to_string(&m.model_kind))?);
        entry("cvtk.architecture", json(serde_json::to_string(&m.architecture))?);
        entry("cvtk.labels", json(serde_json::to_string(&m.labels))?);
        entry("cvtk.input", json(serde_json::to_string(&m.input))?);
        entry("cvtk.score_kind", json(serde_json::to_string(&m.score_kind))?);
        entry("cvtk.source", m.source.clone());
        if flip {
            entry("cvtk.tta", "flip".into());
        }
        entry("labels", m.labels.join("\n"));
    }
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        producer_name: Some("cvtk".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        domain: None,
        model_version: Some(1),
        doc_string: Some(format!("{arch} exported by cvtk")),
        graph: Some(GraphProto {
            node: g.nodes,
            name: Some(arch.name().to_string()),
            initializer: g.initializers,
            doc_string: None,
            input: vec![value_info(INPUT, &input_dims, input_doc)],
            output: outputs,
        }),
        metadata_props,
    };
    Ok(model.encode_to_vec())
}

impl OnnxModel {
    pub(crate) fn new(metadata: OnnxMetadata, bytes: Vec<u8>) -> Self {
        OnnxModel { metadata, bytes, tta: crate::TtaMode::None }
    }

    /// Records the test-time augmentation baked into the graph.
    pub(crate) fn with_tta(mut self, tta: crate::TtaMode) -> Self {
        self.tta = tta;
        self
    }

    /// What the graph says about itself.
    pub fn metadata(&self) -> &OnnxMetadata {
        &self.metadata
    }

    /// The serialised graph.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Writes the graph to `path` atomically (a temporary file renamed over
    /// it), so an interrupted export leaves what was there before.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(cvtk_core::write_atomic(path, &self.bytes)?)
    }

    /// Reads a graph cvtk exported; anything else (not ONNX, truncated, no or
    /// broken `cvtk.*` metadata) is an error that says so.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path.to_path_buf(), e))?;
        let model = ModelProto::decode(bytes.as_slice())
            .map_err(|e| onnx_err(path, format!("not an ONNX model ({e}); the file is corrupt")))?;
        let get = |key: &str| {
            model.metadata_props.iter().find(|p| p.key.as_deref() == Some(key)).and_then(|p| p.value.clone())
        };
        let missing = |key: &str| onnx_err(path, format!("no {key} metadata: not exported by cvtk"));
        let parse = |key: &str| -> Result<serde_json::Value> {
            let text = get(key).ok_or_else(|| missing(key))?;
            serde_json::from_str(&text).map_err(|e| onnx_err(path, format!("{key} is not valid: {e}")))
        };
        let format: u32 = get("cvtk.format").and_then(|v| v.parse().ok()).ok_or_else(|| missing("cvtk.format"))?;
        let field = |key: &str| -> Result<serde_json::Value> { parse(key) };
        let metadata = serde_json::from_value::<OnnxMetadata>(serde_json::json!({
            "format": format,
            "model_kind": field("cvtk.model_kind")?,
            "architecture": field("cvtk.architecture")?,
            "labels": field("cvtk.labels")?,
            "input": field("cvtk.input")?,
            "score_kind": field("cvtk.score_kind")?,
            "source": get("cvtk.source").ok_or_else(|| missing("cvtk.source"))?,
        }))
        .map_err(|e| onnx_err(path, format!("its cvtk metadata is not valid: {e}")))?;
        if metadata.format > METADATA_FORMAT {
            return Err(onnx_err(path, format!("metadata format {} is newer than this cvtk reads", metadata.format)));
        }
        let tta = get("cvtk.tta").map_or(Ok(crate::TtaMode::None), |t| t.parse())?;
        Ok(OnnxModel { metadata, bytes, tta })
    }

    /// The test-time augmentation baked into the graph (`cvtk.tta`).
    pub fn tta(&self) -> crate::TtaMode {
        self.tta
    }

    /// Checks that the graph fits a model of `labels` read through `loader`:
    /// the error names both sides of what differs.
    pub fn check_fits(&self, path: &Path, labels: &[String], loader: &LoaderConfig) -> Result<()> {
        let m = &self.metadata;
        if m.labels != labels {
            return Err(onnx_err(
                path,
                format!("its labels ({}) are not the model's ({})", m.labels.join(", "), labels.join(", ")),
            ));
        }
        let want = InputContract::of(loader);
        if m.input != want {
            return Err(onnx_err(
                path,
                format!(
                    "its input ({}x{}x{}, {:?}) is not the model's ({}x{}x{}, {:?})",
                    m.input.channels,
                    m.input.height,
                    m.input.width,
                    m.input.normalization,
                    want.channels,
                    want.height,
                    want.width,
                    want.normalization
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_cvtk_exports_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.onnx");
        std::fs::write(&p, b"\xff\xff\xff not protobuf").unwrap();
        assert!(OnnxModel::read(&p).unwrap_err().to_string().contains("not an ONNX model"));
        std::fs::write(&p, ModelProto::default().encode_to_vec()).unwrap();
        assert!(OnnxModel::read(&p).unwrap_err().to_string().contains("not exported by cvtk"));
    }
}
