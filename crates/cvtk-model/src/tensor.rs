//! The tensor side of the loader: [`ImageBatch`]es into libtorch tensors, and
//! score tensors back into rows.

use cvtk_dataset::ImageBatch;
use tch::{Device, Tensor};

use crate::{Error, Result};

/// A batch's values as a `[N, C, H, W]` f32 tensor on the CPU (one copy).
pub fn images_tensor(batch: &ImageBatch) -> Result<Tensor> {
    let shape = batch.shape().map(|d| d as i64);
    Ok(Tensor::f_from_slice(batch.data())?.f_view(shape)?)
}

/// Label indices as an i64 tensor, for the loss.
pub fn labels_tensor(labels: &[usize]) -> Result<Tensor> {
    let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Ok(Tensor::f_from_slice(&labels)?)
}

/// A 2-D float tensor as rows.
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let t = t.f_to_kind(tch::Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let size = t.size();
    if size.len() != 2 {
        return Err(Error::InvalidInput(format!("expected a 2-D score tensor, got {size:?}")));
    }
    let flat = Vec::<f32>::try_from(&t.f_flatten(0, -1)?)?;
    Ok(flat.chunks(size[1].max(1) as usize).map(<[f32]>::to_vec).collect())
}
