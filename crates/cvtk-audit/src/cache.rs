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
//!
//! A dataset too large for one machine is featurized in shards
//! ([`FeatureCache::featurize_shard`], `cvtk audit --shard K/N`): each shard
//! writes a file of its own beside the featurizer's,
//! `FINGERPRINT.shard-K-of-N.features`, so shards never write the same file;
//! every file of the featurizer in the folder is read, so an audit with the
//! shards' files gathered in its cache folder featurizes nothing.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use cvtk_core::{FileLock, IoError, StorageContext};
use cvtk_dataset::ClassificationDataset;
use cvtk_model::Featurizer;
use ndarray::Array2;
use sha2::Digest as _;

use crate::{Error, Result};

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

/// One of `count` parts of a dataset, featurized on its own (on another
/// machine, say): the images whose manifest id hashes to `index`. Ids, not
/// paths, so that machines that mount the dataset in other places agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Shard {
    /// Whether the image with manifest id `id` belongs to this shard.
    pub fn holds(&self, id: u64) -> bool {
        // A multiplicative hash (Fibonacci hashing), so that consecutive ids spread evenly.
        (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % u64::from(self.count.max(1)) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("shard '{s}' is not K/N with 0 <= K < N (e.g. 0/4)"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
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
    /// featurizer and the image's content match (in its file or in a shard's),
    /// featurized (and added to the cache) otherwise.
    pub fn features(
        &self,
        featurizer: &Featurizer,
        dataset: &ClassificationDataset,
        batch_size: usize,
    ) -> Result<(Array2<f32>, CacheUse)> {
        let dim = featurizer.dim();
        let fingerprint = featurizer.fingerprint()?;
        let file = self.dir.join(format!("{fingerprint}.features"));
        let digests: Vec<Digest> =
            dataset.images().iter().map(|i| digest(&i.path)).collect::<std::result::Result<_, IoError>>()?;
        let mut rows = {
            let _lock = FileLock::acquire(&file)?;
            self.read_all(&fingerprint, dim)
        };
        let computed = self.fill(featurizer, dataset, &digests, &mut rows, &file, batch_size)?;
        let mut out = Array2::<f32>::zeros((dataset.len(), dim));
        for (i, d) in digests.iter().enumerate() {
            if let Some(row) = rows.get(d) {
                out.row_mut(i).assign(&ndarray::ArrayView1::from(row.as_slice()));
            }
        }
        Ok((out, CacheUse { reused: dataset.len() - computed.min(dataset.len()), computed }))
    }

    /// Featurizes the images of `shard` that the cache lacks into the shard's
    /// own file, and returns how many were reused and computed, and the file.
    /// Once every shard is done and their files are in one cache folder (a
    /// shared one, or copied together), [`features`](Self::features) reads
    /// them all and featurizes nothing.
    pub fn featurize_shard(
        &self,
        featurizer: &Featurizer,
        dataset: &ClassificationDataset,
        batch_size: usize,
        shard: Shard,
    ) -> Result<(CacheUse, PathBuf)> {
        let ids: Vec<u64> = dataset.images().iter().map(|i| i.id).filter(|&id| shard.holds(id)).collect();
        let part = dataset.subset(&ids)?;
        let fingerprint = featurizer.fingerprint()?;
        let file = self.dir.join(format!("{fingerprint}.shard-{}-of-{}.features", shard.index, shard.count));
        let digests: Vec<Digest> =
            part.images().iter().map(|i| digest(&i.path)).collect::<std::result::Result<_, IoError>>()?;
        let mut rows = {
            let _lock = FileLock::acquire(&file)?;
            self.read_all(&fingerprint, featurizer.dim())
        };
        let computed = self.fill(featurizer, &part, &digests, &mut rows, &file, batch_size)?;
        // Rows the cache had elsewhere (its own file, another run's) go into
        // the shard's file too, so that the file alone carries the shard.
        let _lock = FileLock::acquire(&file)?;
        let mut own = read(&file, featurizer.dim());
        let before = own.len();
        for d in &digests {
            if let Some(row) = rows.get(d) {
                own.entry(*d).or_insert_with(|| row.clone());
            }
        }
        if own.len() != before {
            cvtk_core::write_atomic(&file, &encode(&own, featurizer.dim()))?;
        }
        Ok((CacheUse { reused: part.len() - computed.min(part.len()), computed }, file))
    }

    /// Featurizes the images of `dataset` (with file digests `digests`)
    /// missing from `rows`, adds them to `rows` and to `file`, and returns how
    /// many. Read under the lock, featurized without it (minutes, for a large
    /// dataset: another audit may use the cache meanwhile), then merged with
    /// what the file holds now and written, under the lock again.
    fn fill(
        &self,
        featurizer: &Featurizer,
        dataset: &ClassificationDataset,
        digests: &[Digest],
        rows: &mut HashMap<Digest, Vec<f32>>,
        file: &Path,
        batch_size: usize,
    ) -> Result<usize> {
        let missing: Vec<u64> =
            dataset.images().iter().zip(digests).filter(|(_, d)| !rows.contains_key(*d)).map(|(i, _)| i.id).collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let subset = dataset.subset(&missing)?;
        let features = featurizer.features(&subset, batch_size)?;
        let by_id: HashMap<u64, Digest> = dataset.images().iter().map(|i| i.id).zip(digests.iter().copied()).collect();
        let mut new_rows = HashMap::new();
        for (image, row) in subset.images().iter().zip(features.outer_iter()) {
            if let Some(d) = by_id.get(&image.id) {
                new_rows.insert(*d, row.to_vec());
            }
        }
        let computed = new_rows.len();
        let _lock = FileLock::acquire(file)?;
        let mut merged = read(file, featurizer.dim());
        merged.extend(new_rows.iter().map(|(d, r)| (*d, r.clone())));
        cvtk_core::write_atomic(file, &encode(&merged, featurizer.dim()))?;
        rows.extend(new_rows);
        Ok(computed)
    }

    /// The rows of every file of the featurizer `fingerprint` in the folder:
    /// its own and its shards'. Warns, saying what to do, when a shard of a
    /// set is missing, and when the folder holds only other featurizers'
    /// shards (another network, input size, engine or device): their images
    /// would be featurized again here.
    fn read_all(&self, fingerprint: &str, dim: usize) -> HashMap<Digest, Vec<f32>> {
        let mut rows = read(&self.dir.join(format!("{fingerprint}.features")), dim);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return rows;
        };
        let prefix = format!("{fingerprint}.shard-");
        let (mut ours, mut others) = (Vec::new(), 0usize);
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            match shard_of(name) {
                Some(shard) if name.starts_with(&prefix) => ours.push((shard, path)),
                Some(_) => others += 1,
                None => {}
            }
        }
        ours.sort_by_key(|(shard, _)| (shard.count, shard.index));
        let mut counts: Vec<u32> = ours.iter().map(|(s, _)| s.count).collect();
        counts.dedup();
        for count in counts {
            let missing: Vec<String> = (0..count)
                .filter(|k| !ours.iter().any(|(s, _)| s.count == count && s.index == *k))
                .map(|k| format!("{k}/{count}"))
                .collect();
            if !missing.is_empty() {
                tracing::warn!(
                    "feature cache {}: shard {} missing; its images are featurized here (run it with --shard, or copy its file in)",
                    self.dir.display(),
                    missing.join(", ")
                );
            }
        }
        if ours.is_empty() && others > 0 {
            tracing::warn!(
                "feature cache {}: {others} shard file(s) of another featurizer, none of this one's; run the shards and the \
                 audit with the same network (--base-model or --model), --image-size, --engine and --device",
                self.dir.display()
            );
        }
        for (_, path) in ours {
            for (d, row) in read(&path, dim) {
                rows.entry(d).or_insert(row);
            }
        }
        rows
    }
}

/// The shard of a shard file's name, `FINGERPRINT.shard-K-of-N.features`.
fn shard_of(name: &str) -> Option<Shard> {
    let rest = name.strip_suffix(".features")?;
    let (_, shard) = rest.rsplit_once(".shard-")?;
    let (k, n) = shard.split_once("-of-")?;
    format!("{k}/{n}").parse().ok()
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

    #[test]
    fn shards_part_the_ids_evenly_and_parse_with_clear_errors() {
        let shards: Vec<Shard> = (0..4).map(|k| format!("{k}/4").parse().unwrap()).collect();
        let mut sizes = [0usize; 4];
        for id in 0..10_000u64 {
            let owners: Vec<usize> = (0..4).filter(|&k| shards[k].holds(id)).collect();
            assert_eq!(owners.len(), 1, "id {id}: {owners:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&s| (2_300..2_700).contains(&s)), "{sizes:?}");
        assert_eq!(shards[2].to_string(), "2/4");
        assert_eq!(shard_of("abc.shard-2-of-4.features"), Some(shards[2]));
        assert_eq!(shard_of("abc.features"), None);
        assert_eq!(shard_of("abc.shard-4-of-4.features"), None);
        for bad in ["4/4", "1", "a/2", "0/0"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("is not K/N"), "{bad}: {e}");
        }
    }
}
