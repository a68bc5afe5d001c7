//! Where the register keeps its secrets (the register credential, the staff session's refresh
//! token): the OS keyring through the `keyring` crate; where no keyring works (a headless
//! machine without a session keyring), a file readable only by its owner (0600), chosen loudly
//! and reported by [`SecretStore::backend`], never silently.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// A secret value whose `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which store holds the secrets, for the status screen and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Keyring,
    /// The documented fallback: files with mode 0600 in a 0700 directory.
    File,
    /// Tests only: nothing survives the process.
    Memory,
}

/// Named secrets of one register.
pub trait SecretStore: Send + Sync + fmt::Debug {
    fn get(&self, name: &str) -> Result<Option<Secret>>;
    fn set(&self, name: &str, value: &Secret) -> Result<()>;
    fn delete(&self, name: &str) -> Result<()>;
    fn backend(&self) -> Backend;
}

/// The OS keyring (Secret Service, macOS Keychain, Windows Credential Manager, or the Linux
/// kernel keyring with `linux-native`).
#[derive(Debug)]
pub struct KeyringStore {
    service: String,
}

impl KeyringStore {
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
        }
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry> {
        keyring::Entry::new(&self.service, name).map_err(|e| Error::Secrets(e.to_string()))
    }

    /// Writes, reads back and deletes a probe: does this keyring really work here?
    pub fn works(&self) -> bool {
        let probe = Secret::new(uuid::Uuid::now_v7().to_string());
        let round_trip = self.set("probe", &probe).and_then(|()| self.get("probe"));
        let ok = matches!(round_trip, Ok(Some(ref got)) if *got == probe);
        let _ = self.delete("probe");
        ok
    }
}

impl SecretStore for KeyringStore {
    fn get(&self, name: &str) -> Result<Option<Secret>> {
        match self.entry(name)?.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(Error::Secrets(e.to_string())),
        }
    }
    fn set(&self, name: &str, value: &Secret) -> Result<()> {
        self.entry(name)?
            .set_password(value.expose())
            .map_err(|e| Error::Secrets(e.to_string()))
    }
    fn delete(&self, name: &str) -> Result<()> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(Error::Secrets(e.to_string())),
        }
    }
    fn backend(&self) -> Backend {
        Backend::Keyring
    }
}

/// The fallback: one file per secret, mode 0600, in a directory of mode 0700.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Secrets(format!("creating {}: {e}", dir.display())))?;
        restrict(dir, 0o700)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::Secrets(format!("bad secret name {name:?}")));
        }
        Ok(self.dir.join(name))
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::Secrets(format!("restricting {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

impl SecretStore for FileStore {
    fn get(&self, name: &str) -> Result<Option<Secret>> {
        match std::fs::read_to_string(self.path(name)?) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Secrets(format!("reading {name}: {e}"))),
        }
    }
    fn set(&self, name: &str, value: &Secret) -> Result<()> {
        let path = self.path(name)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, "").map_err(|e| Error::Secrets(format!("writing {name}: {e}")))?;
        restrict(&tmp, 0o600)?;
        std::fs::write(&tmp, value.expose())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Secrets(format!("writing {name}: {e}")))
    }
    fn delete(&self, name: &str) -> Result<()> {
        match std::fs::remove_file(self.path(name)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Secrets(format!("deleting {name}: {e}"))),
        }
    }
    fn backend(&self) -> Backend {
        Backend::File
    }
}

/// Secrets in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    values: Mutex<std::collections::HashMap<String, Secret>>,
}

impl SecretStore for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<Secret>> {
        let values = self
            .values
            .lock()
            .map_err(|_| Error::Secrets("poisoned".into()))?;
        Ok(values.get(name).cloned())
    }
    fn set(&self, name: &str, value: &Secret) -> Result<()> {
        let mut values = self
            .values
            .lock()
            .map_err(|_| Error::Secrets("poisoned".into()))?;
        values.insert(name.to_owned(), value.clone());
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<()> {
        let mut values = self
            .values
            .lock()
            .map_err(|_| Error::Secrets("poisoned".into()))?;
        values.remove(name);
        Ok(())
    }
    fn backend(&self) -> Backend {
        Backend::Memory
    }
}

/// The keyring when it works here, else the 0600 file store under `fallback_dir`, with a
/// warning in the log; the caller shows [`SecretStore::backend`] on the status screen.
pub fn choose(service: &str, fallback_dir: &Path) -> Result<Box<dyn SecretStore>> {
    let keyring = KeyringStore::new(service);
    if keyring.works() {
        return Ok(Box::new(keyring));
    }
    tracing::warn!(
        dir = %fallback_dir.display(),
        "no working OS keyring: keeping the register's secrets in owner-only (0600) files"
    );
    Ok(Box::new(FileStore::new(fallback_dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    /// The OS keyring where it works here (e.g. under `keyctl session -`), else the file store:
    /// either way the chosen store keeps and forgets a secret.
    #[test]
    fn the_chosen_store_round_trips_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let service = format!("kassa-register-test-{}", uuid::Uuid::now_v7());
        let store = choose(&service, &dir.path().join("secrets")).unwrap();
        eprintln!("secret store on this machine: {:?}", store.backend());
        store.set("refresh-token", &Secret::new("r1")).unwrap();
        assert_eq!(store.get("refresh-token").unwrap(), Some(Secret::new("r1")));
        store.set("refresh-token", &Secret::new("r2")).unwrap();
        assert_eq!(store.get("refresh-token").unwrap(), Some(Secret::new("r2")));
        store.delete("refresh-token").unwrap();
        assert_eq!(store.get("refresh-token").unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_fallback_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(&dir.path().join("secrets")).unwrap();
        store.set("refresh-token", &Secret::new("abc")).unwrap();
        let mode = std::fs::metadata(dir.path().join("secrets/refresh-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            store.get("refresh-token").unwrap(),
            Some(Secret::new("abc"))
        );
        store.delete("refresh-token").unwrap();
        assert_eq!(store.get("refresh-token").unwrap(), None);
        assert!(store.set("../x", &Secret::new("no")).is_err());
    }
}
