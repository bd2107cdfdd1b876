//! Nearest neighbours in feature space, by cosine distance (`1 - cos`), as
//! scikit-learn's `NearestNeighbors(metric="cosine")` finds them and cleanlab
//! uses them: every image's `k` nearest other images, and, in the same pass,
//! the pairs of images that a test keeps (the near duplicates), so that only
//! those are ever held, not every similar pair.
//!
//! The search is exact: one matrix product per block of rows against all
//! rows, blocks in parallel. Its time grows with the square of the images
//! (docs/benchmarks.md measures where that starts to matter).

use ndarray::{Array2, ArrayView2, Axis, Slice};
use rayon::prelude::*;

/// Rows per block of the similarity product: small enough that a block's
/// similarities to 200,000 images fit in a few tens of megabytes.
const BLOCK: usize = 64;

/// Each image's nearest other images, nearest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbours {
    n: usize,
    k: usize,
    /// `k` neighbour indices per image, row after row.
    index: Vec<u32>,
    /// Their cosine distances, in the same order.
    distance: Vec<f32>,
}

impl Neighbours {
    /// Neighbours per image (fewer than asked for when there are not that many other images).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Image `i`'s neighbours, nearest first: (index, cosine distance).
    pub fn of(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let row = i * self.k..(i + 1) * self.k;
        self.index[row.clone()].iter().map(|&j| j as usize).zip(self.distance[row].iter().copied())
    }

    /// Image `i`'s mean distance to its neighbours.
    pub fn mean_distance(&self, i: usize) -> f64 {
        let row = &self.distance[i * self.k..(i + 1) * self.k];
        row.iter().map(|&d| f64::from(d)).sum::<f64>() / self.k.max(1) as f64
    }
}

/// Rows scaled to unit length (a zero row stays zero, similar to nothing;
/// so does a row with a value that is not finite).
pub fn unit_rows(features: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut out = features.to_owned();
    for mut row in out.axis_iter_mut(Axis(0)) {
        let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            row.mapv_inplace(|v| (f64::from(v) / norm) as f32);
        } else {
            row.fill(0.0);
        }
    }
    out
}

/// The `k` nearest other rows of every row of `features` (cosine distance;
/// ties to the lower index), and every pair `(i, j, similarity)`, `i < j`,
/// whose cosine similarity is at least `pair_similarity` and that `keep`
/// keeps (called in parallel, on those pairs only).
pub fn search(
    features: ArrayView2<'_, f32>,
    k: usize,
    pair_similarity: f32,
    keep: impl Fn(usize, usize, f32) -> bool + Sync,
) -> (Neighbours, Vec<(usize, usize, f32)>) {
    let n = features.nrows();
    let k = k.min(n.saturating_sub(1));
    let unit = unit_rows(features);
    // Per block: its rows' neighbour indices and distances, and its pairs.
    type Block = (Vec<u32>, Vec<f32>, Vec<(usize, usize, f32)>);
    let blocks: Vec<Block> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let start = b * BLOCK;
            let end = (start + BLOCK).min(n);
            let sims = unit.slice_axis(Axis(0), Slice::from(start..end)).dot(&unit.t());
            let mut index = Vec::with_capacity((end - start) * k);
            let mut distance = Vec::with_capacity((end - start) * k);
            let mut pairs = Vec::new();
            let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
            for (r, row) in sims.outer_iter().enumerate() {
                let i = start + r;
                best.clear();
                for (j, &sim) in row.iter().enumerate() {
                    if j == i {
                        continue;
                    }
                    if j > i && sim >= pair_similarity && keep(i, j, sim) {
                        pairs.push((i, j, sim));
                    }
                    let d = 1.0 - sim;
                    // Keep the k smallest (distance, index), sorted.
                    if best.len() == k && best.last().is_none_or(|&(worst, _)| d >= worst) {
                        continue;
                    }
                    let at = best.partition_point(|&(bd, _)| bd <= d);
                    best.insert(at, (d, j as u32));
                    best.truncate(k);
                }
                for &(d, j) in &best {
                    index.push(j);
                    distance.push(d.max(0.0));
                }
            }
            (index, distance, pairs)
        })
        .collect();
    let mut neighbours = Neighbours { n, k, index: Vec::with_capacity(n * k), distance: Vec::with_capacity(n * k) };
    let mut pairs = Vec::new();
    for (index, distance, p) in blocks {
        neighbours.index.extend(index);
        neighbours.distance.extend(distance);
        pairs.extend(p);
    }
    (neighbours, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn nearest_others_in_order_and_pairs_above_the_threshold() {
        let x = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [2.0, 0.0]];
        let (nb, pairs) = search(x.view(), 2, 0.99, |_, _, _| true);
        assert_eq!(nb.len(), 5);
        // Row 0 is the same direction as row 4 (distance 0), then row 1.
        let first: Vec<usize> = nb.of(0).map(|(j, _)| j).collect();
        assert_eq!(first, vec![4, 1]);
        assert!(nb.of(0).next().unwrap().1.abs() < 1e-6);
        assert!(pairs.iter().any(|&(i, j, _)| (i, j) == (0, 4)));
        assert!(pairs.iter().all(|&(i, j, s)| i < j && s >= 0.99));
        assert!(!pairs.iter().any(|&(i, j, _)| (i, j) == (0, 2)));
    }

    #[test]
    fn fewer_images_than_k_and_a_zero_row_do_not_panic() {
        let x = array![[0.0f32, 0.0], [1.0, 1.0]];
        let (nb, pairs) = search(x.view(), 10, 0.9, |_, _, _| true);
        assert_eq!(nb.k(), 1);
        assert_eq!(nb.of(0).next().unwrap(), (1, 1.0));
        assert!(pairs.is_empty());
        let (nb, _) = search(Array2::<f32>::zeros((1, 3)).view(), 10, 0.9, |_, _, _| true);
        assert_eq!((nb.k(), nb.len()), (0, 1));
        // A row that is not finite is similar to nothing, not everyone's nearest.
        let x = array![[f32::NAN, 1.0], [1.0, 0.0], [0.9, 0.1]];
        let (nb, _) = search(x.view(), 1, 0.9, |_, _, _| true);
        assert_eq!(nb.of(1).next().unwrap().0, 2);
    }
}
