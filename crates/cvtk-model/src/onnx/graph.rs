//! [`GraphBuilder`]: an ONNX graph built op by op from a network's weights,
//! with batch norm folded into the convolution before it (the same folding as
//! the fused ResNet). The networks' emitters (in [`crate::nets`]) call it.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::proto::{attribute_type, AttributeProto, NodeProto, TensorProto, FLOAT};
use crate::{Error, Result};

/// A network's variables by name.
pub(crate) type Vars = HashMap<String, Tensor>;

/// A convolution's geometry: stride, padding `[top, left, bottom, right]`
/// (TensorFlow "same" padding is asymmetric) and groups.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvShape {
    pub stride: i64,
    pub pads: [i64; 4],
    pub groups: i64,
}

impl ConvShape {
    /// Symmetric padding, one group.
    pub fn new(stride: i64, pad: i64) -> Self {
        ConvShape { stride, pads: [pad; 4], groups: 1 }
    }
}

/// The nodes and weights of a graph being built.
#[derive(Default)]
pub(crate) struct GraphBuilder {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    next: usize,
    /// The feature map [`Self::pool_features`] pooled last, and its channels'
    /// count is the features': what class activation maps are made of.
    pub pooled_map: Option<String>,
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::INT), i: Some(v), ..Default::default() }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A variable, or an error naming it.
pub(crate) fn var<'a>(vars: &'a Vars, name: &str) -> Result<&'a Tensor> {
    vars.get(name).ok_or_else(|| Error::Weights {
        path: "<network>".into(),
        reason: format!("no variable '{name}' to export the network"),
    })
}

/// A tensor's values as f32, in order.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>> {
    let t = t.f_detach()?.f_to_kind(Kind::Float)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
    Ok(Vec::<f32>::try_from(&t.f_flatten(0, -1)?)?)
}

/// `conv.weight` with `bn`'s scale folded in, and the bias it leaves:
/// `w * gamma / sqrt(var + eps)` and `beta - mean * gamma / sqrt(var + eps)`
/// (plus the convolution's own bias, if it has one).
pub(crate) fn fold_batch_norm(vars: &Vars, conv: &str, bn: &str, eps: f64) -> Result<(Tensor, Tensor)> {
    let float = |name: String| -> Result<Tensor> { Ok(var(vars, &name)?.f_detach()?.f_to_kind(Kind::Float)?) };
    let w = float(format!("{conv}.weight"))?;
    let gamma = float(format!("{bn}.weight"))?;
    let beta = float(format!("{bn}.bias"))?;
    let mean = float(format!("{bn}.running_mean"))?;
    let variance = float(format!("{bn}.running_var"))?;
    let scale = gamma.f_div(&variance.f_add_scalar(eps)?.f_sqrt()?)?;
    let mut bias = beta.f_sub(&mean.f_mul(&scale)?)?;
    if let Some(b) = vars.get(&format!("{conv}.bias")) {
        bias = bias.f_add(&b.f_detach()?.f_to_kind(Kind::Float)?.f_mul(&scale)?)?;
    }
    let w = w.f_mul(&scale.f_view([-1, 1, 1, 1])?)?.f_contiguous()?;
    Ok((w, bias))
}

impl GraphBuilder {
    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    /// A weight tensor of the graph; returns its name.
    pub fn constant(&mut self, hint: &str, t: &Tensor) -> Result<String> {
        let dims = t.size();
        let data = values(t)?;
        Ok(self.constant_values(hint, &dims, &data))
    }

    /// A weight tensor from values; returns its name.
    pub fn constant_values(&mut self, hint: &str, dims: &[i64], data: &[f32]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(FLOAT),
            name: Some(name.clone()),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        });
        name
    }

    /// An int64 tensor from values (shapes, axes, slice bounds); returns its name.
    pub fn constant_i64(&mut self, hint: &str, data: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: Some(super::proto::INT64),
            name: Some(name.clone()),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        });
        name
    }

    /// `x` mirrored along its last axis (width).
    pub fn mirror(&mut self, x: &str) -> String {
        let starts = self.constant_i64("starts", &[-1]);
        let ends = self.constant_i64("ends", &[i64::MIN]);
        let axes = self.constant_i64("axes", &[-1]);
        let steps = self.constant_i64("steps", &[-1]);
        self.node("Slice", &[x, &starts, &ends, &axes, &steps], vec![])
    }

    /// `x` (`[N, ...]`) followed by its mirror image along the batch axis (`[2N, ...]`).
    pub fn with_mirrors(&mut self, x: &str) -> String {
        let m = self.mirror(x);
        self.node("Concat", &[x, &m], vec![attr_int("axis", 0)])
    }

    /// The mean of the two halves of `x` (`[2N, rest...]` to `[N, rest...]`),
    /// the second half mirrored back along its last axis first when `mirror`.
    pub fn mean_of_halves(&mut self, x: &str, mirror: bool) -> String {
        // [2, -1] followed by x's own sizes after the batch axis.
        let shape = self.node("Shape", &[x], vec![]);
        let (one, end, axis) = (
            self.constant_i64("starts", &[1]),
            self.constant_i64("ends", &[i64::MAX]),
            self.constant_i64("axes", &[0]),
        );
        let rest = self.node("Slice", &[&shape, &one, &end, &axis], vec![]);
        let two = self.constant_i64("halves", &[2, -1]);
        let shape = self.node("Concat", &[&two, &rest], vec![attr_int("axis", 0)]);
        let mut halves = self.node("Reshape", &[x, &shape], vec![]);
        if mirror {
            let (zero, one, two, axis) = (
                self.constant_i64("starts", &[0]),
                self.constant_i64("split", &[1]),
                self.constant_i64("ends", &[2]),
                self.constant_i64("axes", &[0]),
            );
            let first = self.node("Slice", &[&halves, &zero, &one, &axis], vec![]);
            let second = self.node("Slice", &[&halves, &one, &two, &axis], vec![]);
            let back = self.mirror(&second);
            halves = self.node("Concat", &[&first, &back], vec![attr_int("axis", 0)]);
        }
        self.node("ReduceMean", &[&halves], vec![attr_ints("axes", &[0]), attr_int("keepdims", 0)])
    }

    /// A node with one output; returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.node_named(op, inputs, attribute, &out);
        out
    }

    /// A node whose output has a chosen name (a graph output).
    pub fn node_named(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>, output: &str) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(format!("{op}_{}", self.nodes.len())),
            op_type: Some(op.into()),
            attribute,
            domain: None,
        });
    }

    /// A convolution with weight `w` `[out, in / groups, k, k]` and bias `b`.
    pub fn conv(&mut self, x: &str, w: &Tensor, b: &Tensor, shape: ConvShape) -> Result<String> {
        let k = w.size()[2..].to_vec();
        let (wn, bn) = (self.constant("w", w)?, self.constant("b", b)?);
        Ok(self.node(
            "Conv",
            &[x, &wn, &bn],
            vec![
                attr_ints("kernel_shape", &k),
                attr_ints("strides", &[shape.stride, shape.stride]),
                attr_ints("pads", &[shape.pads[0], shape.pads[1], shape.pads[2], shape.pads[3]]),
                attr_ints("dilations", &[1, 1]),
                attr_int("group", shape.groups),
            ],
        ))
    }

    /// A convolution whose batch norm `bn` (epsilon `eps`) is folded in.
    pub fn conv_bn(
        &mut self,
        vars: &Vars,
        x: &str,
        conv: &str,
        bn: &str,
        eps: f64,
        shape: ConvShape,
    ) -> Result<String> {
        let (w, b) = fold_batch_norm(vars, conv, bn, eps)?;
        self.conv(x, &w, &b, shape)
    }

    /// A convolution with its own weight and bias variables.
    pub fn conv_vars(&mut self, vars: &Vars, x: &str, conv: &str, shape: ConvShape) -> Result<String> {
        let w = var(vars, &format!("{conv}.weight"))?.shallow_clone();
        let b = var(vars, &format!("{conv}.bias"))?.shallow_clone();
        self.conv(x, &w, &b, shape)
    }

    /// `max(x, 0)`.
    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    /// `min(max(x, 0), 6)`.
    pub fn relu6(&mut self, x: &str) -> String {
        let lo = self.constant_values("zero", &[], &[0.0]);
        let hi = self.constant_values("six", &[], &[6.0]);
        self.node("Clip", &[x, &lo, &hi], vec![])
    }

    /// `a + b`.
    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    /// Max pooling over `k`x`k` windows.
    pub fn max_pool(&mut self, x: &str, k: i64, stride: i64, pad: i64) -> String {
        self.node(
            "MaxPool",
            &[x],
            vec![
                attr_ints("kernel_shape", &[k, k]),
                attr_ints("strides", &[stride, stride]),
                attr_ints("pads", &[pad; 4]),
            ],
        )
    }

    /// The mean over height and width, flattened to `[N, C]`.
    pub fn pool_features(&mut self, x: &str) -> String {
        self.pooled_map = Some(x.to_string());
        let pooled = self.node("GlobalAveragePool", &[x], vec![]);
        self.flatten(&pooled)
    }

    /// `[N, ...]` to `[N, rest]`.
    pub fn flatten(&mut self, x: &str) -> String {
        self.node("Flatten", &[x], vec![attr_int("axis", 1)])
    }

    /// `x W^T + b` with `W` `[out, in]`.
    pub fn linear(&mut self, x: &str, w: &Tensor, b: &Tensor) -> Result<String> {
        let (wn, bn) = (self.constant("w", w)?, self.constant("b", b)?);
        Ok(self.node("Gemm", &[x, &wn, &bn], vec![attr_int("transB", 1)]))
    }

    /// A linear layer from its `name.weight` and `name.bias` variables.
    pub fn linear_vars(&mut self, vars: &Vars, x: &str, name: &str) -> Result<String> {
        let w = var(vars, &format!("{name}.weight"))?.shallow_clone();
        let b = var(vars, &format!("{name}.bias"))?.shallow_clone();
        self.linear(x, &w, &b)
    }

    /// `softmax(x / temperature)` over the last axis, as the graph output `output`.
    pub fn softmax_named(&mut self, x: &str, temperature: f32, output: &str) {
        let t = self.constant_values("temperature", &[], &[temperature]);
        let scaled = self.node("Div", &[x, &t], vec![]);
        self.node_named("Softmax", &[&scaled], vec![attr_int("axis", -1)], output);
    }

    /// `x` again under the name `output` (a graph output).
    pub fn identity_named(&mut self, x: &str, output: &str) {
        self.node_named("Identity", &[x], vec![], output);
    }
}
