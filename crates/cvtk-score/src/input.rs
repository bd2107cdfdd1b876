//! What is scored: [`ScoreInput`] (a folder, a manifest or a list file),
//! read as a stream of [`Item`]s in a fixed order, and [`Shard`], the
//! deterministic part of it one process scores.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use cvtk_dataset::{ClassificationDataset, SplitPart};

use crate::{Error, Result};

/// Where the images to score come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScoreInput {
    /// Every image under a folder (recursively, by extension), in path order.
    Folder(PathBuf),
    /// A manifest's images (excluded ones not), in manifest order; only one
    /// part of its split when `part` says so.
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The part of its split, or every image.
        part: Option<SplitPart>,
    },
    /// A text file with one image path or http(s) URL per line (blank lines
    /// and lines starting with `#` skipped); relative paths are relative to
    /// the file's folder.
    List(PathBuf),
    /// Image files and folders (every image under each, recursively, in
    /// path order), in the order given: what `cvtk predict` takes. A path
    /// that is neither is still an item, whose row says why it could not be
    /// read.
    Paths(Vec<PathBuf>),
}

/// One image to score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Its position in the whole input (all shards together), from 0: rows
    /// sort back into one run's order by it.
    pub index: u64,
    /// Its id in the manifest, for manifest inputs.
    pub id: Option<u64>,
    /// A path (as given, or joined to the input's folder) or a URL.
    pub source: String,
    /// What the shard is chosen by: the path relative to the input (the
    /// line, for lists), so that shards stay the same wherever the input is
    /// mounted and when other files are added.
    pub(crate) key: String,
}

impl Item {
    /// Whether the item is an http(s) URL.
    pub fn is_url(&self) -> bool {
        self.source.starts_with("http://") || self.source.starts_with("https://")
    }
}

/// Shard `index` of `count` (`K/N` on the command line, `0 <= K < N`): the
/// items whose key's CRC-32 is `K` modulo `N`. The shards of one input are
/// disjoint and together hold every item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Shard {
    /// Whether `item` belongs to this shard.
    pub fn holds(&self, item: &Item) -> bool {
        crc32fast::hash(item.key.as_bytes()) % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "shard '{s}' is not K/N with 0 <= K < N (e.g. 0/4; Kubernetes' JOB_COMPLETION_INDEX is K)"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl ScoreInput {
    /// What `path` is, as `cvtk score INPUT` tells: a folder, a manifest (a
    /// `.json` file; `part` picks a part of its split), or else a list file.
    /// `part` for anything but a manifest is an error that says so.
    pub fn from_path(path: &Path, part: Option<SplitPart>) -> Result<ScoreInput> {
        let not_a_manifest =
            |what: &str| Err(Error::Invalid(format!("--part is for a manifest; {} is {what}", path.display())));
        if path.is_dir() {
            return if part.is_some() { not_a_manifest("a folder") } else { Ok(ScoreInput::Folder(path.into())) };
        }
        if !path.is_file() {
            return Err(Error::Invalid(format!("{} is neither a folder, a manifest nor a list file", path.display())));
        }
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            return Ok(ScoreInput::Manifest { path: path.into(), part });
        }
        if part.is_some() {
            return not_a_manifest("a list file");
        }
        Ok(ScoreInput::List(path.into()))
    }

    /// The items, in the input's fixed order, only `shard`'s when given. A
    /// folder is walked and a list read as the stream is consumed: memory
    /// does not grow with the input (a manifest is read whole, as always).
    pub fn items(&self, shard: Option<Shard>) -> Result<Box<dyn Iterator<Item = Result<Item>>>> {
        let all: Box<dyn Iterator<Item = Result<Item>>> = match self {
            ScoreInput::Folder(root) => {
                if !root.is_dir() {
                    return Err(Error::Invalid(format!("{} is not a folder of images", root.display())));
                }
                Box::new(
                    walk(root)
                        .enumerate()
                        .map(|(i, r)| r.map(|(source, key)| Item { index: i as u64, id: None, source, key })),
                )
            }
            ScoreInput::Paths(paths) => {
                let paths = paths.clone();
                let files = paths.into_iter().flat_map(|p| -> Box<dyn Iterator<Item = Result<(String, String)>>> {
                    if p.is_dir() {
                        Box::new(walk(&p).map(|r| r.map(|(source, _)| (source.clone(), source))))
                    } else {
                        let source = p.to_string_lossy().into_owned();
                        Box::new(std::iter::once(Ok((source.clone(), source))))
                    }
                });
                Box::new(
                    files
                        .enumerate()
                        .map(|(i, r)| r.map(|(source, key)| Item { index: i as u64, id: None, source, key })),
                )
            }
            ScoreInput::Manifest { path, part } => {
                let ds = ClassificationDataset::from_manifest(path)?;
                let ids: Option<std::collections::HashSet<u64>> = match part {
                    None => None,
                    Some(p) => {
                        let split = ds.split_info().ok_or_else(|| {
                            Error::Invalid(format!(
                                "{} has no split; run `cvtk dataset split` or score all of it",
                                path.display()
                            ))
                        })?;
                        Some(match p {
                            SplitPart::Train => split.train.iter().copied().collect(),
                            SplitPart::Test => split.test.iter().copied().collect(),
                        })
                    }
                };
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let items: Vec<Item> = ds
                    .images()
                    .iter()
                    .filter(|img| ids.as_ref().is_none_or(|ids| ids.contains(&img.id)))
                    .enumerate()
                    .map(|(i, img)| Item {
                        index: i as u64,
                        id: Some(img.id),
                        source: img.path.to_string_lossy().into_owned(),
                        key: img.path.strip_prefix(&base).unwrap_or(&img.path).to_string_lossy().into_owned(),
                    })
                    .collect();
                Box::new(items.into_iter().map(Ok))
            }
            ScoreInput::List(file) => {
                let f = std::fs::File::open(file).map_err(|e| Error::io("cannot open the list", file, e))?;
                let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
                let file = file.clone();
                let lines = std::io::BufReader::new(f).lines().filter_map(move |l| match l {
                    Err(e) => Some(Err(Error::io("cannot read the list", &file, e))),
                    Ok(l) => {
                        let t = l.trim();
                        if t.is_empty() || t.starts_with('#') {
                            None
                        } else {
                            let is_url = t.starts_with("http://") || t.starts_with("https://");
                            let source = if is_url || Path::new(t).is_absolute() {
                                t.to_string()
                            } else {
                                base.join(t).to_string_lossy().into_owned()
                            };
                            Some(Ok((source, t.to_string())))
                        }
                    }
                });
                Box::new(
                    lines
                        .enumerate()
                        .map(|(i, r)| r.map(|(source, key)| Item { index: i as u64, id: None, source, key })),
                )
            }
        };
        Ok(match shard {
            None => all,
            Some(s) => Box::new(all.filter(move |r| r.as_ref().map_or(true, |item| s.holds(item)))),
        })
    }
}

/// The images under `root` ([`cvtk_dataset::walk::image_files`]'s policy:
/// links followed, path order, hidden files and folders skipped, by
/// extension): `(path, path relative to root)`. Files of other types are
/// left out as the dataset scanner leaves them out; an entry that cannot be
/// read (or a link loop, or a name that is not UTF-8) is logged and left out
/// too, so one bad entry does not stop a long run.
fn walk(root: &Path) -> impl Iterator<Item = Result<(String, String)>> {
    let root = root.to_path_buf();
    cvtk_dataset::walk::image_files_logged(&root.clone()).map(move |path| {
        let key = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().into_owned();
        Ok((path.to_string_lossy().into_owned(), key))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition_the_items() {
        assert_eq!("2/5".parse::<Shard>().unwrap(), Shard { index: 2, count: 5 });
        for bad in ["5/5", "1", "a/3", "0/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let items: Vec<Item> = (0..200)
            .map(|i| Item { index: i, id: None, source: format!("/x/{i}.png"), key: format!("{i}.png") })
            .collect();
        let mut counts = [0usize; 3];
        for item in &items {
            let holders: Vec<u32> = (0..3).filter(|k| Shard { index: *k, count: 3 }.holds(item)).collect();
            assert_eq!(holders.len(), 1, "each item in exactly one shard");
            counts[holders[0] as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 40), "{counts:?}");
    }
}
