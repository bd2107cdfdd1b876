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

/// Folders the dynamic loader searches on its own (after rpath,
/// `LD_LIBRARY_PATH` and runpath): what is found only here is the base
/// image's job (libc, libstdc++, libm, ...).
const SYSTEM_DIRS: &[&str] = &[
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// The libraries `exe` needs, directly or through each other, that are found
/// through an rpath or runpath (the program's, or a library's own, `$ORIGIN`
/// expanded) or through this process's `LD_LIBRARY_PATH`: by name as the
/// program and libraries ask for them. Libraries found only in the system's
/// folders (libc, libstdc++, ...) are left to the base image; [`CUDA_SHIM`]
/// is not followed. A library found nowhere is an error that names it: an
/// image without it would not start.
pub fn bundled_libraries(exe: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let env_dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).filter(|d| !d.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    let mut found = BTreeMap::new();
    // Folders named by every file read so far: an rpath reaches the
    // dependencies of dependencies, as the loader's does.
    let mut dirs: Vec<PathBuf> = Vec::new();
    // Names not found yet, with the first file that needs each: a folder
    // named by a file read later may still hold them.
    let mut unresolved: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut queue = vec![exe.to_path_buf()];
    // Read every file found so far, then look for what they need in every
    // folder they name; until a round finds nothing new.
    loop {
        while let Some(file) = queue.pop() {
            let (needed, search) = read_dynamic(&file)?;
            for dir in search {
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            for name in needed {
                if name != CUDA_SHIM && !found.contains_key(&name) {
                    unresolved.entry(name).or_insert_with(|| file.clone());
                }
            }
        }
        let located: Vec<(String, PathBuf)> = unresolved
            .keys()
            .filter_map(|name| find(name, dirs.iter().chain(&env_dirs)).map(|p| (name.clone(), p)))
            .collect();
        if located.is_empty() {
            break;
        }
        for (name, path) in located {
            unresolved.remove(&name);
            queue.push(path.clone());
            found.insert(name, path);
        }
    }
    let missing: Vec<String> = unresolved
        .iter()
        .filter(|(name, _)| find(name, SYSTEM_DIRS).is_none())
        .map(|(name, by)| format!("{name} (needed by {})", by.display()))
        .collect();
    if !missing.is_empty() {
        return Err(Error::config(
            "server_exe",
            format!(
                "cannot find {}: not in the rpath or runpath of the program or its libraries, LD_LIBRARY_PATH or the system's \
                 library folders, so the image would not start; build cvtk with its rpath (crates/cvtk-build does this), \
                 or run this with LD_LIBRARY_PATH naming the folder that holds it",
                missing.join(", ")
            ),
        ));
    }
    Ok(found)
}

/// The first `dir/name` that is a file.
fn find(name: &str, dirs: impl IntoIterator<Item = impl AsRef<Path>>) -> Option<PathBuf> {
    dirs.into_iter().map(|d| d.as_ref().join(name)).find(|p| p.is_file())
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

    /// `gcc` builds a program that needs `libcvtkgone.so` from `lib/`, with
    /// or without an rpath to it; the library is then removed where `remove`.
    fn program_needing_a_library(dir: &Path, rpath: bool, remove: bool) -> PathBuf {
        let lib = dir.join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(dir.join("gone.c"), "int gone(void) { return 7; }\n").unwrap();
        std::fs::write(dir.join("main.c"), "int gone(void);\nint main(void) { return gone(); }\n").unwrap();
        let gcc = |args: &[&str]| {
            let out =
                std::process::Command::new("gcc").current_dir(dir).args(args).output().unwrap_or_else(|e| {
                    panic!("this test needs gcc (a fresh machine has it; apt-get install gcc): {e}")
                });
            assert!(out.status.success(), "gcc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        gcc(&["-shared", "-fPIC", "-o", "lib/libcvtkgone.so", "gone.c"]);
        let mut link = vec!["-o", "main", "main.c", "-Llib", "-lcvtkgone"];
        if rpath {
            link.push("-Wl,-rpath,$ORIGIN/lib");
        }
        gcc(&link);
        if remove {
            std::fs::remove_file(lib.join("libcvtkgone.so")).unwrap();
        }
        dir.join("main")
    }

    #[test]
    fn a_library_found_through_the_programs_rpath_is_bundled() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = program_needing_a_library(tmp.path(), true, false);
        let libs = bundled_libraries(&exe).unwrap();
        assert_eq!(libs.get("libcvtkgone.so"), Some(&tmp.path().join("lib/libcvtkgone.so")), "{libs:?}");
    }

    #[test]
    fn a_library_found_nowhere_is_an_error_naming_it_and_what_needs_it() {
        let tmp = tempfile::tempdir().unwrap();
        // Removed after linking; or present, but where nothing points.
        for (rpath, remove) in [(true, true), (false, false)] {
            let dir = tmp.path().join(format!("rpath-{rpath}"));
            let exe = program_needing_a_library(&dir, rpath, remove);
            let e = bundled_libraries(&exe).unwrap_err().to_string();
            assert!(e.contains("cannot find libcvtkgone.so"), "{e}");
            assert!(e.contains(&exe.display().to_string()) && e.contains("LD_LIBRARY_PATH"), "{e}");
        }
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused_with_its_name() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b"#!/bin/sh\n").unwrap();
        let e = bundled_libraries(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("not an ELF") && e.contains(&tmp.path().display().to_string()), "{e}");
    }
}
