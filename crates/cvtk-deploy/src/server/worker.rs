//! The model worker: one thread owns the classifier (a `tch::Tensor` is `Send`
//! but not `Sync`) and takes jobs from a bounded channel. A full channel is the
//! service's back-pressure (503); waiting up to `max_delay` for more jobs gives
//! dynamic batching.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cvtk_dataset::ImageBatch;
use cvtk_model::Classifier;
use tokio::sync::oneshot;

use super::metrics::Metrics;

/// Raw scores of one job's images, or why scoring failed.
pub(crate) type JobReply = Result<Vec<Vec<f32>>, String>;

/// Images of one request, and where to send their scores.
pub(crate) struct Job {
    pub images: ImageBatch,
    pub reply: oneshot::Sender<JobReply>,
    /// The job's share of the queue's image budget, given back when the job
    /// is dropped (scored, or thrown away).
    reserved: Option<Reservation>,
}

impl Job {
    /// A job of `images` answering on `reply`.
    pub fn new(images: ImageBatch, reply: oneshot::Sender<JobReply>) -> Self {
        Job { images, reply, reserved: None }
    }
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
    classifier: &dyn Classifier,
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
        if jobs.is_empty() {
            continue;
        }
        score(classifier, jobs, metrics);
    }
}

fn score(classifier: &dyn Classifier, jobs: Vec<Job>, metrics: &Metrics) {
    let sizes: Vec<usize> = jobs.iter().map(Job::len).collect();
    let total: usize = sizes.iter().sum();
    let result = (|| -> Result<Vec<Vec<f32>>, String> {
        if let [job] = jobs.as_slice() {
            return classifier.score_images(&job.images).map_err(|e| e.to_string());
        }
        let parts: Vec<&ImageBatch> = jobs.iter().map(|j| &j.images).collect();
        let input = ImageBatch::concat(&parts).map_err(|e| e.to_string())?;
        classifier.score_images(&input).map_err(|e| e.to_string())
    })();
    metrics.batch_size.observe(total as f64);
    match result {
        Ok(rows) => {
            metrics.images.inc_by(total as u64);
            let mut rows = rows.into_iter();
            for (job, n) in jobs.into_iter().zip(sizes) {
                let _ = job.reply.send(Ok(rows.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            tracing::error!("scoring failed: {e}");
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}
