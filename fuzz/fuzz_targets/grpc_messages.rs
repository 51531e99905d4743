//! The gRPC wire types: arbitrary bytes decoded as each request message of `user.proto`
//! (the first thing an RPC does), and the crate's public domain-to-wire conversion
//! `From<User> for pb::User` on users built from fuzzed fields.
//!
//! Checks: no panic; a message that decodes re-encodes to a message that decodes to the same
//! value; a converted user carries the domain values unchanged (id, lowercase username and
//! email, role and status enums, display name, verification flag, timestamps with their
//! nanoseconds), and survives an encode/decode round trip.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use time::OffsetDateTime;
use user_core::domain::{DisplayName, Email, Role, User, UserId, UserStatus, Username};
use user_grpc::pb;

#[derive(Debug, Arbitrary)]
struct FuzzUser {
    id: u128,
    username: String,
    email: String,
    display_name: String,
    admin: bool,
    disabled: bool,
    verified: Option<i64>,
    created: (i64, u32),
    updated: (i64, u32),
}

#[derive(Debug, Arbitrary)]
enum Input {
    Bytes(u8, Vec<u8>),
    User(FuzzUser),
}

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(m) = M::decode(bytes) {
        let again = M::decode(m.encode_to_vec().as_slice()).expect("re-encoded message decodes");
        assert_eq!(again, m);
    }
}

fn instant((secs, nanos): (i64, u32)) -> Option<OffsetDateTime> {
    // Stay inside the years 0-9999 that any storage adapter keeps.
    let secs = secs.rem_euclid(253_402_300_800) - 62_167_219_200;
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()?
        .replace_nanosecond(nanos % 1_000_000_000)
        .ok()
}

fn user(f: FuzzUser) -> Option<User> {
    Some(User {
        id: uuid_from(f.id),
        username: Username::parse(&f.username).ok()?,
        email: Email::parse(&f.email).ok()?,
        display_name: DisplayName::parse(&f.display_name).ok()?,
        role: if f.admin { Role::Admin } else { Role::User },
        status: if f.disabled {
            UserStatus::Disabled
        } else {
            UserStatus::Active
        },
        email_verified_at: f.verified.and_then(|s| instant((s, 0))),
        created_at: instant(f.created)?,
        updated_at: instant(f.updated)?,
    })
}

fn uuid_from(n: u128) -> user_core::domain::UserId {
    // `UserId` has no public constructor from raw bits: go through its text form.
    let hex = format!("{n:032x}");
    hex.parse().expect("32 hex digits are a UUID")
}

fuzz_target!(|input: Input| {
    match input {
        Input::Bytes(kind, bytes) => match kind % 12 {
            0 => round_trip::<pb::RegisterUserRequest>(&bytes),
            1 => round_trip::<pb::LoginUserRequest>(&bytes),
            2 => round_trip::<pb::GetUserRequest>(&bytes),
            3 => round_trip::<pb::UpdateUserProfileRequest>(&bytes),
            4 => round_trip::<pb::RefreshTokenRequest>(&bytes),
            5 => round_trip::<pb::ChangePasswordRequest>(&bytes),
            6 => round_trip::<pb::DeleteAccountRequest>(&bytes),
            7 => round_trip::<pb::RevokeSessionRequest>(&bytes),
            8 => round_trip::<pb::ListUsersRequest>(&bytes),
            9 => round_trip::<pb::AdminUpdateUserRequest>(&bytes),
            10 => round_trip::<pb::SetRoleRequest>(&bytes),
            _ => round_trip::<pb::SetStatusRequest>(&bytes),
        },
        Input::User(f) => {
            let Some(u) = user(f) else { return };
            let wire = pb::User::from(u.clone());
            assert_eq!(wire.id, u.id.to_string());
            assert_eq!(wire.id.parse::<UserId>().ok(), Some(u.id));
            assert_eq!(wire.username, u.username.as_str());
            assert_eq!(wire.email, u.email.as_str());
            assert_eq!(
                Username::parse(&wire.username).as_ref(),
                Ok(&u.username),
                "wire username does not parse back"
            );
            assert_eq!(
                Email::parse(&wire.email).map_err(|e| e.code),
                Ok(u.email.clone())
            );
            let role = match u.role {
                Role::User => pb::Role::User,
                Role::Admin => pb::Role::Admin,
            };
            assert_eq!(wire.role, role as i32);
            let status = match u.status {
                UserStatus::Active => pb::Status::Active,
                UserStatus::Disabled => pb::Status::Disabled,
            };
            assert_eq!(wire.status, status as i32);
            assert_eq!(
                wire.display_name,
                u.display_name.as_ref().map_or("", DisplayName::as_str)
            );
            assert_eq!(wire.email_verified, u.email_verified_at.is_some());
            for (ts, t) in [
                (wire.created_at, u.created_at),
                (wire.updated_at, u.updated_at),
            ] {
                let ts = ts.expect("timestamps are always set");
                assert_eq!(ts.seconds, t.unix_timestamp());
                assert!((0..1_000_000_000).contains(&ts.nanos));
                assert_eq!(ts.nanos as u32, t.nanosecond());
            }
            let decoded = pb::User::decode(wire.encode_to_vec().as_slice()).expect("decodes");
            assert_eq!(decoded, wire);
        }
    }
});
