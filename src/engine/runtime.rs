//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! Search order: `ORT_DYLIB_PATH` (an error if it names no file), the copy
//! `scripts/install.sh` installs beside the plugin and the binary ([`crate::install`]), the
//! project-local copy that `scripts/setup.sh` installs (`.deps/onnxruntime/`), then the system
//! library path.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::EngineError;

/// Version of the ONNX Runtime library `scripts/setup.sh` installs.
pub const BUNDLED_VERSION: &str = "1.30.0";

/// The loaded ONNX Runtime library.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    pub path: PathBuf,
    pub version: String,
    environment: ort::environment::Environment,
}

impl RuntimeInfo {
    /// The process-wide ONNX Runtime environment sessions are built in.
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.environment
    }
}

static RUNTIME: OnceLock<Result<RuntimeInfo, String>> = OnceLock::new();

/// The project-local library installed by `scripts/setup.sh`.
pub fn project_library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".deps/onnxruntime")
        .join(format!("libonnxruntime.so.{BUNDLED_VERSION}"))
}

const FIX: &str =
    "run scripts/setup.sh, or set ORT_DYLIB_PATH to libonnxruntime.so of version 1.30 or newer";

/// Loads ONNX Runtime (first call) and returns it; later calls return the same result.
pub fn ort_library() -> Result<&'static RuntimeInfo, EngineError> {
    RUNTIME
        .get_or_init(load)
        .as_ref()
        .map_err(|e| EngineError::Runtime(e.clone()))
}

fn load() -> Result<RuntimeInfo, String> {
    let mut tried = Vec::new();
    let env_path = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty());
    let candidates: Vec<PathBuf> = match env_path {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.exists() {
                return Err(format!(
                    "ONNX Runtime library not found: ORT_DYLIB_PATH is '{}', which does not exist; {FIX}",
                    p.display()
                ));
            }
            vec![p]
        }
        None => {
            tried.push("ORT_DYLIB_PATH (not set)".to_string());
            let local = project_library();
            let installed = crate::install::installed_dirs()
                .into_iter()
                .map(|d| d.join(format!("libonnxruntime.so.{BUNDLED_VERSION}")))
                .find(|p| p.exists());
            if let Some(installed) = installed {
                vec![installed]
            } else if local.exists() {
                vec![local]
            } else {
                tried.push(format!("{} (missing)", local.display()));
                vec![
                    PathBuf::from("libonnxruntime.so"),
                    PathBuf::from("libonnxruntime.so.1"),
                ]
            }
        }
    };

    for path in &candidates {
        match ort::init_from(path) {
            Ok(builder) => {
                let environment = builder.with_name("rsstyle").build().map_err(|e| {
                    format!("ONNX Runtime at '{}' failed to start: {e}", path.display())
                })?;
                let version =
                    library_version(path).unwrap_or_else(|| "of unknown version".to_string());
                return Ok(RuntimeInfo {
                    path: path.clone(),
                    version,
                    environment,
                });
            }
            Err(ort::LoadDynamicError::Dlopen { path, .. }) if path.components().count() == 1 => {
                tried.push(format!(
                    "system library path ({}: not found)",
                    path.display()
                ));
            }
            Err(e) => return Err(describe_load_error(e)),
        }
    }
    Err(format!(
        "ONNX Runtime library not found; looked at: {}; {FIX}",
        tried.join(", ")
    ))
}

fn describe_load_error(e: ort::LoadDynamicError) -> String {
    match e {
        ort::LoadDynamicError::Dlopen { error, path } => {
            format!(
                "cannot load ONNX Runtime library '{}': {error}; {FIX}",
                path.display()
            )
        }
        ort::LoadDynamicError::MissingApi { path } => format!(
            "'{}' is not an ONNX Runtime library (it does not export OrtGetApiBase); {FIX}",
            path.display()
        ),
        ort::LoadDynamicError::BadVersion { version_str, path } => format!(
            "ONNX Runtime library '{}' is version {version_str}, but rsstyle needs 1.30 or newer; {FIX}",
            path.display()
        ),
        other => format!("cannot load ONNX Runtime: {other}; {FIX}"),
    }
}

/// The version the ONNX Runtime library at `path` reports (`OrtGetApiBase()->GetVersionString()`).
fn library_version(path: &Path) -> Option<String> {
    // SAFETY: ort has just loaded `path` as ONNX Runtime and checked that it exports
    // `OrtGetApiBase`; opening it again only bumps its reference count. The version string is
    // a static NUL-terminated string owned by the library, which stays loaded.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let get_api_base: libloading::Symbol<
            unsafe extern "C" fn() -> *const ort::sys::OrtApiBase,
        > = lib.get(b"OrtGetApiBase").ok()?;
        let base = get_api_base();
        if base.is_null() {
            return None;
        }
        let version = ((*base).GetVersionString)();
        (!version.is_null()).then(|| {
            std::ffi::CStr::from_ptr(version)
                .to_string_lossy()
                .into_owned()
        })
    }
}
