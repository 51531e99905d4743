use async_trait::async_trait;
use sqlx::PgConnection;
use time::OffsetDateTime;
use user_core::domain::{SignInChallenge, TokenHash, TotpFactor, UserId};
use user_core::error::RepoError;
use user_core::ports::SecondFactorStore;
use uuid::Uuid;

use crate::retry::Db;
use crate::rows::{ChallengeRow, FactorRow, challenge_columns, factor_columns};

/// [`SecondFactorStore`] on PostgreSQL: the `totp_factors`, `recovery_codes`,
/// `trusted_devices` and `sign_in_challenges` tables, deleted with their user by
/// `ON DELETE CASCADE` (recovery codes with their factor).
///
/// Steps, recovery codes and challenges are spent by one conditional statement each, so of
/// concurrent calls exactly one wins (at READ COMMITTED the others wait for the row and find
/// it changed; at SERIALIZABLE they fail, are retried and find it changed). Whatever writes
/// recovery codes first locks the factor's row, so that writers of one user's codes run one
/// after the other.
#[derive(Debug, Clone)]
pub struct PostgresSecondFactorStore {
    db: Db,
}

impl PostgresSecondFactorStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    async fn user_exists(&self, user: Uuid) -> Result<bool, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
                    .bind(user)
                    .fetch_one(pool)
                    .await
            })
            .await
    }
}

/// Replaces the recovery codes of `user` with `codes`, in the caller's transaction, which
/// holds the lock on the user's factor. A code given twice is stored once.
async fn replace_codes(
    tx: &mut PgConnection,
    user: Uuid,
    codes: &[TokenHash],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    for code in codes {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2) \
             ON CONFLICT (user_id, code_hash) DO NOTHING",
        )
        .bind(user)
        .bind(code.as_bytes().as_slice())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl SecondFactorStore for PostgresSecondFactorStore {
    async fn factor(&self, user: UserId) -> Result<TotpFactor, RepoError> {
        let pool = &self.db.pool;
        let row: Option<FactorRow> = self
            .db
            .run(|| async move {
                sqlx::query_as(concat!(
                    "SELECT ",
                    factor_columns!(),
                    " FROM totp_factors WHERE user_id = $1"
                ))
                .bind(user.as_uuid())
                .fetch_optional(pool)
                .await
            })
            .await?;
        row.map(TotpFactor::from).ok_or(RepoError::NotFound)
    }

    async fn begin_enrolment(&self, factor: &TotpFactor) -> Result<bool, RepoError> {
        let pool = &self.db.pool;
        let user = factor.user_id.as_uuid();
        // A user deleted between the SELECT and the INSERT fails the foreign key: NotFound.
        let done = self
            .db
            .run(|| async move {
                sqlx::query(
                    "INSERT INTO totp_factors \
                     (user_id, sealed_secret, created_at, confirmed_at, last_used_step) \
                     SELECT id, $1, $2, NULL, NULL FROM users WHERE id = $3 \
                     ON CONFLICT (user_id) DO UPDATE SET \
                     sealed_secret = excluded.sealed_secret, created_at = excluded.created_at, \
                     confirmed_at = NULL, last_used_step = NULL \
                     WHERE totp_factors.confirmed_at IS NULL",
                )
                .bind(factor.sealed_secret.as_slice())
                .bind(factor.created_at)
                .bind(user)
                .execute(pool)
                .await
            })
            .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // Nothing written: no such user, or their factor is confirmed.
        if self.user_exists(user).await? {
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
        let pool = &self.db.pool;
        let user = user.as_uuid();
        let confirmed = self
            .db
            .run(|| async move {
                let mut tx = pool.begin().await?;
                // Locks the factor's row until the commit.
                let done = sqlx::query(
                    "UPDATE totp_factors SET confirmed_at = $1, last_used_step = $2 \
                     WHERE user_id = $3 AND confirmed_at IS NULL",
                )
                .bind(now)
                .bind(step)
                .bind(user)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                replace_codes(&mut tx, user, recovery_codes).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await?;
        if !confirmed {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn use_step(&self, user: UserId, step: i64) -> Result<bool, RepoError> {
        let pool = &self.db.pool;
        let user = user.as_uuid();
        let done = self
            .db
            .run(|| async move {
                sqlx::query(
                    "UPDATE totp_factors SET last_used_step = $1 \
                     WHERE user_id = $2 AND confirmed_at IS NOT NULL \
                     AND (last_used_step IS NULL OR last_used_step < $1)",
                )
                .bind(step)
                .bind(user)
                .execute(pool)
                .await
            })
            .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // Not recorded: a replayed step, or no confirmed factor.
        let confirmed = self
            .db
            .run(|| async move {
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM totp_factors \
                     WHERE user_id = $1 AND confirmed_at IS NOT NULL)",
                )
                .bind(user)
                .fetch_one(pool)
                .await
            })
            .await?;
        if confirmed {
            Ok(false)
        } else {
            Err(RepoError::NotFound)
        }
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery_codes: &[TokenHash],
    ) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let user = user.as_uuid();
        let replaced = self
            .db
            .run(|| async move {
                let mut tx = pool.begin().await?;
                let confirmed: Option<Uuid> = sqlx::query_scalar(
                    "SELECT user_id FROM totp_factors \
                     WHERE user_id = $1 AND confirmed_at IS NOT NULL FOR NO KEY UPDATE",
                )
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
                if confirmed.is_none() {
                    tx.rollback().await?;
                    return Ok(false);
                }
                replace_codes(&mut tx, user, recovery_codes).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await?;
        if !replaced {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn use_recovery_code(&self, user: UserId, code: &TokenHash) -> Result<bool, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2")
                    .bind(user.as_uuid())
                    .bind(code.as_bytes().as_slice())
                    .execute(pool)
                    .await
            })
            .await
            .map(|done| done.rows_affected() > 0)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, RepoError> {
        let pool = &self.db.pool;
        let n: i64 = self
            .db
            .run(|| async move {
                sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1")
                    .bind(user.as_uuid())
                    .fetch_one(pool)
                    .await
            })
            .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn remove(&self, user: UserId) -> Result<bool, RepoError> {
        let pool = &self.db.pool;
        let user = user.as_uuid();
        self.db
            .run(|| async move {
                let mut tx = pool.begin().await?;
                // The factor first (its recovery codes go with it, ON DELETE CASCADE), in
                // the order the code writers lock: the factor, then the codes.
                let factor = sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM trusted_devices WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(factor.rows_affected() > 0)
            })
            .await
    }

    async fn trust_device(
        &self,
        device: &TokenHash,
        user: UserId,
        until: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let done = self
            .db
            .run(|| async move {
                sqlx::query(
                    "INSERT INTO trusted_devices (device_hash, user_id, expires_at) \
                     SELECT $1, id, $2 FROM users WHERE id = $3 \
                     ON CONFLICT (device_hash, user_id) \
                     DO UPDATE SET expires_at = excluded.expires_at",
                )
                .bind(device.as_bytes().as_slice())
                .bind(until)
                .bind(user.as_uuid())
                .execute(pool)
                .await
            })
            .await?;
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
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM trusted_devices \
                     WHERE device_hash = $1 AND user_id = $2 AND expires_at > $3)",
                )
                .bind(device.as_bytes().as_slice())
                .bind(user.as_uuid())
                .bind(now)
                .fetch_one(pool)
                .await
            })
            .await
    }

    async fn create_challenge(
        &self,
        hash: &TokenHash,
        challenge: &SignInChallenge,
    ) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let done = self
            .db
            .run(|| async move {
                sqlx::query(
                    "INSERT INTO sign_in_challenges \
                     (hash, user_id, purpose, device_hash, created_at, expires_at) \
                     SELECT $1, id, $2, $3, $4, $5 FROM users WHERE id = $6",
                )
                .bind(hash.as_bytes().as_slice())
                .bind(challenge.purpose.as_str())
                .bind(challenge.device.as_ref().map(|d| d.as_bytes().as_slice()))
                .bind(challenge.created_at)
                .bind(challenge.expires_at)
                .bind(challenge.user_id.as_uuid())
                .execute(pool)
                .await
            })
            .await?;
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
        let pool = &self.db.pool;
        let row: Option<ChallengeRow> = self
            .db
            .run(|| async move {
                sqlx::query_as(concat!(
                    "SELECT ",
                    challenge_columns!(),
                    " FROM sign_in_challenges WHERE hash = $1 AND expires_at > $2"
                ))
                .bind(hash.as_bytes().as_slice())
                .bind(now)
                .fetch_optional(pool)
                .await
            })
            .await?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn consume_challenge(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<SignInChallenge, RepoError> {
        let pool = &self.db.pool;
        // An expired challenge stays for the purge.
        let row: Option<ChallengeRow> = self
            .db
            .run(|| async move {
                sqlx::query_as(concat!(
                    "DELETE FROM sign_in_challenges WHERE hash = $1 AND expires_at > $2 \
                     RETURNING ",
                    challenge_columns!()
                ))
                .bind(hash.as_bytes().as_slice())
                .bind(now)
                .fetch_optional(pool)
                .await
            })
            .await?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn purge(
        &self,
        expired_before: OffsetDateTime,
        pending_before: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        // Each batch repeats its condition outside the sub-select: a row changed meanwhile
        // (a mark renewed, an enrolment confirmed or restarted) is checked again as it is
        // now, and kept.
        let challenges = self
            .db
            .purge_in_batches(
                "DELETE FROM sign_in_challenges WHERE expires_at < $1 AND hash IN \
                 (SELECT hash FROM sign_in_challenges WHERE expires_at < $1 LIMIT $2)",
                expired_before,
            )
            .await?;
        let marks = self
            .db
            .purge_in_batches(
                "DELETE FROM trusted_devices WHERE expires_at < $1 \
                 AND (device_hash, user_id) IN (SELECT device_hash, user_id \
                 FROM trusted_devices WHERE expires_at < $1 LIMIT $2)",
                expired_before,
            )
            .await?;
        // A pending factor has no recovery codes: nothing cascades.
        let pending = self
            .db
            .purge_in_batches(
                "DELETE FROM totp_factors WHERE confirmed_at IS NULL AND created_at < $1 \
                 AND user_id IN (SELECT user_id FROM totp_factors \
                 WHERE confirmed_at IS NULL AND created_at < $1 LIMIT $2)",
                pending_before,
            )
            .await?;
        Ok(challenges + marks + pending)
    }
}
