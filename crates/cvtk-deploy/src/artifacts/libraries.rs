//! The shared libraries a program needs beyond the system's: what a container
//! image must carry besides the program (libtorch's CPU libraries, libgomp, the
//! CUDA runtime stubs libtorch_cpu names), found from the ELF files themselves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// libtorch's CUDA shim: a library with no code whose only job is to pull in
/// libtorch_cuda (and, through it, gigabytes of CUDA libraries). A CPU image
/// does not follow it; it gets [`CPU_TORCH`] under this name instead.
pub const CUDA_SHIM: &str = "libtorch.so";

/// The library a CPU image loads where the program names [`CUDA_SHIM`].
pub const CPU_TORCH: &str = "libtorch_cpu.so";

/// The libraries `exe` needs, directly or through each other, that are found
/// through an rpath or runpath (the program's, or a library's own, `$ORIGIN`
/// expanded): by name as the program and libraries ask for them. Libraries
/// found only in the system's folders (libc, libstdc++, ...) are left to the
/// base image; [`CUDA_SHIM`] is not followed.
pub fn bundled_libraries(exe: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    // Folders named by every file read so far: an rpath reaches the
    // dependencies of dependencies, as the loader's does.
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut queue = vec![exe.to_path_buf()];
    while let Some(file) = queue.pop() {
        let (needed, search) = read_dynamic(&file)?;
        for dir in search {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        for name in needed {
            if name == CUDA_SHIM || found.contains_key(&name) {
                continue;
            }
            if let Some(path) = dirs.iter().map(|d| d.join(&name)).find(|p| p.is_file()) {
                queue.push(path.clone());
                found.insert(name, path);
            }
        }
    }
    Ok(found)
}

/// Whether `exe` names [`CUDA_SHIM`] among the libraries it needs.
pub fn needs_cuda_shim(exe: &Path) -> Result<bool> {
    Ok(read_dynamic(exe)?.0.iter().any(|n| n == CUDA_SHIM))
}

/// The NEEDED names of an ELF file and the folders of its runpath and rpath.
fn read_dynamic(file: &Path) -> Result<(Vec<String>, Vec<PathBuf>)> {
    let bytes = std::fs::read(file).map_err(|e| Error::io("cannot read", file, e))?;
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|e| {
        Error::config(
            "server_exe",
            format!(
                "{} is not an ELF program or library ({e}); container images need a Linux build of cvtk",
                file.display()
            ),
        )
    })?;
    let origin = file.parent().unwrap_or(Path::new("/"));
    let search = elf
        .runpaths
        .iter()
        .chain(elf.rpaths.iter())
        .flat_map(|list| list.split(':'))
        .filter(|d| !d.is_empty())
        .map(|d| {
            PathBuf::from(
                d.replace("$ORIGIN", &origin.to_string_lossy()).replace("${ORIGIN}", &origin.to_string_lossy()),
            )
        })
        .collect();
    Ok((elf.libraries.iter().map(|s| s.to_string()).collect(), search))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_program_needs_libtorchs_cpu_libraries_and_not_its_cuda_ones() {
        // Test binaries are linked like cvtk itself (crates/cvtk-build).
        let exe = std::env::current_exe().unwrap();
        let libs = bundled_libraries(&exe).unwrap();
        for needed in [CPU_TORCH, "libc10.so", "libgomp.so.1"] {
            assert!(libs.contains_key(needed), "{needed} missing from {:?}", libs.keys());
        }
        for cuda in ["libtorch_cuda.so", "libc10_cuda.so", CUDA_SHIM] {
            assert!(!libs.contains_key(cuda), "{cuda} bundled: {:?}", libs.keys());
        }
        assert!(!libs.keys().any(|n| n.starts_with("libc.so") || n.starts_with("libstdc++")), "{:?}", libs.keys());
        assert!(libs.values().all(|p| p.is_absolute() && p.is_file()));
        assert!(needs_cuda_shim(&exe).unwrap());
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused_with_its_name() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b"#!/bin/sh\n").unwrap();
        let e = bundled_libraries(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("not an ELF") && e.contains(&tmp.path().display().to_string()), "{e}");
    }
}
