//! Atomic file writes: a file a user would hate to lose is written to a temporary
//! file beside it and renamed over the old one, so an interrupted write leaves the
//! previous version intact.

use std::io::Write;
use std::path::Path;

use crate::{IoError, IoResult};

/// Writes `bytes` to `path` atomically (temp file in the same folder, fsync,
/// rename). Creates the parent folder if needed. Keeps the replaced file's
/// permissions, or gives a new file what the process's umask gives any new
/// file (0644 with the usual 022, 0600 with 077).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> IoResult<()> {
    let perms = std::fs::metadata(path).ok().map(|m| m.permissions()).or_else(default_permissions);
    write_atomic_with(path, bytes, perms)
}

/// Like [`write_atomic`], but the file is readable and writable by its owner
/// only (0600 on Unix), whatever it was before: for secrets such as service keys.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> IoResult<()> {
    write_atomic_with(path, bytes, private_permissions())
}

fn write_atomic_with(path: &Path, bytes: &[u8], perms: Option<std::fs::Permissions>) -> IoResult<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| IoError::new("cannot create folder", dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".cvtk-tmp-")
        .tempfile_in(dir)
        .map_err(|e| IoError::new("cannot create a temporary file in", dir, e))?;
    tmp.write_all(bytes).map_err(|e| IoError::new("cannot write", tmp.path().to_path_buf(), e))?;
    if let Some(perms) = perms {
        tmp.as_file()
            .set_permissions(perms)
            .map_err(|e| IoError::new("cannot set permissions of", tmp.path().to_path_buf(), e))?;
    }
    tmp.as_file().sync_all().map_err(|e| IoError::new("cannot sync", tmp.path().to_path_buf(), e))?;
    tmp.persist(path).map_err(|e| IoError::new("cannot replace", path, e.error))?;
    // The rename is durable only once the folder's entry is on disk too.
    sync_dir(dir)
}

/// Whether one of two folders is the other or inside it, after resolving
/// `.`, `..` and symbolic links (a path that does not exist yet is resolved
/// from its nearest existing parent). Commands that write (or replace) an
/// output folder refuse one that overlaps their input, so a mistyped `--out`
/// cannot delete what it was meant to read.
pub fn paths_overlap(a: &Path, b: &Path) -> bool {
    let (a, b) = (resolve(a), resolve(b));
    a.starts_with(&b) || b.starts_with(&a)
}

/// `path` made absolute and canonical as far as it exists.
fn resolve(path: &Path) -> std::path::PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            return rest.iter().rev().fold(c, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Flushes a file written by other means (a library that writes to a path)
/// to disk, before it is renamed into place.
pub fn sync_file(path: &Path) -> IoResult<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| IoError::new("cannot sync", path, e))
}

/// Flushes a folder's entries (a rename or a new file in it) to disk. A
/// no-op where folders cannot be opened (Windows).
pub fn sync_dir(dir: &Path) -> IoResult<()> {
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| IoError::new("cannot sync the folder", dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(unix)]
fn default_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::Permissions::from_mode(0o666 & !umask()))
}

/// The process's file-creation mask, as a new file would get it from
/// `open(2)`: read from `/proc/self/status` (Linux 4.7 and later; setting and
/// restoring it with umask(2) would race with other threads), else the usual
/// 022.
#[cfg(unix)]
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:").map(|v| v.trim().to_string())))
        .and_then(|v| u32::from_str_radix(&v, 8).ok())
        .unwrap_or(0o022)
}

#[cfg(not(unix))]
fn default_permissions() -> Option<std::fs::Permissions> {
    None
}

#[cfg(unix)]
fn private_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn private_permissions() -> Option<std::fs::Permissions> {
    None
}

/// Serialises `value` as pretty JSON and writes it atomically to `path`.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> IoResult<()> {
    write_json_atomic_bytes(path, value).map(|_| ())
}

/// [`write_json_atomic`], returning the bytes written.
pub fn write_json_atomic_bytes<T: serde::Serialize>(path: &Path, value: &T) -> IoResult<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| IoError::new("cannot serialise", path, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_folders_are_found_through_dots_links_and_missing_parts() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir_all(model.join("sub")).unwrap();
        assert!(paths_overlap(&model, &model.join("ctx/new")));
        assert!(paths_overlap(&model, dir.path()));
        assert!(paths_overlap(&model, &model.join("sub/..")));
        assert!(!paths_overlap(&model, &dir.path().join("model-ctx")));
        assert!(!paths_overlap(&model, &dir.path().join("other/model")));
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&model, &link).unwrap();
            assert!(paths_overlap(&model, &link.join("out")));
        }
    }

    #[test]
    fn replaces_existing_file_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn new_files_get_the_mode_the_umask_gives_and_replaced_files_keep_theirs() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_atomic(&p, b"one").unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        assert_eq!(mode(&p), mode(&plain), "not what the umask gives a new file");
        // Under umask 077 (a user who keeps their files private): 0600, not 0644.
        if std::env::var_os("CVTK_UMASK_CHILD").is_some() {
            assert_eq!(mode(&p), 0o600);
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let name = "fs::tests::new_files_get_the_mode_the_umask_gives_and_replaced_files_keep_theirs";
        let out = std::process::Command::new("sh")
            .args(["-c", "umask 077 && exec \"$0\" --exact \"$1\" --nocapture", exe.to_str().unwrap(), name])
            .env("CVTK_UMASK_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "under umask 077: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn creates_missing_parent_folders() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c.json");
        write_atomic(&p, b"x").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
    }
}
