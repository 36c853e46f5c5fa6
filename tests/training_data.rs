//! The training-data script (`scripts/fetch-training-data.sh`, whose work is done by
//! `scripts/training_data.py`): its tests in `scripts/test_training_data.py` build Qt resource
//! archives, boards and package trees of their own and check what comes out (extracted bytes,
//! reassembled pixels, disjoint deterministic splits, attribution rows). They run with the
//! Python venv holding Pillow that `scripts/setup.sh --test` makes (`.deps/data-venv`).

use std::path::Path;
use std::process::Command;

#[test]
fn training_data_script_passes_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".deps/data-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh --test (or scripts/fetch-training-data.sh --venv-only)",
        python.display()
    );
    let out = Command::new(&python)
        .arg("-B")
        .arg(root.join("scripts/test_training_data.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run scripts/test_training_data.py");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/test_training_data.py failed:\n{report}"
    );
    // unittest reports "Ran N tests": make sure the suite ran, not an empty one.
    let ran: usize = report
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no 'Ran N tests' line in:\n{report}"));
    assert!(ran >= 15, "only {ran} tests ran:\n{report}");
}
