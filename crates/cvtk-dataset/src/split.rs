//! Train/test splits, stratified by label like scikit-learn's `train_test_split`.
//! Counterpart of the original package's `Splitter`.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{ClassificationDataset, Error, Result};

/// Which part of a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitPart {
    /// The training part.
    Train,
    /// The test part.
    Test,
}

impl std::str::FromStr for SplitPart {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(SplitPart::Train),
            "test" => Ok(SplitPart::Test),
            other => Err(Error::InvalidConfig {
                field: "split",
                reason: format!("'{other}' is not a split part; use train or test"),
            }),
        }
    }
}

impl SplitPart {
    /// `train` or `test`, as parsed.
    pub fn name(self) -> &'static str {
        match self {
            SplitPart::Train => "train",
            SplitPart::Test => "test",
        }
    }
}

impl std::fmt::Display for SplitPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A train/test split: image ids of each part, and how they were chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Fraction of the images asked for in the training part.
    pub train_size: f64,
    /// Whether the split kept label proportions.
    pub stratify: bool,
    /// The seed of the shuffle.
    pub seed: u64,
    /// Ids of the training images.
    pub train: Vec<u64>,
    /// Ids of the test images.
    pub test: Vec<u64>,
}

impl Split {
    /// The ids of one part.
    pub fn ids(&self, part: SplitPart) -> &[u64] {
        match part {
            SplitPart::Train => &self.train,
            SplitPart::Test => &self.test,
        }
    }
}

/// Splits `n` into per-class counts proportional to `counts`, like
/// scikit-learn's `_approximate_mode`: floors first, then the remainder to the
/// classes with the largest fractional parts (ties go to the lower index).
fn approximate_mode(counts: &[usize], n: usize) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return vec![0; counts.len()];
    }
    let exact: Vec<f64> = counts.iter().map(|&c| c as f64 * n as f64 / total as f64).collect();
    let mut alloc: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    let mut left = n.saturating_sub(alloc.iter().sum());
    for &i in order.iter().cycle().take(counts.len() * 2) {
        if left == 0 {
            break;
        }
        if alloc[i] < counts[i] {
            alloc[i] += 1;
            left -= 1;
        }
    }
    alloc
}

/// Moves training slots between classes so that every class with at least two
/// images has at least one image in each part, keeping the total.
fn ensure_both_parts(counts: &[usize], train: &mut [usize]) {
    for _ in 0..counts.len() * 2 {
        let need_train = (0..counts.len()).find(|&i| counts[i] >= 2 && train[i] == 0);
        let need_test = (0..counts.len()).find(|&i| counts[i] >= 2 && train[i] == counts[i]);
        match (need_train, need_test) {
            (None, None) => return,
            (Some(i), _) => {
                // Take a training slot from the class with the most to spare.
                let donor =
                    (0..counts.len()).filter(|&j| j != i && train[j] >= 2).max_by_key(|&j| (train[j], usize::MAX - j));
                match donor {
                    Some(j) => {
                        train[j] -= 1;
                        train[i] += 1;
                    }
                    None => return,
                }
            }
            (None, Some(i)) => {
                let taker = (0..counts.len())
                    .filter(|&j| j != i && counts[j] - train[j] >= 2)
                    .max_by_key(|&j| (counts[j] - train[j], usize::MAX - j));
                match taker {
                    Some(j) => {
                        train[j] += 1;
                        train[i] -= 1;
                    }
                    None => return,
                }
            }
        }
    }
}

impl ClassificationDataset {
    /// Splits the dataset into train and test parts, like scikit-learn's
    /// `train_test_split(train_size=train_size, stratify=labels if stratify,
    /// random_state=seed)`: `floor(train_size * n)` images go to training and the
    /// rest to test; with `stratify`, each label is split in proportion, and every
    /// label with at least 2 images appears in both parts. The same seed gives the
    /// same split. 63 images at `train_size = 0.66` give 41 train and 22 test.
    pub fn split(&self, train_size: f64, stratify: bool, seed: u64) -> Result<Split> {
        if !(train_size > 0.0 && train_size < 1.0) {
            return Err(Error::InvalidConfig {
                field: "train_size",
                reason: format!("{train_size} is not between 0 and 1 (exclusive), e.g. 0.66"),
            });
        }
        let n = self.images.len();
        let n_train = (train_size * n as f64).floor() as usize;
        if n_train == 0 || n_train == n {
            return Err(Error::Split(format!(
                "train_size {train_size} of {n} images leaves one part empty; use more images or another train_size"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut train, mut test) = (Vec::with_capacity(n_train), Vec::with_capacity(n - n_train));
        if stratify {
            let mut by_label: Vec<Vec<u64>> = vec![Vec::new(); self.labels.len()];
            for img in &self.images {
                by_label[img.label()].push(img.id);
            }
            let counts: Vec<usize> = by_label.iter().map(Vec::len).collect();
            // Every label of 2+ images needs a place in each part: that many
            // images on each side at least (scikit-learn refuses the same).
            let need = counts.iter().filter(|&&c| c >= 2).count();
            if n_train < need || n - n_train < need {
                let (side, has) = if n_train < need { ("training", n_train) } else { ("test", n - n_train) };
                return Err(Error::Split(format!(
                    "train_size {train_size} of {n} images leaves {has} {side} images for {need} labels; a stratified \
                     split puts each label in both parts: use a train_size from {:.3} to {:.3}",
                    // Rounded inwards, so that both ends work.
                    (need as f64 / n as f64 * 1000.0 - 1e-9).ceil() / 1000.0,
                    ((1.0 - need as f64 / n as f64) * 1000.0 + 1e-9).floor() / 1000.0
                )));
            }
            let mut alloc = approximate_mode(&counts, n_train);
            ensure_both_parts(&counts, &mut alloc);
            if let Some(i) = (0..counts.len()).find(|&i| counts[i] >= 2 && (alloc[i] == 0 || alloc[i] == counts[i])) {
                return Err(Error::Split(format!(
                    "cannot put label '{}' ({} images) in both parts at train_size {train_size}; use a train_size \
                     nearer 0.5",
                    self.labels[i].name, counts[i]
                )));
            }
            for (label, (ids, k)) in by_label.iter_mut().zip(alloc).enumerate() {
                if ids.len() == 1 {
                    tracing::warn!(label = %self.labels[label].name, "label has a single image; it cannot be in both parts");
                }
                ids.shuffle(&mut rng);
                train.extend_from_slice(&ids[..k]);
                test.extend_from_slice(&ids[k..]);
            }
            // Interleave labels within each part, as a shuffled split would.
            train.shuffle(&mut rng);
            test.shuffle(&mut rng);
        } else {
            let mut ids: Vec<u64> = self.images.iter().map(|i| i.id).collect();
            ids.shuffle(&mut rng);
            test = ids.split_off(n_train);
            train = ids;
        }
        Ok(Split { train_size, stratify, seed, train, test })
    }

    /// [`split`](Self::split), then each of `sets` (ids of images that must
    /// not be on both sides, such as the duplicate sets of an audit) moved
    /// whole to the side that holds most of it (train on a tie); for each
    /// image moved, an image of the same label in no set goes the other way,
    /// so each side keeps its size and label counts wherever such an image
    /// exists. Returns the split and how many images were moved.
    pub fn split_keeping_together(
        &self,
        train_size: f64,
        stratify: bool,
        seed: u64,
        sets: &[Vec<u64>],
    ) -> Result<(Split, usize)> {
        use std::collections::{HashMap, HashSet};
        let mut split = self.split(train_size, stratify, seed)?;
        let mut side: HashMap<u64, SplitPart> = split.train.iter().map(|&id| (id, SplitPart::Train)).collect();
        side.extend(split.test.iter().map(|&id| (id, SplitPart::Test)));
        let in_sets: HashSet<u64> = sets.iter().flatten().copied().collect();
        let label: HashMap<u64, usize> = self.images.iter().map(|i| (i.id, i.label())).collect();
        // Images in no set, per (side, label), in the split's order: the swaps.
        let mut free: HashMap<(SplitPart, usize), Vec<u64>> = HashMap::new();
        for id in split.train.iter().chain(&split.test) {
            if !in_sets.contains(id) {
                free.entry((side[id], label[id])).or_default().push(*id);
            }
        }
        let mut moved = 0;
        for set in sets {
            let members: Vec<u64> = set.iter().copied().filter(|id| side.contains_key(id)).collect();
            let train = members.iter().filter(|id| side[*id] == SplitPart::Train).count();
            let to = if 2 * train >= members.len() { SplitPart::Train } else { SplitPart::Test };
            let from = if to == SplitPart::Train { SplitPart::Test } else { SplitPart::Train };
            let away: Vec<u64> = members.into_iter().filter(|id| side[id] != to).collect();
            for id in away {
                side.insert(id, to);
                moved += 1;
                if let Some(swap) = free.get_mut(&(to, label[&id])).and_then(Vec::pop) {
                    side.insert(swap, from);
                }
            }
        }
        let order: Vec<u64> = split.train.iter().chain(&split.test).copied().collect();
        split.train = order.iter().copied().filter(|id| side[id] == SplitPart::Train).collect();
        split.test = order.iter().copied().filter(|id| side[id] == SplitPart::Test).collect();
        Ok((split, moved))
    }

    /// Attaches `split` to the dataset, so manifests carry it. Ids not in the
    /// dataset (excluded images count as in it) are an error.
    pub fn set_split(&mut self, split: Split) -> Result<()> {
        let known: std::collections::HashSet<u64> = self.images.iter().chain(&self.excluded).map(|i| i.id).collect();
        let mut seen = std::collections::HashSet::new();
        for id in split.train.iter().chain(&split.test) {
            if !known.contains(id) {
                return Err(Error::Split(format!("image id {id} of the split is not in dataset '{}'", self.name)));
            }
            if !seen.insert(*id) {
                return Err(Error::Split(format!("image id {id} is in the split twice")));
            }
        }
        self.split = Some(split);
        Ok(())
    }

    /// The split attached to this dataset, if any.
    pub fn split_info(&self) -> Option<&Split> {
        self.split.as_ref()
    }

    /// One part of the attached split, as a dataset (excluded images left out).
    pub fn part(&self, part: SplitPart) -> Result<ClassificationDataset> {
        let split = self.split.as_ref().ok_or_else(|| Error::NoSplit { name: self.name.clone() })?;
        let excluded: std::collections::HashSet<u64> = self.excluded.iter().map(|i| i.id).collect();
        let ids: Vec<u64> = split.ids(part).iter().copied().filter(|id| !excluded.contains(id)).collect();
        self.subset(&ids)
    }

    /// The training part of the attached split.
    pub fn train(&self) -> Result<ClassificationDataset> {
        self.part(SplitPart::Train)
    }

    /// The test part of the attached split.
    pub fn test(&self) -> Result<ClassificationDataset> {
        self.part(SplitPart::Test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approximate_mode_matches_proportions_and_total() {
        assert_eq!(approximate_mode(&[21, 21, 21], 41), vec![14, 14, 13]);
        assert_eq!(approximate_mode(&[10, 0, 5], 6), vec![4, 0, 2]);
        assert_eq!(approximate_mode(&[3, 3], 6), vec![3, 3]);
    }

    #[test]
    fn sets_stay_on_one_side_and_the_counts_are_kept() {
        use crate::{ImageInfo, Label};
        let labels = vec![Label { name: "a".into() }, Label { name: "b".into() }];
        let images = (0..40u64)
            .map(|id| ImageInfo {
                id,
                name: format!("{id}.png"),
                path: format!("{id}.png").into(),
                labels: vec![(id % 2) as usize],
            })
            .collect();
        let ds = ClassificationDataset::from_parts("d", labels, images).unwrap();
        let plain = ds.split(0.75, true, 3).unwrap();
        // Sets that straddle the plain split: a train image with a test image of each label.
        let sets: Vec<Vec<u64>> = (0..2)
            .map(|l| {
                let of = |ids: &[u64]| ids.iter().copied().find(|id| id % 2 == l).unwrap();
                vec![of(&plain.train), of(&plain.test)]
            })
            .collect();
        let (kept, moved) = ds.split_keeping_together(0.75, true, 3, &sets).unwrap();
        assert_eq!(moved, 2);
        for set in &sets {
            let train = set.iter().filter(|id| kept.train.contains(id)).count();
            assert!(train == 0 || train == set.len(), "{set:?} is split: {kept:?}");
        }
        assert_eq!((kept.train.len(), kept.test.len()), (plain.train.len(), plain.test.len()));
        let count = |ids: &[u64], l: u64| ids.iter().filter(|id| *id % 2 == l).count();
        for l in 0..2 {
            assert_eq!(count(&kept.train, l), count(&plain.train, l));
        }
    }

    #[test]
    fn small_labels_get_one_image_in_each_part() {
        // Proportional rounding gives [35, 2, 2]: the small labels would have no test image.
        let counts = [40, 2, 2];
        let mut train = approximate_mode(&counts, 39);
        assert_eq!(train, vec![35, 2, 2]);
        ensure_both_parts(&counts, &mut train);
        assert_eq!(train, vec![37, 1, 1]);
        for (c, t) in counts.iter().zip(&train) {
            assert!(*t >= 1 && t < c, "{train:?}");
        }
    }
}
