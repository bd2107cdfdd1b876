//! [`DatasetAudit`]: the findings on a dataset's images, as one library call
//! (what `cvtk audit` prints).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use cvtk_dataset::{ClassificationDataset, DuplicateIds, Finding, Findings, Skipped, SplitPart};
use cvtk_model::Featurizer;
use serde::Serialize;

use crate::crossfit::{check_folds, out_of_sample_probabilities, LogisticParams};
use crate::duplicates::{duplicate_sets, near_pair, FEATURE_SIMILARITY};
use crate::neighbours::search;
use crate::outliers::{neighbour_votes, outlier_scores};
use crate::pixels::pixel_facts;
use crate::quality::{judge, ImageStats, QualityIssue, QualityScores};
use crate::{label_issues, CacheUse, Error, FeatureCache, Result};

/// How an audit is run.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// Folds of the cross-fitting (at least 2). By default 5.
    pub folds: usize,
    /// The model fitted on each fold's features.
    pub model: LogisticParams,
    /// Seeds the folds.
    pub seed: u64,
    /// Images per featurizing batch. By default 32.
    pub batch_size: usize,
    /// Where features are kept between audits; by default none (every audit
    /// featurizes). `cvtk audit` keeps them in [`FeatureCache::in_storage`].
    pub cache: Option<FeatureCache>,
    /// Nearest neighbours per image for the outlier and neighbour checks. By default 10 (cleanlab's).
    pub neighbours: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            folds: 5,
            model: LogisticParams::default(),
            seed: 0,
            batch_size: 32,
            cache: None,
            neighbours: 10,
        }
    }
}

/// An image, as findings name it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageRef {
    /// The image's id in the manifest.
    pub id: u64,
    /// The image file.
    pub path: PathBuf,
    /// Its label.
    pub label: String,
}

/// One image whose label is likely wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageLabelIssue {
    /// The image's id in the manifest.
    pub id: u64,
    /// The image file.
    pub path: PathBuf,
    /// The label it has.
    pub given: String,
    /// The label the out-of-sample model (or the neighbours' vote) finds most probable.
    pub suggested: String,
    /// That label's probability (or share of the neighbours).
    pub suggested_probability: f64,
    /// The given label's probability (or share of the neighbours; lower is worse).
    pub quality: f64,
}

/// A label's image count, and whether it has too few images to be audited,
/// learned or evaluated well.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelCount {
    /// The label.
    pub label: String,
    /// Its images.
    pub images: usize,
    /// Fewer images than folds: some folds fit without it, so its images
    /// cannot all be judged.
    pub too_few: bool,
    /// Too small to learn or to evaluate well: under [`SMALL_LABEL`] images,
    /// or under a tenth of the median label's.
    pub small: bool,
}

/// Labels with fewer images than this are small (a test part of a fifth of
/// them would hold one or two).
pub const SMALL_LABEL: usize = 10;

/// An image far from every other image in feature space.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outlier {
    /// The image.
    #[serde(flatten)]
    pub image: ImageRef,
    /// cleanlab's out-of-distribution score, in (0, 1]: `exp(-d / median d)`,
    /// `d` the mean cosine distance to its nearest neighbours (lower is farther).
    pub score: f64,
    /// That mean distance.
    pub mean_distance: f64,
}

/// A set of images that are the same picture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DuplicateSet {
    /// Every member has the same pixels.
    pub exact: bool,
    /// The least feature similarity that joined the set (1 for exact copies).
    pub similarity: f32,
    /// Members on both sides of the dataset's split: a leak.
    pub leak: bool,
    /// The members, in dataset order.
    pub images: Vec<DuplicateMember>,
}

/// A member of a [`DuplicateSet`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DuplicateMember {
    /// The image.
    #[serde(flatten)]
    pub image: ImageRef,
    /// Its side of the split, when the dataset has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<SplitPart>,
}

/// An image that fails one or more quality checks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityFinding {
    /// The image.
    #[serde(flatten)]
    pub image: ImageRef,
    /// The checks it fails.
    pub issues: Vec<QualityIssue>,
    /// Every check's score (an issue is a score under the check's threshold).
    pub scores: QualityScores,
    /// The statistics the scores come from.
    pub stats: ImageStats,
}

/// A quality check and how many images fail it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct QualityCount {
    /// The check.
    pub issue: QualityIssue,
    /// Images that fail it.
    pub images: usize,
}

/// What an audit found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetAudit {
    /// Images audited (every image not excluded).
    pub images: usize,
    /// Folds of the cross-fitting.
    pub folds: usize,
    /// The temperature that turned the out-of-fold logits into probabilities.
    pub temperature: f32,
    /// How many images' features came from the cache (none without one).
    pub features: CacheUse,
    /// Images per label.
    pub labels: Vec<LabelCount>,
    /// Images whose labels are likely wrong, by the out-of-sample model, worst first.
    pub label_issues: Vec<ImageLabelIssue>,
    /// Images whose nearest neighbours carry another label (confident
    /// learning on the neighbours' vote), worst first.
    pub neighbour_issues: Vec<ImageLabelIssue>,
    /// Images far from all others, farthest first.
    pub outliers: Vec<Outlier>,
    /// Sets of exact and near duplicates, in dataset order; leaks are those with `leak`.
    pub duplicates: Vec<DuplicateSet>,
    /// Images that fail quality checks, in dataset order (but for the
    /// checks in `common_quality`).
    pub quality: Vec<QualityFinding>,
    /// Quality checks that most images fail: a trait of the whole dataset
    /// (all of MNIST is "low information"), so not listed per image.
    pub common_quality: Vec<QualityCount>,
    /// Files of the dataset's folder that are not in it because they could
    /// not be read (found when the dataset was made).
    pub unreadable: Vec<Skipped>,
}

impl DatasetAudit {
    /// Audits every image of `dataset`: features from `featurizer`,
    /// out-of-sample probabilities by cross-fitting a logistic regression on them and
    /// confident learning (label issues); the features' nearest neighbours
    /// (outliers, neighbours that disagree, near duplicates); every image's
    /// pixels (exact duplicates, quality).
    pub fn run(dataset: &ClassificationDataset, featurizer: &Featurizer, options: &AuditOptions) -> Result<Self> {
        let names = dataset.label_names();
        let used = dataset.counts_per_label().iter().filter(|&&c| c > 0).count();
        if used < 2 {
            return Err(Error::Invalid(format!(
                "the dataset's images carry {used} label; an audit of labels needs two or more"
            )));
        }
        check_folds(dataset.len(), options.folds)?;
        let params = options.model.check()?;
        let labels: Vec<usize> = dataset.images().iter().map(|i| i.label()).collect();
        let facts = pixel_facts(dataset, featurizer.loader_config().max_pixels)?;
        let (features, cache_use) = match &options.cache {
            Some(cache) => cache.features(featurizer, dataset, options.batch_size)?,
            None => {
                (featurizer.features(dataset, options.batch_size)?, CacheUse { reused: 0, computed: dataset.len() })
            }
        };
        let (probs, temperature) =
            out_of_sample_probabilities(&features, &labels, names.len(), options.folds, params, options.seed)?;
        let image_ref = |i: usize| {
            let image = &dataset.images()[i];
            ImageRef { id: image.id, path: image.path.clone(), label: names[image.label()].clone() }
        };
        let named = |issue: crate::LabelIssue| {
            let image = &dataset.images()[issue.index];
            ImageLabelIssue {
                id: image.id,
                path: image.path.clone(),
                given: names[issue.given].clone(),
                suggested: names[issue.suggested].clone(),
                suggested_probability: issue.suggested_probability,
                quality: issue.quality,
            }
        };
        let label_issues_found = label_issues(&labels, &probs)?.into_iter().map(named).collect();

        // Only near-duplicate pairs are kept from the search: similar pairs
        // alone can number in the millions (all the 1s of MNIST).
        let (neighbours, pairs) =
            search(features.view(), options.neighbours.max(1), FEATURE_SIMILARITY, |i, j, sim| {
                near_pair(&facts, i, j, sim)
            });
        let neighbour_issues = label_issues(&labels, &neighbour_votes(&neighbours, &labels, names.len()))?
            .into_iter()
            .map(named)
            .collect();
        let scores = outlier_scores(&neighbours);
        let mut outliers: Vec<Outlier> = (0..dataset.len())
            .filter(|&i| scores.is_outlier(i))
            .map(|i| Outlier { image: image_ref(i), score: scores.scores[i], mean_distance: scores.mean_distances[i] })
            .collect();
        outliers.sort_by(|a, b| a.score.total_cmp(&b.score));

        let parts: HashMap<u64, SplitPart> = dataset
            .split_info()
            .map(|s| {
                let train = s.train.iter().map(|&id| (id, SplitPart::Train));
                train.chain(s.test.iter().map(|&id| (id, SplitPart::Test))).collect()
            })
            .unwrap_or_default();
        let duplicates = duplicate_sets(&facts, &pairs)
            .into_iter()
            .map(|set| {
                let images: Vec<DuplicateMember> = set
                    .members
                    .iter()
                    .map(|&i| DuplicateMember {
                        image: image_ref(i),
                        part: parts.get(&dataset.images()[i].id).copied(),
                    })
                    .collect();
                let on = |p| images.iter().any(|m| m.part == Some(p));
                DuplicateSet {
                    exact: set.exact,
                    similarity: set.similarity,
                    leak: on(SplitPart::Train) && on(SplitPart::Test),
                    images,
                }
            })
            .collect();

        let stats: Vec<ImageStats> = facts.into_iter().map(|f| f.stats).collect();
        let mut judged = judge(&stats);
        // A check that most images fail describes the dataset (MNIST's
        // digits are all nearly blank by CleanVision's measure), not an
        // image to look at: counted once, not listed per image.
        let common: Vec<QualityCount> = QualityIssue::ALL
            .iter()
            .map(|&issue| QualityCount { issue, images: judged.iter().filter(|j| j.issues.contains(&issue)).count() })
            .filter(|c| c.images * 2 > dataset.len())
            .collect();
        for j in &mut judged {
            j.issues.retain(|issue| !common.iter().any(|c| c.issue == *issue));
        }
        let quality = judged
            .into_iter()
            .zip(stats)
            .enumerate()
            .filter(|(_, (judged, _))| !judged.issues.is_empty())
            .map(|(i, (judged, stats))| QualityFinding {
                image: image_ref(i),
                issues: judged.issues,
                scores: judged.scores,
                stats,
            })
            .collect();

        let counts = dataset.counts_per_label();
        let median_count = crate::stats::median(&counts.iter().map(|&c| c as f64).collect::<Vec<_>>());
        Ok(DatasetAudit {
            images: dataset.len(),
            folds: options.folds,
            temperature,
            features: cache_use,
            labels: names
                .iter()
                .zip(&counts)
                .map(|(label, &images)| LabelCount {
                    label: label.clone(),
                    images,
                    too_few: images < options.folds,
                    small: images < SMALL_LABEL || (images as f64) * 10.0 < median_count,
                })
                .collect(),
            label_issues: label_issues_found,
            neighbour_issues,
            outliers,
            duplicates,
            quality,
            common_quality: common,
            unreadable: dataset.skipped().to_vec(),
        })
    }

    /// The findings as the manifest keeps them ([`Findings`]), for `cvtk
    /// annotate` and `cvtk dataset split --keep-duplicates-together`.
    /// `base_model` names the network whose features were used.
    pub fn findings(&self, base_model: &str) -> Findings {
        let mut images: BTreeMap<u64, Vec<Finding>> = BTreeMap::new();
        let mut add = |id: u64, f: Finding| images.entry(id).or_default().push(f);
        for i in &self.label_issues {
            add(i.id, Finding::LabelIssue { suggested: i.suggested.clone(), probability: i.suggested_probability });
        }
        for i in &self.neighbour_issues {
            add(i.id, Finding::NeighboursDisagree { suggested: i.suggested.clone(), share: i.suggested_probability });
        }
        for o in &self.outliers {
            add(o.image.id, Finding::Outlier { score: o.score });
        }
        for (set, d) in self.duplicates.iter().enumerate() {
            for m in &d.images {
                add(m.image.id, Finding::Duplicate { set });
            }
        }
        for q in &self.quality {
            add(q.image.id, Finding::Quality { issues: q.issues.iter().map(|i| i.name().to_string()).collect() });
        }
        Findings {
            audited_images: self.images,
            base_model: base_model.to_string(),
            images,
            duplicate_sets: self
                .duplicates
                .iter()
                .map(|d| DuplicateIds { ids: d.images.iter().map(|m| m.image.id).collect(), exact: d.exact })
                .collect(),
        }
    }

    /// The duplicate sets that leak across the split.
    pub fn leaks(&self) -> impl Iterator<Item = &DuplicateSet> {
        self.duplicates.iter().filter(|s| s.leak)
    }

    /// Images with each quality issue.
    pub fn quality_counts(&self) -> Vec<(QualityIssue, usize)> {
        QualityIssue::ALL
            .iter()
            .map(|&issue| (issue, self.quality.iter().filter(|f| f.issues.contains(&issue)).count()))
            .collect()
    }
}
