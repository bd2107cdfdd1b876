//! The audit's exact neighbour search (`cvtk_audit::neighbours::search`: one
//! matrix product per block of rows) against hnsw_rs's HNSW index (cosine
//! distance, 16 links, ef 100 to build and 64 to search), on the synthetic
//! cached features of `cargo bench --bench audit` (10 classes, 1,280
//! dimensions). Printed: each one's seconds and the index's recall of the
//! exact 10 nearest neighbours.
//!
//! `cargo run --release --manifest-path benches/knn-index/Cargo.toml -- ROWS...`

use std::collections::HashSet;
use std::time::Instant;

use anndists::dist::DistCosine;
use hnsw_rs::prelude::Hnsw;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const K: usize = 10;

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("ROWS: a number of rows")).collect();
    println!("| cached feature rows (1280 each) | exact search s | HNSW build s | HNSW search s | HNSW total s | HNSW recall of the 10 nearest |");
    println!("|---|---|---|---|---|---|");
    for rows in sizes {
        // The features of benches/audit.rs's growth table, row for row.
        let mut rng = ChaCha8Rng::seed_from_u64(rows as u64);
        let (k, dim) = (10, 1280);
        let centres = Array2::from_shape_fn((k, dim), |_| rng.sample::<f32, _>(rand_distr::StandardNormal));
        let y: Vec<usize> = (0..rows).map(|_| rng.random_range(0..k)).collect();
        let x = Array2::from_shape_fn((rows, dim), |(i, j)| {
            (centres[[y[i], j]] + 2.0 * rng.sample::<f32, _>(rand_distr::StandardNormal)).max(0.0)
        });

        let t = Instant::now();
        let (exact, _) = cvtk_audit::neighbours::search(x.view(), K, 0.85, |_, _, _| false);
        let exact_s = t.elapsed().as_secs_f64();

        let data: Vec<Vec<f32>> = x.outer_iter().map(|r| r.to_vec()).collect();
        let t = Instant::now();
        let index = Hnsw::<f32, DistCosine>::new(16, rows, 16, 100, DistCosine {});
        let with_ids: Vec<(&Vec<f32>, usize)> = data.iter().zip(0..).collect();
        index.parallel_insert(&with_ids);
        let build_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let found = index.parallel_search(&data, K + 1, 64);
        let search_s = t.elapsed().as_secs_f64();

        let mut hits = 0;
        for (i, neighbours) in found.iter().enumerate() {
            let truth: HashSet<usize> = exact.of(i).map(|(j, _)| j).collect();
            hits += neighbours.iter().filter(|n| n.d_id != i).take(K).filter(|n| truth.contains(&n.d_id)).count();
        }
        println!(
            "| {rows} | {exact_s:.1} | {build_s:.1} | {search_s:.1} | {:.1} | {:.3} |",
            build_s + search_s,
            hits as f64 / (rows * K) as f64
        );
    }
}
