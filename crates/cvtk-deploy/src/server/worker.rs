//! The model worker: one thread owns the scorer (a `tch::Tensor` is `Send`
//! but not `Sync`) and takes jobs from a bounded channel. A full channel is the
//! service's back-pressure (503); waiting up to `max_delay` for more jobs gives
//! dynamic batching.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cvtk_dataset::ImageBatch;
use cvtk_model::{ClassMaps, Scorer};
use tokio::sync::oneshot;

use super::metrics::Metrics;

/// Raw scores of one job's images, or why scoring failed.
pub(crate) type JobReply = Result<Vec<Vec<f32>>, Failure>;

/// Why a job's images were not scored.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// The model ran out of memory (CUDA or host): worth retrying later, or
    /// with fewer images.
    pub out_of_memory: bool,
    pub message: String,
}

impl Failure {
    fn new(message: String) -> Self {
        let lower = message.to_lowercase();
        let out_of_memory = lower.contains("out of memory") || lower.contains("failed to allocate");
        Failure { out_of_memory, message }
    }
}

/// Images of one request, and where to send their scores.
pub(crate) struct Job {
    pub images: ImageBatch,
    pub reply: oneshot::Sender<JobReply>,
    /// Class activation maps asked for (`POST /explain`): each row is then
    /// [`encode_maps`]'s, not raw scores.
    pub explain: bool,
    /// The job's share of the queue's image budget, given back when the job
    /// is dropped (scored, or thrown away).
    reserved: Option<Reservation>,
}

impl Job {
    /// A job of `images` answering on `reply`.
    pub fn new(images: ImageBatch, reply: oneshot::Sender<JobReply>) -> Self {
        Job { images, reply, explain: false, reserved: None }
    }

    /// A job asking for `images`' class activation maps.
    pub fn explain(images: ImageBatch, reply: oneshot::Sender<JobReply>) -> Self {
        Job { images, reply, explain: true, reserved: None }
    }
}

/// One image's [`ClassMaps`] as a job's row: `[height, width, scores...,
/// maps...]`.
fn encode_maps(m: ClassMaps) -> Vec<f32> {
    let mut row = Vec::with_capacity(2 + m.scores.len() + m.values.len());
    row.extend([m.height as f32, m.width as f32]);
    row.extend(m.scores);
    row.extend(m.values);
    row
}

/// [`encode_maps`]'s row back, for a model of `labels` labels.
pub(crate) fn decode_maps(row: &[f32], labels: usize) -> Option<ClassMaps> {
    let (&h, rest) = row.split_first()?;
    let (&w, rest) = rest.split_first()?;
    let (h, w) = (h as usize, w as usize);
    let (scores, values) = (rest.get(..labels)?, rest.get(labels..)?);
    (values.len() == labels * h * w).then(|| ClassMaps {
        scores: scores.to_vec(),
        height: h,
        width: w,
        values: values.to_vec(),
    })
}

/// Images counted against the queue's budget while a job lives.
struct Reservation {
    queued: Arc<AtomicUsize>,
    images: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.images, Ordering::AcqRel);
    }
}

impl Job {
    fn len(&self) -> usize {
        self.images.len()
    }
}

/// The sending side, shared by the request handlers.
pub(crate) struct Queue {
    tx: SyncSender<Job>,
    metrics: Arc<Metrics>,
    /// Images in queued or scoring jobs, and their most: the queue is bounded
    /// in images (memory), not only in jobs.
    queued: Arc<AtomicUsize>,
    max_images: usize,
}

/// Why a job was not queued.
pub(crate) enum Refused {
    Full,
    Stopped,
}

impl Queue {
    /// Queues a job without waiting; refused when the queue is full in jobs
    /// or in images.
    pub fn try_send(&self, mut job: Job) -> Result<(), Refused> {
        let n = job.len();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        let reservation = Reservation { queued: self.queued.clone(), images: n };
        if before + n > self.max_images {
            return Err(Refused::Full);
        }
        job.reserved = Some(reservation);
        self.metrics.queue_depth.inc();
        self.tx.try_send(job).map_err(|e| {
            self.metrics.queue_depth.dec();
            match e {
                TrySendError::Full(_) => Refused::Full,
                TrySendError::Disconnected(_) => Refused::Stopped,
            }
        })
    }
}

/// A queue bounded at `capacity` jobs and `max_images` images (in queued and
/// scoring jobs together), and its receiving end.
pub(crate) fn queue(capacity: usize, max_images: usize, metrics: Arc<Metrics>) -> (Queue, Receiver<Job>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
    (Queue { tx, metrics, queued: Arc::default(), max_images }, rx)
}

/// Serves jobs until every sender is gone. Jobs arriving within `max_delay` of
/// the first are scored together while their images fit in `max_batch`.
pub(crate) fn run(
    classifier: &dyn Scorer,
    rx: &Receiver<Job>,
    metrics: &Metrics,
    max_batch: usize,
    max_delay: Duration,
) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => {
                    metrics.queue_depth.dec();
                    job
                }
                Err(_) => return,
            },
        };
        let mut images = first.len();
        let mut jobs = vec![first];
        if !max_delay.is_zero() {
            let deadline = Instant::now() + max_delay;
            while images < max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(job) => {
                        metrics.queue_depth.dec();
                        if images + job.len() > max_batch {
                            carry = Some(job);
                            break;
                        }
                        images += job.len();
                        jobs.push(job);
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        // Requests that timed out meanwhile are not worth scoring.
        jobs.retain(|j| !j.reply.is_closed());
        let (explain, scores): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.explain);
        for (jobs, explain) in [(scores, false), (explain, true)] {
            if !jobs.is_empty() {
                score(classifier, jobs, metrics, max_batch, explain);
            }
        }
    }
}

/// The message a panic carried (a `&str` or a `String`), else `otherwise`.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send), otherwise: &str) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| otherwise.to_string())
}

/// Scores `jobs` in chunks of at most `max_batch` images (the batch the
/// model's memory is sized for, however many images one request has). A
/// chunk that fails, by an error or a panic in the model (tch turns a CUDA
/// out-of-memory error into one), fails the jobs it holds images of, and
/// only those: the worker goes on with the next chunk and the next job.
///
/// With `explain`, each row is the image's class activation maps
/// ([`encode_maps`]) instead of its raw scores.
fn score(classifier: &dyn Scorer, jobs: Vec<Job>, metrics: &Metrics, max_batch: usize, explain: bool) {
    let sizes: Vec<usize> = jobs.iter().map(Job::len).collect();
    let total: usize = sizes.iter().sum();
    let parts: Vec<&ImageBatch> = jobs.iter().map(|j| &j.images).collect();
    let merged;
    let input = match parts.as_slice() {
        [one] => *one,
        _ => match ImageBatch::concat(&parts) {
            Ok(m) => {
                merged = m;
                &merged
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(Failure::new(e.to_string())));
                }
                return;
            }
        },
    };
    // Where each job's images start in `input`.
    let starts: Vec<usize> = sizes.iter().scan(0, |at, n| Some(std::mem::replace(at, *at + n))).collect();
    let mut failed: Vec<Option<Failure>> = vec![None; jobs.len()];
    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(total);
    let [_, c, h, w] = input.shape();
    let per = c * h * w;
    for from in (0..total).step_by(max_batch.max(1)) {
        let to = (from + max_batch.max(1)).min(total);
        let holders: Vec<usize> = (0..jobs.len()).filter(|&j| starts[j] < to && starts[j] + sizes[j] > from).collect();
        // Nobody left to answer for these images: skip them.
        if holders.iter().all(|&j| failed[j].is_some() || jobs[j].reply.is_closed()) {
            rows.extend(std::iter::repeat_with(Vec::new).take(to - from));
            continue;
        }
        let chunk = || -> Result<Vec<Vec<f32>>, String> {
            let owned;
            let batch = if from == 0 && to == total {
                input
            } else {
                owned = ImageBatch::new(input.data()[from * per..to * per].to_vec(), [to - from, c, h, w])
                    .map_err(|e| e.to_string())?;
                &owned
            };
            let out = match explain {
                false => classifier.score_images(batch).map_err(|e| e.to_string())?,
                true => classifier.class_maps(batch).map_err(|e| e.to_string())?.into_iter().map(encode_maps).collect(),
            };
            if out.len() != to - from {
                return Err(format!("the model gave {} rows of scores for {} images", out.len(), to - from));
            }
            Ok(out)
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(chunk))
            .unwrap_or_else(|panic| Err(panic_message(&*panic, "a panic in the model")));
        metrics.batch_size.observe((to - from) as f64);
        match result {
            Ok(out) => {
                metrics.images.inc_by((to - from) as u64);
                rows.extend(out);
            }
            Err(e) => {
                let failure = Failure::new(e);
                tracing::error!("scoring {} images failed: {}", to - from, failure.message);
                for j in holders {
                    failed[j].get_or_insert_with(|| failure.clone());
                }
                rows.extend(std::iter::repeat_with(Vec::new).take(to - from));
            }
        }
    }
    let mut rows = rows.into_iter();
    for ((job, n), failure) in jobs.into_iter().zip(sizes).zip(failed) {
        let mine: Vec<Vec<f32>> = rows.by_ref().take(n).collect();
        let _ = job.reply.send(match failure {
            Some(f) => Err(f),
            None => Ok(mine),
        });
    }
}
