//! Headless Chromium driven by node and playwright-core: what the browser test and the
//! browser benches need, checked before they start.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{require_group, run};

/// Debian's Chromium, the one browser these tools drive.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Fails with the install line when node (18 or newer), Chromium or the npm packages in
/// `npm_dir` (a directory of the repository holding a package.json, e.g. `tests/browser`;
/// `marker` is one of its packages) are missing. `group` is the `scripts/install-deps.sh`
/// group that installs them.
pub fn require_browser_tools(npm_dir: &str, marker: &str, group: &str) {
    require_group("node", group);
    let v = run(
        Command::new("node").arg("--version"),
        Duration::from_secs(20),
    );
    let major = v
        .stdout
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    assert!(
        major.is_some_and(|m| m >= 18),
        "node {} is too old or broken (playwright-core needs 18 or newer): install a newer nodejs",
        v.stdout.trim()
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "`{CHROMIUM}` is missing: run `scripts/install-deps.sh {group}` (or: sudo apt-get install -y chromium)"
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        repo.join(npm_dir)
            .join("node_modules")
            .join(marker)
            .join("package.json")
            .exists(),
        "{npm_dir}/node_modules is missing: run `scripts/install-deps.sh {group}` (or: npm ci --prefix {npm_dir})"
    );
}
