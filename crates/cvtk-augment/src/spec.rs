//! [`Spec`]: every built-in augmenter as one serialisable enum, and
//! [`Pipeline`]: a validated spec applied with per-image seeds, readable from
//! JSON or TOML, usable as the loader's on-the-fly transform.

use std::path::Path;

use cvtk_dataset::ImageTransform;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::color::{Add, AdditiveGaussianNoise, GaussianBlur, Grayscale, LinearContrast, Multiply};
use crate::error::{Error, Result};
use crate::geometry::{Affine, Crop, Fliplr, Flipud, Pad, Resize, Rotate};
use crate::meta::{OneOf, Sequential, SomeOf, Sometimes};
use crate::Augmenter;

macro_rules! specs {
    ($($name:ident),* $(,)?) => {
        /// Any built-in augmenter. In JSON and TOML an object with a `"type"`
        /// naming it and its fields, e.g. `{"type": "Fliplr", "p": 0.5}`.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Spec {
            $(
                #[doc = concat!("[`", stringify!($name), "`]")]
                $name($name),
            )*
        }

        $(
            impl From<$name> for Spec {
                fn from(a: $name) -> Self {
                    Spec::$name(a)
                }
            }
        )*

        impl Spec {
            /// Checks every parameter, recursively.
            pub fn validate(&self) -> Result<()> {
                match self {
                    $(Spec::$name(a) => a.validate(),)*
                }
            }
        }

        impl Augmenter for Spec {
            fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
                match self {
                    $(Spec::$name(a) => a.augment(image, rng),)*
                }
            }
        }
    };
}

specs!(
    Sequential,
    SomeOf,
    OneOf,
    Sometimes,
    Fliplr,
    Flipud,
    Crop,
    Pad,
    Affine,
    Rotate,
    Resize,
    Multiply,
    Add,
    LinearContrast,
    GaussianBlur,
    AdditiveGaussianNoise,
    Grayscale,
);

/// A validated augmenter tree applied with a seed per image: the same seed and
/// image give the same output, whatever the thread count.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    spec: Spec,
}

impl Pipeline {
    /// A pipeline of `spec` (checked).
    pub fn new(spec: impl Into<Spec>) -> Result<Self> {
        let spec = spec.into();
        spec.validate()?;
        Ok(Pipeline { spec })
    }

    /// The augmenter tree.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Applies the pipeline to `image` with `seed`.
    pub fn run(&self, image: RgbImage, seed: u64) -> RgbImage {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.spec.augment(image, &mut rng)
    }

    /// Parses a JSON pipeline.
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: Spec = serde_json::from_str(text).map_err(|e| parse_error("<string>", e))?;
        Self::new(spec)
    }

    /// Parses a TOML pipeline.
    pub fn from_toml(text: &str) -> Result<Self> {
        let spec: Spec = toml::from_str(text).map_err(|e| parse_error("<string>", e))?;
        Self::new(spec)
    }

    /// Reads a pipeline file: `.toml` as TOML, anything else as JSON.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::io("cannot read", path, source))?;
        let named = |e: Error| match e {
            Error::Parse { reason, .. } => Error::Parse { source_name: path.display().to_string(), reason },
            other => other,
        };
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
            Self::from_toml(&text).map_err(named)
        } else {
            Self::from_json(&text).map_err(named)
        }
    }

    /// The built-in pipelines by name, and their text (the files in this
    /// crate's `pipelines/` folder, compiled in): `flip_crop`, the original
    /// notebook's flips and crops; `photo`, those plus one or two of a small
    /// rotation, a brightness change and a light blur.
    pub const BUILTIN: [(&'static str, &'static str); 2] = [
        ("flip_crop", include_str!("../pipelines/flip_crop.json")),
        ("photo", include_str!("../pipelines/photo.toml")),
    ];

    /// A built-in pipeline ([`Self::BUILTIN`]) by name.
    pub fn builtin(name: &str) -> Option<Result<Self>> {
        let (_, text) = Self::BUILTIN.iter().find(|(n, _)| *n == name)?;
        Some(if text.trim_start().starts_with('{') { Self::from_json(text) } else { Self::from_toml(text) })
    }

    /// A pipeline file, or, when there is no such file and `spec` is one of
    /// [`Self::BUILTIN`]'s names, that built-in pipeline: what `--pipeline`
    /// and `--augment` take, so `flip_crop` works from any folder.
    pub fn open(spec: &Path) -> Result<Self> {
        if spec.is_file() {
            return Self::from_file(spec);
        }
        if let Some(builtin) = spec.to_str().and_then(Self::builtin) {
            return builtin;
        }
        Err(Error::Parse {
            source_name: spec.display().to_string(),
            reason: format!(
                "no such file, nor a built-in pipeline of that name (the built-in ones: {}); give a pipeline file \
                 (JSON or TOML) or one of those names",
                Self::BUILTIN.map(|(n, _)| n).join(", ")
            ),
        })
    }

    /// The pipeline as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.spec).unwrap_or_default()
    }
}

fn parse_error(name: &str, e: impl std::fmt::Display) -> Error {
    Error::Parse {
        source_name: name.into(),
        reason: format!(
            "{e}; each augmenter is an object with a \"type\" (Sequential, Fliplr, Crop, Affine, ...) and its fields"
        ),
    }
}

impl ImageTransform for Pipeline {
    fn apply(&self, image: RgbImage, seed: u64) -> RgbImage {
        self.run(image, seed)
    }
}
