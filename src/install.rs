//! Where an installed rsstyle keeps its files.
//!
//! `scripts/install.sh` puts the ONNX Runtime library and the bundled models in
//! `PREFIX/lib/rsstyle/`, the `rsstyle` binary in `PREFIX/bin/`, and the plugin in a folder
//! GStreamer searches, beside a link `rsstyle` → `PREFIX/lib/rsstyle`. Code in either finds
//! that folder from the file it was loaded from, so an install works from any prefix without
//! environment variables.

use std::path::{Path, PathBuf};

/// The folders of installed files that apply to this process: `DIR/rsstyle` and
/// `DIR/../lib/rsstyle` for the folder DIR of the shared object this code was loaded from (the
/// plugin) and of the executable, those that exist.
pub fn installed_dirs() -> Vec<PathBuf> {
    let files = [loaded_from(), std::env::current_exe().ok()];
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in files.iter().flatten().filter_map(|f| f.parent()) {
        for candidate in [dir.join("rsstyle"), dir.join("../lib/rsstyle")] {
            if candidate.is_dir() && !dirs.contains(&candidate) {
                dirs.push(candidate);
            }
        }
    }
    dirs
}

/// The file (shared object or executable) this code was loaded from, as the dynamic loader
/// names it.
fn loaded_from() -> Option<PathBuf> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::uninit();
    let address = loaded_from as *const () as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables and fills `info`; on success dli_fname is a
    // NUL-terminated string owned by the loader, valid while the object stays loaded (this
    // code is in it).
    unsafe {
        if libc::dladdr(address, info.as_mut_ptr()) == 0 {
            return None;
        }
        let name = info.assume_init().dli_fname;
        if name.is_null() {
            return None;
        }
        let path = std::ffi::CStr::from_ptr(name).to_str().ok()?;
        (!path.is_empty()).then(|| Path::new(path).to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_code_is_found_in_the_test_executable() {
        // Unit tests link the library statically: the loader names the test binary.
        let file = loaded_from().unwrap();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            std::fs::canonicalize(&file).unwrap(),
            std::fs::canonicalize(&exe).unwrap()
        );
        // A build folder is no install.
        assert_eq!(installed_dirs(), Vec::<PathBuf>::new());
    }
}
