//! [`FeatureCache`]: features kept between audits, so a second audit of the
//! same images with the same network featurizes nothing.
//!
//! One file per featurizer, named by its [`fingerprint`](Featurizer::fingerprint)
//! (architecture, input settings, engine, weights' values), holding one row
//! per image content (SHA-256 of the file's bytes). So a changed image, or
//! another network, image size, engine or device, is featurized anew, never
//! served a stale row; a moved or copied image is not. The file is read and
//! written (atomically) under its lock, which is not held while featurizing;
//! an unreadable one is rebuilt.
//!
//! The format (little-endian): `CVTKFEAT1\n`, the dimension (u32), the row
//! count (u64), then per row the 32-byte digest and `dim` f32 values.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use cvtk_core::{FileLock, IoError, StorageContext};
use cvtk_dataset::ClassificationDataset;
use cvtk_model::Featurizer;
use ndarray::Array2;
use sha2::Digest as _;

use crate::Result;

const MAGIC: &[u8] = b"CVTKFEAT1\n";

/// A file's SHA-256.
type Digest = [u8; 32];

/// Where features are kept between audits.
#[derive(Clone, Debug)]
pub struct FeatureCache {
    dir: PathBuf,
}

/// How much of a dataset's features came from the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheUse {
    /// Images whose features were in the cache.
    pub reused: usize,
    /// Images featurized now (and added to the cache).
    pub computed: usize,
}

impl FeatureCache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FeatureCache { dir: dir.into() }
    }

    /// The cache under `storage`'s persistent folder: `~/.cvtk/cache/features`
    /// by default (`$CVTK_HOME/cache/features`).
    pub fn in_storage(storage: &StorageContext) -> Self {
        Self::new(storage.persistent().join("cache").join("features"))
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every image's features, in dataset order: from the cache where the
    /// featurizer and the image's content match, featurized (and added to the
    /// cache) otherwise.
    pub fn features(
        &self,
        featurizer: &Featurizer,
        dataset: &ClassificationDataset,
        batch_size: usize,
    ) -> Result<(Array2<f32>, CacheUse)> {
        let dim = featurizer.dim();
        let file = self.dir.join(format!("{}.features", featurizer.fingerprint()?));
        let digests: Vec<Digest> =
            dataset.images().iter().map(|i| digest(&i.path)).collect::<std::result::Result<_, IoError>>()?;
        // Read under the lock, featurize without it (minutes, for a large
        // dataset: another audit may use the cache meanwhile), then merge
        // with what is there now and write, under the lock again.
        let mut rows = {
            let _lock = FileLock::acquire(&file)?;
            read(&file, dim)
        };
        let missing: Vec<u64> =
            dataset.images().iter().zip(&digests).filter(|(_, d)| !rows.contains_key(*d)).map(|(i, _)| i.id).collect();
        let mut computed = 0;
        if !missing.is_empty() {
            let subset = dataset.subset(&missing)?;
            let features = featurizer.features(&subset, batch_size)?;
            let by_id: HashMap<u64, Digest> =
                dataset.images().iter().map(|i| i.id).zip(digests.iter().copied()).collect();
            let mut new_rows = HashMap::new();
            for (image, row) in subset.images().iter().zip(features.outer_iter()) {
                if let Some(d) = by_id.get(&image.id) {
                    new_rows.insert(*d, row.to_vec());
                    computed += 1;
                }
            }
            let _lock = FileLock::acquire(&file)?;
            let mut merged = read(&file, dim);
            merged.extend(new_rows);
            cvtk_core::write_atomic(&file, &encode(&merged, dim))?;
            rows = merged;
        }
        let mut out = Array2::<f32>::zeros((dataset.len(), dim));
        for (i, d) in digests.iter().enumerate() {
            if let Some(row) = rows.get(d) {
                out.row_mut(i).assign(&ndarray::ArrayView1::from(row.as_slice()));
            }
        }
        Ok((out, CacheUse { reused: dataset.len() - computed.min(dataset.len()), computed }))
    }
}

/// The SHA-256 of the file at `path`.
fn digest(path: &Path) -> std::result::Result<Digest, IoError> {
    let io = |e| IoError::new("cannot read", path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| IoError::new("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// The rows of a cache file; none when there is no file, and none (logged)
/// when it is unreadable or of another dimension: it is rebuilt.
fn read(file: &Path, dim: usize) -> HashMap<Digest, Vec<f32>> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::warn!("feature cache {}: {e}; featurizing anew", file.display());
            return HashMap::new();
        }
    };
    decode(&bytes, dim).unwrap_or_else(|why| {
        tracing::warn!("feature cache {} is not usable ({why}); featurizing anew", file.display());
        HashMap::new()
    })
}

fn decode(bytes: &[u8], dim: usize) -> std::result::Result<HashMap<Digest, Vec<f32>>, String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("not a cvtk feature cache")?;
    let (head, mut rest) = rest.split_at_checked(12).ok_or("truncated header")?;
    let file_dim = u32::from_le_bytes(head[..4].try_into().map_err(|_| "header")?) as usize;
    let count = u64::from_le_bytes(head[4..].try_into().map_err(|_| "header")?) as usize;
    if file_dim != dim {
        return Err(format!("rows of {file_dim} features, this network gives {dim}"));
    }
    let row_bytes = 32 + 4 * dim;
    if rest.len() != count.checked_mul(row_bytes).ok_or("row count")? {
        return Err(format!("{} bytes of rows, {count} rows of {row_bytes} expected", rest.len()));
    }
    let mut rows = HashMap::with_capacity(count);
    while let Some((row, tail)) = rest.split_at_checked(row_bytes) {
        let mut d = [0u8; 32];
        d.copy_from_slice(&row[..32]);
        let values = row[32..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        rows.insert(d, values);
        rest = tail;
    }
    Ok(rows)
}

fn encode(rows: &HashMap<Digest, Vec<f32>>, dim: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 12 + rows.len() * (32 + 4 * dim));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
    // In digest order, so the same rows always make the same file.
    let mut keys: Vec<&Digest> = rows.keys().collect();
    keys.sort();
    for d in keys {
        out.extend_from_slice(d);
        for v in &rows[d] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_round_trip_and_a_damaged_file_is_refused() {
        let mut rows = HashMap::new();
        rows.insert([1u8; 32], vec![0.5f32, -1.0, 3.25]);
        rows.insert([2u8; 32], vec![0.0f32, 1.0, f32::MIN_POSITIVE]);
        let bytes = encode(&rows, 3);
        assert_eq!(decode(&bytes, 3).unwrap(), rows);
        assert!(decode(&bytes, 4).unwrap_err().contains("this network gives 4"));
        assert!(decode(&bytes[..bytes.len() - 1], 3).is_err());
        assert!(decode(b"something else", 3).is_err());
        assert_eq!(encode(&rows, 3), bytes, "the same rows make the same file");
    }
}
