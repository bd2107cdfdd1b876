//! Reading weights files: PyTorch `torch.save(model.state_dict(), f)` files
//! (the zip format of torch >= 1.6, and the legacy format before it), and
//! `.safetensors`. Tensors come back by their state-dict names, which equal the
//! `nn::Path` names of cvtk's networks, so torchvision files load as they are.

mod pickle;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use self::pickle::{read_pickle, TensorRef, Value};
use crate::{Error, Result};

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Weights { path: path.to_path_buf(), reason: reason.into() }
}

fn kind_of(dtype: &str) -> Option<(Kind, usize)> {
    Some(match dtype {
        "FloatStorage" => (Kind::Float, 4),
        "DoubleStorage" => (Kind::Double, 8),
        "HalfStorage" => (Kind::Half, 2),
        "BFloat16Storage" => (Kind::BFloat16, 2),
        "LongStorage" => (Kind::Int64, 8),
        "IntStorage" => (Kind::Int, 4),
        "ShortStorage" => (Kind::Int16, 2),
        "CharStorage" => (Kind::Int8, 1),
        "ByteStorage" => (Kind::Uint8, 1),
        "BoolStorage" => (Kind::Bool, 1),
        _ => return None,
    })
}

/// Reads every tensor of a weights file, by name. The format is chosen by the
/// file's content (zip, legacy pickle) or, for safetensors, its extension.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if path.extension().and_then(|e| e.to_str()) == Some("safetensors") {
        return Tensor::read_safetensors(path).map_err(|e| bad(path, first_line(&e.to_string())));
    }
    let data =
        std::fs::read(path).map_err(|e| Error::Io { action: "cannot read", path: path.to_path_buf(), source: e })?;
    if data.starts_with(b"PK\x03\x04") {
        read_zip(path, &data)
    } else if data.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
        read_legacy(path, &data)
    } else if data.len() > 8 && data[8] == b'{' {
        // safetensors with another extension: 8-byte header length then JSON.
        Tensor::read_safetensors(path).map_err(|e| bad(path, first_line(&e.to_string())))
    } else {
        Err(bad(path, "not a PyTorch state dict (zip or legacy format) nor a safetensors file"))
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Collects `name -> tensor` from the unpickled object: a state dict, or a dict
/// holding one under "state_dict" / "model" (common checkpoint layouts).
fn tensors_of(path: &Path, root: Value) -> Result<Vec<(String, TensorRef)>> {
    let Value::Dict(items) = root else { return Err(bad(path, "the pickled object is not a dict of tensors")) };
    let nested = items.iter().find_map(|(k, v)| match (k, v) {
        (Value::Str(k), Value::Dict(_)) if k == "state_dict" || k == "model" => Some(v.clone()),
        _ => None,
    });
    if let Some(inner) = nested {
        return tensors_of(path, inner);
    }
    let out: Vec<(String, TensorRef)> = items
        .into_iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Some((k, t)),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        return Err(bad(path, "the file holds no tensors (is it a whole pickled model rather than a state_dict?)"));
    }
    Ok(out)
}

fn build_tensor(path: &Path, name: &str, t: &TensorRef, storage: &[u8]) -> Result<Tensor> {
    let (kind, elem) = kind_of(&t.storage.dtype)
        .ok_or_else(|| bad(path, format!("{name}: unsupported storage type {}", t.storage.dtype)))?;
    let numel = storage.len() / elem;
    if (numel as i64) < t.storage.numel {
        return Err(bad(
            path,
            format!("{name}: storage {} is truncated ({} of {} elements)", t.storage.key, numel, t.storage.numel),
        ));
    }
    let base = Tensor::f_from_data_size(&storage[..t.storage.numel as usize * elem], &[t.storage.numel], kind)?;
    let view = base.f_as_strided(&t.size, &t.stride, Some(t.offset))?;
    Ok(view.f_contiguous()?)
}

fn read_zip(path: &Path, data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(|e| bad(path, format!("broken zip: {e}")))?;
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .map(str::to_string)
        .ok_or_else(|| bad(path, "zip has no data.pkl: not a torch.save file"))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut read_entry = |name: &str| -> Result<Vec<u8>> {
        let mut f = zip.by_name(name).map_err(|e| bad(path, format!("missing {name}: {e}")))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| bad(path, format!("cannot read {name}: {e}")))?;
        Ok(buf)
    };
    let pkl = read_entry(&pkl_name)?;
    let mut pos = 0;
    let root = read_pickle(&pkl, &mut pos).map_err(|e| bad(path, e))?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::new();
    for (name, t) in tensors_of(path, root)? {
        if !storages.contains_key(&t.storage.key) {
            let bytes = read_entry(&format!("{prefix}data/{}", t.storage.key))?;
            storages.insert(t.storage.key.clone(), bytes);
        }
        let tensor = build_tensor(path, &name, &t, &storages[&t.storage.key])?;
        out.push((name, tensor));
    }
    Ok(out)
}

fn read_legacy(path: &Path, data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    // magic number, protocol version, sys info, the object, the storage keys, then the storages.
    let mut pos = 0;
    let mut next =
        |what: &str| read_pickle(data, &mut pos).map_err(|e| bad(path, format!("legacy format, {what}: {e}")));
    next("magic number")?;
    next("protocol version")?;
    next("system info")?;
    let root = next("state dict")?;
    let keys = match next("storage keys")? {
        Value::List(k) => k,
        _ => return Err(bad(path, "legacy format: storage keys are not a list")),
    };
    let tensors = tensors_of(path, root)?;
    let elem_of: HashMap<&str, usize> = tensors
        .iter()
        .filter_map(|(_, t)| kind_of(&t.storage.dtype).map(|(_, e)| (t.storage.key.as_str(), e)))
        .collect();
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else { return Err(bad(path, "legacy format: a storage key is not a string")) };
        let header =
            data.get(pos..pos + 8).ok_or_else(|| bad(path, format!("storage {key} is missing (file truncated)")))?;
        let mut n = [0u8; 8];
        n.copy_from_slice(header);
        let numel = u64::from_le_bytes(n) as usize;
        let elem = elem_of.get(key.as_str()).copied().unwrap_or(4);
        let start = pos + 8;
        let end = numel.checked_mul(elem).and_then(|b| start.checked_add(b)).unwrap_or(usize::MAX);
        let bytes = data.get(start..end).ok_or_else(|| bad(path, format!("storage {key} is truncated")))?;
        storages.insert(key, bytes);
        pos = end;
    }
    tensors
        .into_iter()
        .map(|(name, t)| {
            let bytes = storages
                .get(&t.storage.key)
                .ok_or_else(|| bad(path, format!("{name}: storage {} missing", t.storage.key)))?;
            Ok((name.clone(), build_tensor(path, &name, &t, bytes)?))
        })
        .collect()
}

/// Copies `tensors` into the variables of `vs` by name. Every variable must be
/// found with the right shape; extra tensors are ignored only if `skip_prefix`
/// names them (e.g. a replaced classifier head) or they are batch-norm counters.
pub fn load_into(
    vs: &tch::nn::VarStore,
    tensors: Vec<(String, Tensor)>,
    path: &Path,
    skip_prefixes: &[&str],
) -> Result<()> {
    let mut by_name: HashMap<String, Tensor> = tensors.into_iter().collect();
    let mut missing = Vec::new();
    // Sorted, so that the first problem reported is the same on every run.
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vars {
            if skip_prefixes.iter().any(|p| name.starts_with(p)) {
                by_name.remove(&name);
                continue;
            }
            match by_name.remove(&name) {
                None => missing.push(name),
                Some(src) => {
                    if src.size() != var.size() {
                        return Err(bad(
                            path,
                            format!(
                                "{name} has shape {:?} in the file but {:?} in the network: wrong architecture?",
                                src.size(),
                                var.size()
                            ),
                        ));
                    }
                    var.f_copy_(&src.f_to_kind(var.kind())?)?;
                }
            }
        }
        Ok(())
    })?;
    if !missing.is_empty() {
        missing.sort();
        let shown: Vec<_> = missing.iter().take(5).cloned().collect();
        return Err(bad(
            path,
            format!("{} weights missing from the file, e.g. {}: wrong architecture?", missing.len(), shown.join(", ")),
        ));
    }
    by_name.retain(|k, _| !k.ends_with("num_batches_tracked") && !skip_prefixes.iter().any(|p| k.starts_with(p)));
    if !by_name.is_empty() {
        let mut extra: Vec<_> = by_name.into_keys().collect();
        extra.sort();
        tracing::warn!(file = %path.display(), "{} tensors in the file are not used, e.g. {}", extra.len(), extra[0]);
    }
    Ok(())
}
