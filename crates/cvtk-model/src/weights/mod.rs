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
    let data = std::fs::read(path).map_err(|e| Error::io("cannot read", path.to_path_buf(), e))?;
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
    if t.storage.numel < 0 || t.offset < 0 {
        return Err(bad(path, format!("{name}: negative storage size or offset: a damaged file")));
    }
    // A view never holds more elements than its storage (torch.save of a
    // state dict writes no expanded views): this bounds what the copy below
    // allocates by the file's size.
    let view_numel = t.size.iter().try_fold(1i64, |n, &d| if d < 0 { None } else { n.checked_mul(d) });
    if view_numel.is_none_or(|n| n > t.storage.numel) || t.stride.iter().any(|&s| s < 0) {
        return Err(bad(
            path,
            format!(
                "{name}: shape {:?} does not fit its storage of {} elements: a damaged file",
                t.size, t.storage.numel
            ),
        ));
    }
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
    // torch.save stores entries uncompressed, so none is larger than the
    // archive: a bigger one is a zip bomb, and reading stops at the limit.
    let limit = data.len() as u64;
    let mut read_entry = |name: &str| -> Result<Vec<u8>> {
        let f = zip.by_name(name).map_err(|e| bad(path, format!("missing {name}: {e}")))?;
        let mut buf = Vec::new();
        f.take(limit + 1).read_to_end(&mut buf).map_err(|e| bad(path, format!("cannot read {name}: {e}")))?;
        if buf.len() as u64 > limit {
            return Err(bad(path, format!("{name} unpacks to more than the whole file: not a torch.save file")));
        }
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::pickle::StorageRef;
    use super::*;

    const ZIP: &[u8] = include_bytes!("../../tests/fixtures/tiny_zip.pth");
    const LEGACY: &[u8] = include_bytes!("../../tests/fixtures/tiny_legacy.pth");

    fn values(tensors: &[(String, Tensor)]) -> Vec<(String, Vec<f32>)> {
        tensors.iter().map(|(n, t)| (n.clone(), Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())).collect()
    }

    #[test]
    fn both_torch_formats_of_the_fixture_read_back() {
        let p = Path::new("fixture");
        let expected = vec![("w".to_string(), vec![0., 1., 2., 3., 4., 5.]), ("b".to_string(), vec![1.5, -2.0])];
        assert_eq!(values(&read_zip(p, ZIP).unwrap()), expected);
        assert_eq!(values(&read_legacy(p, LEGACY).unwrap()), expected);
    }

    #[test]
    fn damaged_tensor_records_are_errors_not_panics() {
        let p = Path::new("f");
        let t = |numel, offset, size: Vec<i64>, stride: Vec<i64>| TensorRef {
            storage: StorageRef { dtype: "FloatStorage".into(), key: "0".into(), numel },
            offset,
            size,
            stride,
        };
        let storage = [0u8; 16];
        for (what, bad_ref) in [
            ("negative storage size", t(-1, 0, vec![1], vec![1])),
            ("negative offset", t(4, -8, vec![1], vec![1])),
            ("negative size", t(4, 0, vec![-3], vec![1])),
            ("an expanded view", t(4, 0, vec![1 << 20, 1 << 20], vec![0, 0])),
            ("a view past its storage", t(4, 3, vec![4], vec![1])),
            ("a truncated storage", t(400, 0, vec![4], vec![1])),
        ] {
            let e = build_tensor(p, "x", &bad_ref, &storage).unwrap_err().to_string();
            assert!(!e.is_empty(), "{what}");
        }
        assert!(build_tensor(p, "x", &t(4, 0, vec![2, 2], vec![2, 1]), &storage).is_ok());
    }

    #[test]
    fn a_zip_entry_that_unpacks_past_the_file_size_is_refused() {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("archive/data.pkl", deflated).unwrap();
        zip.write_all(&vec![b'('; 50 << 20]).unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
        let e = read_zip(Path::new("bomb.pth"), &bytes).unwrap_err().to_string();
        assert!(e.contains("more than the whole file"), "{e}");
    }

    /// `base` with a few bytes overwritten, a range cut out, or cut short.
    fn mutated(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        let n = base.len();
        (prop::collection::vec((0..n, any::<u8>()), 1..8), 0..n, 0..n, 0..4u8).prop_map(move |(edits, a, b, how)| {
            let mut v = base.to_vec();
            for (i, x) in edits {
                v[i] = x;
            }
            let (lo, hi) = (a.min(b), a.max(b));
            match how {
                0 => v.truncate(hi),
                1 => {
                    v.drain(lo..hi);
                }
                _ => {}
            }
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_legacy_reader_never_panics_on_damaged_files(data in mutated(LEGACY)) {
            let _ = read_legacy(Path::new("fuzz.pth"), &data);
        }

        #[test]
        fn the_zip_reader_never_panics_on_damaged_files(data in mutated(ZIP)) {
            let _ = read_zip(Path::new("fuzz.pth"), &data);
        }

        #[test]
        fn the_pickle_reader_never_panics_on_any_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut pos = 0;
            let _ = read_pickle(&data, &mut pos);
        }
    }
}
