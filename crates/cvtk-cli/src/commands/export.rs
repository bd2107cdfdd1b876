//! `cvtk export`: a model folder's network (or a base network's ImageNet
//! classifier) as one ONNX file that runs without cvtk.

use std::path::PathBuf;

use anyhow::Context;
use cvtk_model::{load_classifier, Classifier, OnnxMetadata, TransferModel};
use serde::Serialize;

use super::train::BaseModelArgs;
use crate::output::print_json;

/// Export formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ONNX, opset 17: input `images` [batch, C, H, W], outputs `scores` and
    /// `probabilities`, the input contract and labels in its metadata.
    Onnx,
}

/// Arguments of `cvtk export`.
#[derive(clap::Args, Debug)]
#[command(after_help = "The file is written atomically: an existing file is replaced only by a complete export. \
    docs/models.md describes the input the graph expects.")]
pub struct Args {
    /// A model folder written by `cvtk train`; without it, the base network's ImageNet classifier.
    model: Option<PathBuf>,
    /// The format to write.
    #[arg(long, value_enum, default_value = "onnx")]
    format: Format,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    base: BaseModelArgs,
    /// Test-time augmentation baked into the graph: none, or flip (each image and its mirror image,
    /// scores averaged). By default, what the model was trained with (`cvtk train --tta`), so the file
    /// scores as cvtk does.
    #[arg(long)]
    tta: Option<cvtk_model::TtaMode>,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Exported<'a> {
    out: PathBuf,
    format: &'static str,
    bytes: usize,
    opset: i64,
    input: &'static str,
    outputs: [&'static str; 2],
    /// The graph's `cvtk.*` metadata: labels, input contract, score kind, source.
    metadata: &'a OnnxMetadata,
}

/// Runs `cvtk export`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let Format::Onnx = args.format;
    let device = tch::Device::Cpu;
    let model: Box<dyn Classifier> = match &args.model {
        Some(dir) => load_classifier(dir, device)?,
        None => Box::new(TransferModel::imagenet(&args.base.base_model()?, device)?),
    };
    let onnx = model.export_onnx_tta(args.tta.unwrap_or_else(|| model.tta()))?;
    onnx.write(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let exported = Exported {
        out: args.out.clone(),
        format: "onnx",
        bytes: onnx.bytes().len(),
        opset: cvtk_model::onnx::OPSET,
        input: cvtk_model::onnx::INPUT,
        outputs: [cvtk_model::onnx::SCORES, cvtk_model::onnx::PROBABILITIES],
        metadata: onnx.metadata(),
    };
    if args.json {
        return print_json(&exported);
    }
    let m = onnx.metadata();
    println!(
        "wrote {} ({:.1} MB): {} with {} labels, input {} [batch, {}, {}, {}], outputs scores and probabilities",
        args.out.display(),
        exported.bytes as f64 / 1e6,
        m.architecture,
        m.labels.len(),
        exported.input,
        m.input.channels,
        m.input.height,
        m.input.width
    );
    Ok(())
}
