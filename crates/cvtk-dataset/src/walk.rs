//! The one walk of a folder for images, so every command sees the same images
//! in the same folder: `cvtk dataset create` (per label folder), `cvtk score`
//! and `cvtk predict` on a folder, `cvtk loadtest --images`, and local folders
//! in `cvtk dataset collect`.
//!
//! The policy: symbolic links are followed (a link back into a folder above it
//! is reported, not followed); entries come in path order (sorted by name at
//! each level); hidden files and folders (a name starting with `.`, such as
//! macOS's `._` files and cvtk's own temporary files) are skipped and their
//! folders not entered; a file is an image by its extension
//! ([`crate::decode::has_image_extension`]) and only a regular file (not a
//! FIFO, socket or device) is one; what cannot be read and a file of another
//! type are reported as [`Skipped`], never silently lost, and never stop the
//! walk. Names that are not UTF-8 are walked like any other (a manifest,
//! which stores paths as text, refuses them itself).

use std::path::{Path, PathBuf};

use crate::dataset::{SkipKind, Skipped};
use crate::decode::{has_image_extension, is_hidden};

/// The image files under `dir` in path order, and what was skipped and why,
/// as the module's policy says. `dir` itself is entered whatever its name.
pub fn image_files(dir: &Path) -> impl Iterator<Item = Result<PathBuf, Skipped>> {
    let skipped = |path: &Path, kind: SkipKind, reason: String| {
        Err(Skipped { path: path.to_string_lossy().into_owned(), kind, reason })
    };
    let mut walker = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name().into_iter();
    let root = dir.to_path_buf();
    std::iter::from_fn(move || loop {
        let entry = match walker.next()? {
            Ok(e) => e,
            Err(err) => {
                let path = err.path().map_or_else(|| root.clone(), Path::to_path_buf);
                if err.loop_ancestor().is_some() {
                    return Some(skipped(
                        &path,
                        SkipKind::SymlinkLoop,
                        "symbolic link loops back to a folder above it".into(),
                    ));
                }
                let why = err.io_error().map_or_else(|| err.to_string(), ToString::to_string);
                return Some(skipped(&path, SkipKind::Unreadable, format!("cannot read: {why}")));
            }
        };
        if entry.depth() > 0 && is_hidden(entry.file_name()) {
            if entry.file_type().is_dir() {
                walker.skip_current_dir();
            }
            return Some(skipped(entry.path(), SkipKind::Hidden, "hidden".into()));
        }
        if entry.file_type().is_dir() {
            continue;
        }
        let path = entry.path();
        if !entry.file_type().is_file() {
            let reason = "not a regular file (a FIFO, socket or device)".into();
            return Some(skipped(path, SkipKind::Unreadable, reason));
        }
        if !has_image_extension(path) {
            return Some(skipped(path, SkipKind::NotAnImage, "not an image file (by its extension)".into()));
        }
        return Some(Ok(entry.into_path()));
    })
}

/// [`image_files`]' images, what it skipped logged as a warning unless it is
/// hidden or not an image (what a command that takes a folder of images
/// expects to be left out): for the commands that have no report of skips.
pub fn image_files_logged(dir: &Path) -> impl Iterator<Item = PathBuf> {
    image_files(dir).filter_map(|found| match found {
        Ok(path) => Some(path),
        Err(s) => {
            if !matches!(s.kind, SkipKind::Hidden | SkipKind::NotAnImage) {
                tracing::warn!("skipped {}: {}", s.path, s.reason);
            }
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn images_in_path_order_and_every_other_entry_reported_with_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["b/2.png", "a/1.jpg", "a/.hidden.png", ".cache/x.png", "a/notes.txt", "c.JPEG"] {
            let path = root.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        std::os::unix::fs::symlink(root, root.join("b/loop")).unwrap();
        // A FIFO named like an image is not one (reading it would block);
        // a name that is not UTF-8 is walked like any other.
        assert!(std::process::Command::new("mkfifo").arg(root.join("b/pipe.png")).status().unwrap().success());
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
        std::fs::write(root.join("b").join(latin1), b"x").unwrap();
        let (mut images, mut skipped) = (Vec::new(), Vec::new());
        for item in image_files(root) {
            match item {
                Ok(p) => images.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned()),
                Err(s) => {
                    skipped.push((s.kind, Path::new(&s.path).file_name().unwrap().to_string_lossy().into_owned()))
                }
            }
        }
        assert_eq!(images, ["a/1.jpg", "b/2.png", "b/caf\u{fffd}.png", "c.JPEG"]);
        skipped.sort_by_key(|(_, name)| name.clone());
        assert_eq!(
            skipped,
            [
                (SkipKind::Hidden, ".cache".to_string()),
                (SkipKind::Hidden, ".hidden.png".to_string()),
                (SkipKind::SymlinkLoop, "loop".to_string()),
                (SkipKind::NotAnImage, "notes.txt".to_string()),
                (SkipKind::Unreadable, "pipe.png".to_string()),
            ]
        );
    }
}
