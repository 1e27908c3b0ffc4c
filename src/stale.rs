//! Removing the temporary files of runs that were killed half-way.
//!
//! Every file abreport publishes is first written under a temporary name and renamed into
//! place; a run killed between the two leaves the temporary file behind, and nothing else
//! would ever remove it (25 kills left 26 MB). Each run therefore removes, before it writes,
//! the stale temporary files in the folders it writes — only names abreport makes, only files
//! older than any run could still be writing, only as deep as abreport's own layout goes,
//! never through a symbolic link. This module deletes nothing else.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// How a temporary file of abreport is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempName {
    /// `.<file>.tmp-<pid>`: `export::write_dir` and the outbox's `state.json`.
    Dotted,
    /// `<file>#<n>`: object_store's staging name, which the local run ledger writes through.
    Staged,
}

impl TempName {
    /// Whether `name` is a temporary file name of this kind.
    pub fn matches(self, name: &str) -> bool {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match self {
            TempName::Dotted => name
                .strip_prefix('.')
                .and_then(|rest| rest.rsplit_once(".tmp-"))
                .is_some_and(|(file, pid)| !file.is_empty() && digits(pid)),
            TempName::Staged => name.rsplit_once('#').is_some_and(|(file, n)| !file.is_empty() && digits(n)),
        }
    }
}

/// What a clean-up removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub files: usize,
    pub bytes: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, other: Removed) {
        self.files += other.files;
        self.bytes += other.bytes;
    }
}

/// Removes the files named like `kind` under `root` and up to `levels` folders below it whose
/// last change is older than `older_than`. A folder that does not exist or cannot be read is
/// skipped; a file that cannot be removed is logged and left.
pub fn remove(root: &Path, levels: usize, kind: TempName, older_than: Duration) -> Removed {
    let mut removed = Removed::default();
    let Ok(entries) = std::fs::read_dir(root) else { return removed };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        // Not followed: a link may lead out of the folders abreport writes.
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.is_dir() {
            if levels > 0 {
                removed += remove(&entry.path(), levels - 1, kind, older_than);
            }
            continue;
        }
        let name = entry.file_name();
        if !meta.is_file() || !name.to_str().is_some_and(|n| kind.matches(n)) {
            continue;
        }
        let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
        if age <= older_than {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                removed.files += 1;
                removed.bytes += meta.len();
            }
            Err(error) => {
                tracing::warn!(file = %entry.path().display(), %error, "cannot remove a stale temporary file");
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_abreports_own_temporary_names_match() {
        for name in [".report.html.tmp-4242", ".state.json.tmp-1", ".a.tmp-0"] {
            assert!(TempName::Dotted.matches(name), "{name}");
        }
        for name in ["report.html.tmp-1", ".report.html.tmp-", ".report.html.tmp-12a", ".tmp-12", "report.html"] {
            assert!(!TempName::Dotted.matches(name), "{name}");
        }
        assert!(TempName::Staged.matches("2026-11-20.json#3"));
        for name in ["2026-11-20.json", "#3", "a#b", "2026-11-20.json#"] {
            assert!(!TempName::Staged.matches(name), "{name}");
        }
    }

    #[test]
    fn stale_files_go_young_ones_and_deeper_folders_stay() {
        let dir = tempfile::tempdir().expect("temp dir");
        let plant = |relative: &str, age: u64| {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("folders");
            std::fs::write(&path, b"12345").expect("written");
            let file = std::fs::File::options().write(true).open(&path).expect("opens");
            file.set_modified(SystemTime::now() - Duration::from_secs(age)).expect("dated");
            path
        };
        let stale = plant("a/.x.tmp-1", 7200);
        let young = plant("a/.y.tmp-1", 10);
        let deep = plant("a/b/.z.tmp-1", 7200);
        let other = plant("a/z.tmp-1", 7200);
        let removed = remove(dir.path(), 1, TempName::Dotted, Duration::from_secs(3600));
        assert_eq!(removed, Removed { files: 1, bytes: 5 });
        assert!(!stale.exists() && young.exists() && deep.exists() && other.exists());
        assert_eq!(remove(&dir.path().join("missing"), 3, TempName::Dotted, Duration::ZERO), Removed::default());
    }
}
