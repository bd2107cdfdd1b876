//! Progress bars shared by the cvtk crates: one style, drawn on stderr, hidden
//! automatically when stderr is not a terminal (logs and pipes stay clean).

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar of `len` steps with a message, in cvtk's style.
pub fn bar(len: u64, message: impl Into<std::borrow::Cow<'static, str>>) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg:>20} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_message(message)
}
