//! Where a secret file named in the configuration is read from.
//!
//! A relative file name (`secret_file = "secutix-secret"`) is looked up first in systemd's
//! `$CREDENTIALS_DIRECTORY` (`LoadCredential=` in the unit), so the same configuration works under systemd
//! and by hand. Every module that reads a secret file (SecuTix, the targets, the control token) resolves it
//! here.

use std::path::{Path, PathBuf};

/// Resolves a relative credential file name in systemd's `$CREDENTIALS_DIRECTORY` when it exists.
pub fn resolve_credential_path(name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_relative()
        && let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY")
    {
        let candidate = Path::new(&dir).join(p);
        if candidate.exists() {
            return candidate;
        }
    }
    p.to_path_buf()
}
