//! The two backends every store test runs on: SQLite in a temporary folder, and a database of
//! its own in the test command's PostgreSQL cluster.

use std::fmt;

use cordon_store::Store;
use cordon_testpg::TestDatabase;

pub enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Backend {
    /// Opens the store (again, for a test of what survives a reopen).
    pub fn open(&self) -> Store {
        match self {
            Backend::Sqlite(dir) => Store::open(&dir.path().join("cordon.sqlite")).unwrap(),
            Backend::Postgres(database) => Store::open_postgres(&database.url()).unwrap(),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Sqlite(_) => write!(f, "sqlite"),
            Backend::Postgres(database) => write!(f, "postgres {}", database.name()),
        }
    }
}

/// A fresh store location on each backend.
pub fn backends() -> Vec<Backend> {
    vec![Backend::Sqlite(tempfile::tempdir().unwrap()), Backend::Postgres(TestDatabase::new().unwrap())]
}
