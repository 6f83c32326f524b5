//! Bringing a store file up to this build's schema: the embedded migrations
//! (`migrations/sqlite/`, run by sqlx's migrator) and, before them, the repair
//! of a store that ran a migration which was edited after it shipped.
//!
//! sqlx records each applied migration in `_sqlx_migrations` with the SHA-384
//! of its SQL text and refuses a store whose recorded checksum differs from
//! the embedded one. A shipped migration must therefore never be edited (the
//! test `shipped_migrations_are_pinned` holds the checksum of each); the one
//! edit that did ship is repaired here, see [`KNOWN_EDITS`].

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Why a store's schema could not be brought up to this build's.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The store ran a text of this migration that this build does not ship,
    /// and no repair is known for it.
    #[error(
        "migration {version} applied to this store is not the one this build ships \
         (recorded SHA-384 {recorded}); it was edited after it shipped and no repair is known"
    )]
    Edited { version: i64, recorded: String },
    /// The store ran a migration this build does not have: a newer build wrote it.
    #[error(
        "migration {version} applied to this store is unknown to this build (a newer build wrote the store)"
    )]
    Unknown { version: i64 },
    /// An earlier run failed part-way through this migration.
    #[error(
        "migration {version} failed part-way in an earlier run; restore the store from a backup"
    )]
    Dirty { version: i64 },
    /// Running this migration failed; nothing of it was kept.
    #[error("migration {version} failed")]
    Failed {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    /// Repairing a known edit of this migration failed; nothing of it was kept.
    #[error("repairing the edited migration {version} failed")]
    Repair {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    /// `_sqlx_migrations` could not be read or written.
    #[error("the store's migration table could not be read or written")]
    Table(#[source] sqlx::Error),
    /// Anything else the migrator reports.
    #[error("migrations could not be run")]
    Migrator(#[source] MigrateError),
}

/// A migration edited after a build with its earlier text had already
/// created stores: how to bring such a store to what the shipped text makes.
pub(super) struct KnownEdit {
    pub version: i64,
    /// SHA-384 (hex) of the earlier text, as recorded in `_sqlx_migrations`.
    pub applied_sha384: &'static str,
    /// SHA-384 (hex) of the shipped text the repair leads to.
    pub shipped_sha384: &'static str,
    /// SQL turning the schema the earlier text made into the one the shipped
    /// text makes (statements written exactly as in the shipped text, so the
    /// repaired schema reads the same as a fresh store's).
    pub repair: &'static str,
}

/// Migrations edited after they shipped. There is one, from before shipped
/// migrations were pinned: `0002_delivery.sql` as first committed (2ea8e42)
/// had other delivery indexes than the text edited in 3d808be and shipped in
/// release 2, and stores made by builds in between refuse to open without
/// this repair. This table must never grow: `shipped_migrations_are_pinned`
/// fails when a shipped migration changes, so a schema change is always a new
/// migration that every store runs the same way.
pub(super) const KNOWN_EDITS: &[KnownEdit] = &[KnownEdit {
    version: 2,
    applied_sha384: "4b80d13df48e504221cb5b394dfc03e0f4a4ed46e02832956772c5c7e7f898e339ce78d3f2c3a866ee73ce9cf2f5262c",
    shipped_sha384: "5e5521aa11b59e54eeae357762cef0fb1746d86644650dd4d80a783e35b214a17fd0e67c2efef22c97eb8279cb2f9e90",
    repair: "
DROP INDEX deliveries_by_subject;
DROP INDEX deliveries_by_status;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_by_subject ON deliveries (destination, subject, status, id);
CREATE INDEX deliveries_in_order ON deliveries (destination, status, id);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
",
}];

/// Repair known edits, then run every migration not yet applied.
pub(super) async fn migrate(conn: &mut SqliteConnection) -> Result<(), MigrationError> {
    repair_known_edits(conn, &MIGRATOR, KNOWN_EDITS).await?;
    MIGRATOR.run(&mut *conn).await.map_err(classify)
}

/// The migrator's error as a [`MigrationError`] (both backends).
pub fn classify(e: MigrateError) -> MigrationError {
    match e {
        MigrateError::VersionMismatch(version) => MigrationError::Edited {
            version,
            recorded: "not read".into(),
        },
        MigrateError::VersionMissing(version) => MigrationError::Unknown { version },
        MigrateError::Dirty(version) => MigrationError::Dirty { version },
        MigrateError::ExecuteMigration(source, version) => {
            MigrationError::Failed { version, source }
        }
        other => MigrationError::Migrator(other),
    }
}

/// For each applied migration whose recorded checksum is not the embedded
/// one: repair it if it is a known edit (schema and checksum in one
/// transaction), otherwise refuse with [`MigrationError::Edited`].
pub(super) async fn repair_known_edits(
    conn: &mut SqliteConnection,
    migrator: &Migrator,
    edits: &[KnownEdit],
) -> Result<(), MigrationError> {
    let has_table = sqlx::query(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(MigrationError::Table)?
    .is_some();
    if !has_table {
        return Ok(());
    }
    let rows = sqlx::query("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .map_err(MigrationError::Table)?;
    for row in rows {
        let version: i64 = row.try_get("version").map_err(MigrationError::Table)?;
        let recorded: Vec<u8> = row.try_get("checksum").map_err(MigrationError::Table)?;
        let Some(embedded) = migrator
            .iter()
            .find(|m| m.version == version && !m.migration_type.is_down_migration())
        else {
            // Unknown to this build: the migrator reports it.
            continue;
        };
        if *embedded.checksum == *recorded {
            continue;
        }
        let recorded_hex = hex::encode(&recorded);
        let embedded_hex = hex::encode(&*embedded.checksum);
        let Some(edit) = edits.iter().find(|e| {
            e.version == version
                && e.applied_sha384 == recorded_hex
                && e.shipped_sha384 == embedded_hex
        }) else {
            return Err(MigrationError::Edited {
                version,
                recorded: recorded_hex,
            });
        };
        repair(conn, edit, &recorded, &embedded.checksum)
            .await
            .map_err(|source| MigrationError::Repair { version, source })?;
        tracing::warn!(
            version,
            "repaired a store that ran an edited migration: schema and checksum now those of the shipped text"
        );
    }
    Ok(())
}

async fn repair(
    conn: &mut SqliteConnection,
    edit: &KnownEdit,
    recorded: &[u8],
    shipped: &[u8],
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(edit.repair).execute(&mut *tx).await?;
    let updated =
        sqlx::query("UPDATE _sqlx_migrations SET checksum = ? WHERE version = ? AND checksum = ?")
            .bind(shipped)
            .bind(edit.version)
            .bind(recorded)
            .execute(&mut *tx)
            .await?;
    if updated.rows_affected() != 1 {
        // Someone else changed the row meanwhile; leave the store as it was.
        return Err(sqlx::Error::RowNotFound);
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sha2::{Digest, Sha384};
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    #[test]
    fn each_known_edit_leads_to_the_shipped_text() {
        for edit in KNOWN_EDITS {
            let shipped = MIGRATOR
                .iter()
                .find(|m| m.version == edit.version)
                .expect("the edited migration ships");
            assert_eq!(
                hex::encode(Sha384::digest(shipped.sql.as_bytes())),
                edit.shipped_sha384
            );
            assert_eq!(hex::encode(&*shipped.checksum), edit.shipped_sha384);
            assert_ne!(edit.applied_sha384, edit.shipped_sha384);
        }
    }

    /// A store with every migration applied and migration 2's checksum replaced.
    async fn store_with_checksum(dir: &std::path::Path, checksum: &[u8]) -> SqliteConnection {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(dir.join("gateway.db"))
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        MIGRATOR.run(&mut conn).await.unwrap();
        sqlx::query("UPDATE _sqlx_migrations SET checksum = ? WHERE version = 2")
            .bind(checksum)
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    }

    async fn checksum(conn: &mut SqliteConnection) -> Vec<u8> {
        sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 2")
            .fetch_one(conn)
            .await
            .unwrap()
    }

    async fn has_index(conn: &mut SqliteConnection, name: &str) -> bool {
        sqlx::query("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?")
            .bind(name)
            .fetch_optional(conn)
            .await
            .unwrap()
            .is_some()
    }

    fn edit(repair: &'static str) -> KnownEdit {
        KnownEdit {
            version: 2,
            applied_sha384: Box::leak(hex::encode([1u8; 48]).into_boxed_str()),
            shipped_sha384: KNOWN_EDITS[0].shipped_sha384,
            repair,
        }
    }

    #[tokio::test]
    async fn a_known_edit_is_repaired_with_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store_with_checksum(dir.path(), &[1; 48]).await;
        let edits = [edit(
            "DROP INDEX deliveries_in_order;
             CREATE INDEX deliveries_in_order ON deliveries (destination, status, id);",
        )];
        repair_known_edits(&mut conn, &MIGRATOR, &edits)
            .await
            .unwrap();
        assert_eq!(
            hex::encode(checksum(&mut conn).await),
            KNOWN_EDITS[0].shipped_sha384
        );
        MIGRATOR.run(&mut conn).await.unwrap();
    }

    #[tokio::test]
    async fn a_repair_that_fails_leaves_the_store_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store_with_checksum(dir.path(), &[1; 48]).await;
        let edits = [edit(
            "DROP INDEX deliveries_in_order; DROP INDEX no_such_index;",
        )];
        let err = repair_known_edits(&mut conn, &MIGRATOR, &edits)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MigrationError::Repair { version: 2, .. }),
            "{err:?}"
        );
        assert!(has_index(&mut conn, "deliveries_in_order").await);
        assert_eq!(checksum(&mut conn).await, vec![1; 48]);
    }

    #[tokio::test]
    async fn a_fresh_store_needs_no_repair() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(dir.path().join("gateway.db"))
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        migrate(&mut conn).await.unwrap();
        migrate(&mut conn).await.unwrap();
    }
}
