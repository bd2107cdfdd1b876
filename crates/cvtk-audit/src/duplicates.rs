//! Exact and near duplicates: sets of images that are the same picture.
//!
//! - **Exact**: the same pixel values (equal [`PixelFacts::digest`]s),
//!   whatever the file's format, name or metadata.
//! - **Near**: the same photo up to resizing, re-encoding or a colour
//!   shift. Two images are near duplicates when both their network features
//!   point the same way (cosine similarity at least [`FEATURE_SIMILARITY`])
//!   and their gray 32 x 32 thumbnails correlate almost perfectly (at least
//!   [`LAYOUT_SIMILARITY`]): the features alone call any two pictures of a
//!   class alike (two handwritten 1s), the layout alone any two pictures of
//!   the same composition. On MNIST digits, a copy resized to 40 pixels and
//!   re-encoded as JPEG correlates with its original at 0.989 or more, while
//!   two different digits rarely pass 0.97 (a few pairs of 1s in tens of
//!   thousands); a copy cropped by a pixel each side (a 7% zoom of a
//!   28-pixel digit) correlates at 0.88 to 0.93 and is not found
//!   (docs/datasets.md has the measurements).
//!
//! Sets are the connected groups of such pairs. Where the dataset has a
//! split, a set with images on both sides is a **leak**: the test part
//! scores images the model was trained on.

use crate::pixels::{layout_similarity, PixelFacts};

/// Near duplicates' least cosine similarity of features.
pub const FEATURE_SIMILARITY: f32 = 0.85;
/// Near duplicates' least correlation of gray thumbnails.
pub const LAYOUT_SIMILARITY: f32 = 0.97;

/// Whether images `i` and `j`, whose features have cosine `similarity`, are
/// near duplicates (not exact copies: those are found by their digests).
pub fn near_pair(facts: &[PixelFacts], i: usize, j: usize, similarity: f32) -> bool {
    similarity >= FEATURE_SIMILARITY
        && facts[i].digest != facts[j].digest
        && layout_similarity(&facts[i], &facts[j]) >= LAYOUT_SIMILARITY
}

/// A set of images that are the same picture, by index.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexSet {
    /// The images, in dataset order.
    pub members: Vec<usize>,
    /// All the same pixels.
    pub exact: bool,
    /// The least feature similarity of the pairs that joined the set (1 for exact copies).
    pub similarity: f32,
}

/// The duplicate sets among images with `facts`, given the pairs of images
/// whose features are at least [`FEATURE_SIMILARITY`] alike (`(i, j,
/// similarity)`, as [`crate::neighbours::search`] gives them). Sets in
/// order of their first image.
pub fn duplicate_sets(facts: &[PixelFacts], feature_pairs: &[(usize, usize, f32)]) -> Vec<IndexSet> {
    let n = facts.len();
    let mut sets = DisjointSets::new(n);
    let mut least = vec![1.0f32; n];
    // Exact copies: equal digests, whatever their features.
    let mut by_digest: std::collections::HashMap<[u8; 32], usize> = std::collections::HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        if let Some(&first) = by_digest.get(&f.digest) {
            sets.join(first, i);
        } else {
            by_digest.insert(f.digest, i);
        }
    }
    let mut near = Vec::new();
    for &(i, j, similarity) in feature_pairs {
        if near_pair(facts, i, j, similarity) {
            sets.join(i, j);
            near.push((i, j, similarity));
        }
    }
    for (i, _, similarity) in near {
        let root = sets.find(i);
        least[root] = least[root].min(similarity);
    }
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for i in 0..n {
        members.entry(sets.find(i)).or_default().push(i);
    }
    let mut out: Vec<IndexSet> = members
        .into_iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|(root, members)| {
            let exact = members.iter().all(|&i| facts[i].digest == facts[members[0]].digest);
            IndexSet { exact, similarity: if exact { 1.0 } else { least[root] }, members }
        })
        .collect();
    out.sort_by_key(|s| s.members[0]);
    out
}

/// Union-find with path halving.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        DisjointSets { parent: (0..n).collect() }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The smaller index is the root, so roots are stable.
        if ra != rb {
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.parent[hi] = lo;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixels::facts_of;

    fn picture(seed: u8, shift: u8) -> PixelFacts {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(seed));
        let data = (0..64 * 64).map(|_| rng.random_range(0..128u8) + shift).collect();
        facts_of(&image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(64, 64, data).unwrap()))
    }

    #[test]
    fn exact_copies_and_confirmed_near_pairs_make_sets() {
        let facts = vec![picture(1, 0), picture(2, 0), picture(1, 0), picture(2, 3), picture(3, 0)];
        // 1 ~ 3 by features and by layout (a brighter copy); 0 ~ 4 by features only.
        let pairs = [(1, 3, 0.97), (0, 4, 0.99)];
        let sets = duplicate_sets(&facts, &pairs);
        assert_eq!(sets.len(), 2, "{sets:?}");
        assert_eq!((sets[0].members.clone(), sets[0].exact), (vec![0, 2], true));
        assert_eq!((sets[1].members.clone(), sets[1].exact, sets[1].similarity), (vec![1, 3], false, 0.97));
    }
}
