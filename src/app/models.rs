//! `rsstyle models`: the models bundled in `models/`, with what they expect and their styles.

use std::path::{Path, PathBuf};

use anyhow::Result;
use gstrsstyle::model::{ManifestPatch, Model};

/// The folder of bundled models: `RSSTYLE_MODELS` if set, else the installed ones
/// (`PREFIX/lib/rsstyle/models`, see `scripts/install.sh`), else the project's `models/`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("RSSTYLE_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            gstrsstyle::install::installed_dirs()
                .into_iter()
                .map(|d| d.join("models"))
                .find(|d| d.is_dir())
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// Prints one line per model (and its styles), or says there are none.
pub fn list() -> Result<()> {
    let dir = models_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    if paths.is_empty() {
        println!("no models in {}", dir.display());
        return Ok(());
    }
    for path in paths {
        match Model::load(&path, None, &ManifestPatch::default()) {
            Ok(model) => {
                let m = &model.manifest;
                let name = path.file_stem().unwrap_or_default().to_string_lossy();
                let about = m.description.as_deref().unwrap_or("");
                println!("{name}: {} ({}) {about}", path.display(), m.input_range);
                if let Some(c) = &m.conditioning {
                    for (i, label) in c.labels.iter().enumerate() {
                        println!("  style {i}: {label}");
                    }
                }
            }
            Err(e) => println!("{}: unusable: {e}", path.display()),
        }
    }
    Ok(())
}
