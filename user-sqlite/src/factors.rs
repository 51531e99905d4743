use async_trait::async_trait;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use user_core::domain::{SignInChallenge, TokenHash, TotpFactor, UserId};
use user_core::error::RepoError;
use user_core::ports::SecondFactorStore;

use crate::map_db_err;
use crate::rows::{ChallengeRow, FactorRow, challenge_columns, factor_columns, to_db};

/// [`SecondFactorStore`] on SQLite: the `totp_factors`, `recovery_codes`, `trusted_devices`
/// and `sign_in_challenges` tables, deleted with their user by `ON DELETE CASCADE` (recovery
/// codes with their factor). Each change is one statement, or one transaction whose first
/// statement writes, so that it holds the write lock from the start.
#[derive(Debug, Clone)]
pub struct SqliteSecondFactorStore {
    pool: SqlitePool,
}

impl SqliteSecondFactorStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn user_exists(&self, user: UserId) -> Result<bool, RepoError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = ?")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?;
        Ok(found.is_some())
    }
}

/// Stores `codes` as the recovery codes of `user` (whose old codes are gone already).
/// A code given twice is stored once.
async fn insert_codes(
    tx: &mut sqlx::SqliteConnection,
    user: UserId,
    codes: &[TokenHash],
) -> Result<(), RepoError> {
    let user = user.to_string();
    for code in codes {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?) \
             ON CONFLICT (user_id, code_hash) DO NOTHING",
        )
        .bind(&user)
        .bind(code.as_bytes().as_slice())
        .execute(&mut *tx)
        .await
        .map_err(map_db_err)?;
    }
    Ok(())
}

#[async_trait]
impl SecondFactorStore for SqliteSecondFactorStore {
    async fn factor(&self, user: UserId) -> Result<TotpFactor, RepoError> {
        let row: Option<FactorRow> = sqlx::query_as(concat!(
            "SELECT ",
            factor_columns!(),
            " FROM totp_factors WHERE user_id = ?"
        ))
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db_err)?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn begin_enrolment(&self, factor: &TotpFactor) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "INSERT INTO totp_factors \
             (user_id, sealed_secret, created_at, confirmed_at, last_used_step) \
             SELECT id, ?, ?, NULL, NULL FROM users WHERE id = ? \
             ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
             created_at = excluded.created_at, confirmed_at = NULL, last_used_step = NULL \
             WHERE totp_factors.confirmed_at IS NULL",
        )
        .bind(factor.sealed_secret.as_slice())
        .bind(to_db(factor.created_at))
        .bind(factor.user_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_db_err)?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // Nothing written: no such user, or their factor is confirmed.
        if self.user_exists(factor.user_id).await? {
            Ok(false)
        } else {
            Err(RepoError::NotFound)
        }
    }

    async fn confirm_enrolment(
        &self,
        user: UserId,
        step: i64,
        recovery_codes: &[TokenHash],
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_db_err)?;
        let confirmed = sqlx::query(
            "UPDATE totp_factors SET confirmed_at = ?, last_used_step = ? \
             WHERE user_id = ? AND confirmed_at IS NULL",
        )
        .bind(to_db(now))
        .bind(step)
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_db_err)?;
        if confirmed.rows_affected() == 0 {
            // No pending factor: dropping `tx` rolls back (nothing was written anyway).
            return Err(RepoError::NotFound);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        insert_codes(&mut tx, user, recovery_codes).await?;
        tx.commit().await.map_err(map_db_err)
    }

    async fn use_step(&self, user: UserId, step: i64) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "UPDATE totp_factors SET last_used_step = ? \
             WHERE user_id = ? AND confirmed_at IS NOT NULL \
             AND (last_used_step IS NULL OR last_used_step < ?)",
        )
        .bind(step)
        .bind(user.to_string())
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(map_db_err)?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // Not recorded: a replayed step, or no confirmed factor.
        let confirmed: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM totp_factors WHERE user_id = ? AND confirmed_at IS NOT NULL",
        )
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db_err)?;
        match confirmed {
            Some(_) => Ok(false),
            None => Err(RepoError::NotFound),
        }
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery_codes: &[TokenHash],
    ) -> Result<(), RepoError> {
        // Writes first: the delete takes the write lock, so the check below stays true until
        // the commit.
        let mut tx = self.pool.begin().await.map_err(map_db_err)?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        let confirmed: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM totp_factors WHERE user_id = ? AND confirmed_at IS NOT NULL",
        )
        .bind(user.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_db_err)?;
        if confirmed.is_none() {
            // Dropping `tx` rolls the delete back.
            return Err(RepoError::NotFound);
        }
        insert_codes(&mut tx, user, recovery_codes).await?;
        tx.commit().await.map_err(map_db_err)
    }

    async fn use_recovery_code(&self, user: UserId, code: &TokenHash) -> Result<bool, RepoError> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ? AND code_hash = ?")
            .bind(user.to_string())
            .bind(code.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(map_db_err)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, RepoError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?")
            .bind(user.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(map_db_err)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn remove(&self, user: UserId) -> Result<bool, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_db_err)?;
        // The recovery codes go with the factor (ON DELETE CASCADE).
        let factor = sqlx::query("DELETE FROM totp_factors WHERE user_id = ?")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        sqlx::query("DELETE FROM trusted_devices WHERE user_id = ?")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        tx.commit().await.map_err(map_db_err)?;
        Ok(factor.rows_affected() > 0)
    }

    async fn trust_device(
        &self,
        device: &TokenHash,
        user: UserId,
        until: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let done = sqlx::query(
            "INSERT INTO trusted_devices (device_hash, user_id, expires_at) \
             SELECT ?, id, ? FROM users WHERE id = ? \
             ON CONFLICT (device_hash, user_id) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(device.as_bytes().as_slice())
        .bind(to_db(until))
        .bind(user.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_db_err)?;
        if done.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn is_trusted(
        &self,
        device: &TokenHash,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM trusted_devices \
             WHERE device_hash = ? AND user_id = ? AND expires_at > ?",
        )
        .bind(device.as_bytes().as_slice())
        .bind(user.to_string())
        .bind(to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db_err)?;
        Ok(found.is_some())
    }

    async fn create_challenge(
        &self,
        hash: &TokenHash,
        challenge: &SignInChallenge,
    ) -> Result<(), RepoError> {
        let done = sqlx::query(
            "INSERT INTO sign_in_challenges \
             (hash, user_id, purpose, device_hash, created_at, expires_at) \
             SELECT ?, id, ?, ?, ?, ? FROM users WHERE id = ?",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(challenge.purpose.as_str())
        .bind(challenge.device.as_ref().map(|d| d.as_bytes().as_slice()))
        .bind(to_db(challenge.created_at))
        .bind(to_db(challenge.expires_at))
        .bind(challenge.user_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_db_err)?;
        if done.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn find_challenge(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<SignInChallenge, RepoError> {
        let row: Option<ChallengeRow> = sqlx::query_as(concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM sign_in_challenges WHERE hash = ? AND expires_at > ?"
        ))
        .bind(hash.as_bytes().as_slice())
        .bind(to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db_err)?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn consume_challenge(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<SignInChallenge, RepoError> {
        // An expired challenge stays for the purge.
        let row: Option<ChallengeRow> = sqlx::query_as(concat!(
            "DELETE FROM sign_in_challenges WHERE hash = ? AND expires_at > ? RETURNING ",
            challenge_columns!()
        ))
        .bind(hash.as_bytes().as_slice())
        .bind(to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db_err)?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn purge(
        &self,
        expired_before: OffsetDateTime,
        pending_before: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_db_err)?;
        let mut purged = 0;
        for (sql, before) in [
            (
                "DELETE FROM sign_in_challenges WHERE expires_at < ?",
                expired_before,
            ),
            (
                "DELETE FROM trusted_devices WHERE expires_at < ?",
                expired_before,
            ),
            (
                // A pending factor has no recovery codes: nothing cascades.
                "DELETE FROM totp_factors WHERE confirmed_at IS NULL AND created_at < ?",
                pending_before,
            ),
        ] {
            purged += sqlx::query(sql)
                .bind(to_db(before))
                .execute(&mut *tx)
                .await
                .map_err(map_db_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(map_db_err)?;
        Ok(purged)
    }
}
