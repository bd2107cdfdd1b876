//! Progress of long work (scanning, training, scoring, augmenting, ...),
//! reported to whatever the program installed: nothing by default, so a
//! library user's service logs stay clean; the `cvtk` program and the examples
//! install [`TerminalProgress`] (feature `terminal`), which draws indicatif
//! bars on stderr when it is a terminal.
//!
//! Library code reports through [`Progress`]; a program chooses how it is
//! shown with [`set_reporter`]:
//!
//! ```
//! use cvtk_core::progress::{self, Progress, ProgressReporter, ProgressTask};
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! /// Counts steps instead of drawing bars.
//! struct Count(Arc<AtomicU64>);
//! struct CountTask(Arc<AtomicU64>);
//! impl ProgressReporter for Count {
//!     fn start(&self, _len: u64, _message: &str) -> Box<dyn ProgressTask> {
//!         Box::new(CountTask(self.0.clone()))
//!     }
//! }
//! impl ProgressTask for CountTask {
//!     fn advance(&self, n: u64) {
//!         self.0.fetch_add(n, Ordering::Relaxed);
//!     }
//! }
//!
//! let steps = Arc::new(AtomicU64::new(0));
//! progress::set_reporter(Count(steps.clone()));
//! let p = Progress::start(3, "work");
//! p.inc(2);
//! p.inc(1);
//! p.finish();
//! assert!(steps.load(Ordering::Relaxed) >= 3);
//! ```

use std::sync::{Arc, RwLock};

/// Shows progress: one [`ProgressTask`] per piece of long work.
pub trait ProgressReporter: Send + Sync {
    /// Work of `len` steps, described by `message`, begins.
    fn start(&self, len: u64, message: &str) -> Box<dyn ProgressTask>;
}

/// One piece of work in progress. It may be advanced from several threads.
pub trait ProgressTask: Send + Sync {
    /// `n` more steps are done.
    fn advance(&self, n: u64);
    /// The description changed (e.g. the running loss of an epoch).
    fn set_message(&self, _message: &str) {}
    /// The work is over (also called when the [`Progress`] is dropped).
    fn finish(&self) {}
}

static REPORTER: RwLock<Option<Arc<dyn ProgressReporter>>> = RwLock::new(None);

/// Makes `reporter` show the progress of all work from now on.
pub fn set_reporter(reporter: impl ProgressReporter + 'static) {
    let mut r = REPORTER.write().unwrap_or_else(|p| p.into_inner());
    *r = Some(Arc::new(reporter));
}

/// Stops showing progress.
pub fn clear_reporter() {
    let mut r = REPORTER.write().unwrap_or_else(|p| p.into_inner());
    *r = None;
}

/// The progress of one piece of work, reported to the installed reporter (a
/// no-op when there is none). Finishes when dropped.
pub struct Progress {
    task: Option<Box<dyn ProgressTask>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("shown", &self.task.is_some()).finish()
    }
}

impl Progress {
    /// Work of `len` steps begins.
    pub fn start(len: u64, message: impl AsRef<str>) -> Self {
        let reporter = REPORTER.read().unwrap_or_else(|p| p.into_inner()).clone();
        Progress { task: reporter.map(|r| r.start(len, message.as_ref())) }
    }

    /// Progress that is never shown.
    pub fn hidden() -> Self {
        Progress { task: None }
    }

    /// `n` more steps are done.
    pub fn inc(&self, n: u64) {
        if let Some(t) = &self.task {
            t.advance(n);
        }
    }

    /// Changes the description.
    pub fn set_message(&self, message: impl AsRef<str>) {
        if let Some(t) = &self.task {
            t.set_message(message.as_ref());
        }
    }

    /// The work is over.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.finish();
        }
    }
}

/// indicatif bars on stderr, in cvtk's style, hidden automatically when stderr
/// is not a terminal (logs and pipes stay clean).
#[cfg(feature = "terminal")]
#[derive(Clone, Copy, Debug, Default)]
pub struct TerminalProgress;

#[cfg(feature = "terminal")]
impl ProgressReporter for TerminalProgress {
    fn start(&self, len: u64, message: &str) -> Box<dyn ProgressTask> {
        let style = indicatif::ProgressStyle::with_template("{msg:>20} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        Box::new(indicatif::ProgressBar::new(len).with_style(style).with_message(message.to_string()))
    }
}

#[cfg(feature = "terminal")]
impl ProgressTask for indicatif::ProgressBar {
    fn advance(&self, n: u64) {
        self.inc(n);
    }
    fn set_message(&self, message: &str) {
        indicatif::ProgressBar::set_message(self, message.to_string());
    }
    fn finish(&self) {
        self.finish_and_clear();
    }
}
