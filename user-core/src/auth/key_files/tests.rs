use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};

use super::*;
use crate::auth::{AuthPolicy, AuthService, Credentials, RegisterUser};
use crate::domain::ClientInfo;
use crate::error::AuthError;
use crate::testing::{FixedClock, memory_ports};

const PW: &str = "correct horse battery staple";

fn key_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_missing_key_is_made_once_owner_only_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "signing-key.pem");
    let made = load_or_create_signing_key(&path).unwrap();
    #[cfg(unix)]
    assert_eq!(mode_of(&path), 0o600);
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");

    let again = load_or_create_signing_key(&path).unwrap();
    assert_eq!(again.kid(), made.kid(), "the stored key, not a new one");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        pem,
        "never rewritten"
    );
}

#[test]
fn private_files_are_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "export.jsonl");
    std::fs::write(&path, "keep me").unwrap();
    let err = create_private_file(&path).unwrap_err();
    assert!(
        matches!(&err, KeyFileError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");

    let fresh = key_path(&dir, "new.jsonl");
    drop(create_private_file(&fresh).unwrap());
    #[cfg(unix)]
    assert_eq!(mode_of(&fresh), 0o600);
}

#[cfg(unix)]
#[test]
fn a_key_group_or_others_can_access_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "signing-key.pem");
    load_or_create_signing_key(&path).unwrap();
    for shared in [0o644, 0o640, 0o604, 0o620] {
        set_mode(&path, shared);
        let err = load_or_create_signing_key(&path).unwrap_err();
        assert!(
            matches!(err, KeyFileError::Shared { mode, .. } if mode == shared),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("chmod 600 {}", path.display())),
            "{message}"
        );
        assert!(
            matches!(read_verifying_key(&path), Err(KeyFileError::Shared { .. })),
            "a previous private key is checked too"
        );
    }
    set_mode(&path, 0o600);
    load_or_create_signing_key(&path).unwrap();
}

#[test]
fn a_file_without_a_key_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "signing-key.pem");
    create_private_file(&path).unwrap();
    let err = load_or_create_signing_key(&path).unwrap_err();
    assert!(matches!(err, KeyFileError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&path.display().to_string()));
    let err = read_verifying_key(&path).unwrap_err();
    assert!(matches!(err, KeyFileError::Invalid { .. }), "{err:?}");
}

#[cfg(unix)]
#[test]
fn the_data_folder_is_made_owner_only_and_an_existing_one_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a/data");
    create_private_dir(&data).unwrap();
    assert_eq!(mode_of(&data), 0o700);
    set_mode(&data, 0o750);
    create_private_dir(&data).unwrap();
    assert_eq!(mode_of(&data), 0o750, "the operator's choice stays");
}

#[test]
fn a_public_half_verifies_with_the_signing_keys_kid() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate_ed25519().unwrap();
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let public = ed25519_dalek::SigningKey::from_pkcs8_pem(key.to_pem().unwrap().expose_secret())
        .unwrap()
        .verifying_key();
    let pem = {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        public.to_public_key_pem(Default::default()).unwrap()
    };
    let path = key_path(&dir, "previous.pub.pem");
    std::fs::write(&path, pem).unwrap();
    assert_eq!(read_verifying_key(&path).unwrap().kid(), key.kid());
}

fn auth(ports: &crate::Ports, key: &SigningKey, previous: Vec<VerifyingKey>) -> AuthService {
    AuthService::new(ports.clone(), AuthPolicy::default(), key, previous).unwrap()
}

async fn access_token(auth: &AuthService) -> String {
    let tokens = auth
        .login(
            Credentials::new("alice", SecretString::from(PW)),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    tokens.access_token.expose_secret().to_owned()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let current = key_path(&dir, "signing-key.pem");
    let ports = memory_ports(Arc::new(FixedClock::default()));

    let old_key = load_or_create_signing_key(&current).unwrap();
    let before = auth(&ports, &old_key, vec![]);
    before
        .register(
            RegisterUser {
                username: "alice".into(),
                email: "alice@example.com".into(),
                password: SecretString::from(PW),
                display_name: None,
            },
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let old_token = access_token(&before).await;

    // The operator's rotation: the key moves aside and a new one is made in its place.
    let previous = key_path(&dir, "signing-key.previous.pem");
    std::fs::rename(&current, &previous).unwrap();
    let new_key = load_or_create_signing_key(&current).unwrap();
    assert_ne!(new_key.kid(), old_key.kid());
    let after = auth(
        &ports,
        &new_key,
        vec![read_verifying_key(&previous).unwrap()],
    );

    let actor = after.authenticate(&old_token).await;
    assert!(
        actor.is_ok(),
        "a token of the old key still works: {actor:?}"
    );
    let kids: Vec<_> = after.jwks().keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids, [new_key.kid(), old_key.kid()]);
    let new_token = access_token(&after).await;
    assert_eq!(kid_of(&new_token), new_key.kid(), "only the new key signs");
    assert!(after.authenticate(&new_token).await.is_ok());

    // Without the previous key, its tokens are refused.
    let dropped = auth(&ports, &new_key, vec![]);
    assert!(matches!(
        dropped.authenticate(&old_token).await,
        Err(AuthError::Unauthenticated)
    ));
}

fn public_pem_of(key: &SigningKey) -> String {
    use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
    ed25519_dalek::SigningKey::from_pkcs8_pem(key.to_pem().unwrap().expose_secret())
        .unwrap()
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap()
}

#[cfg(unix)]
#[test]
fn a_public_key_group_or_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate_ed25519().unwrap();
    let path = key_path(&dir, "previous.pub.pem");
    std::fs::write(&path, public_pem_of(&key)).unwrap();
    for writable in [0o666, 0o646, 0o664, 0o620, 0o602] {
        set_mode(&path, writable);
        let err = read_verifying_key(&path).unwrap_err();
        assert!(
            matches!(err, KeyFileError::Writable { mode, .. } if mode == writable),
            "{writable:03o}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("chmod go-w {}", path.display())),
            "{message}"
        );
    }
    set_mode(&path, 0o644);
    assert_eq!(
        read_verifying_key(&path).unwrap().kid(),
        key.kid(),
        "anyone may read it"
    );
}

#[cfg(unix)]
#[test]
fn key_files_are_not_read_through_symbolic_links() {
    let dir = tempfile::tempdir().unwrap();
    let real = key_path(&dir, "real-key.pem");
    let key = load_or_create_signing_key(&real).unwrap();
    let public = key_path(&dir, "real.pub.pem");
    std::fs::write(&public, public_pem_of(&key)).unwrap();
    let link = key_path(&dir, "signing-key.pem");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let public_link = key_path(&dir, "previous.pub.pem");
    std::os::unix::fs::symlink(&public, &public_link).unwrap();

    for err in [
        load_or_create_signing_key(&link).map(|_| ()).unwrap_err(),
        read_signing_key(&link).map(|_| ()).unwrap_err(),
        read_verifying_key(&link).map(|_| ()).unwrap_err(),
        read_verifying_key(&public_link).map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(&err, KeyFileError::Invalid { reason, .. } if reason.contains("symbolic link")),
            "{err:?}"
        );
    }
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        real,
        "the link is left alone"
    );

    // A dangling link is not taken for a missing key either.
    std::fs::remove_file(&real).unwrap();
    let err = load_or_create_signing_key(&link).map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, KeyFileError::Invalid { reason, .. } if reason.contains("symbolic link")),
        "{err:?}"
    );
    assert!(!real.exists(), "no key is written through the link");
}

#[cfg(unix)]
#[test]
fn a_key_file_of_another_user_is_refused() {
    let euid = rustix::process::geteuid().as_raw();
    let dir = tempfile::tempdir().unwrap();
    let private = key_path(&dir, "signing-key.pem");
    load_or_create_signing_key(&private).unwrap();
    let key = read_signing_key(&private).unwrap();
    let public = key_path(&dir, "previous.pub.pem");
    std::fs::write(&public, public_pem_of(&key)).unwrap();
    let (private, public, other) = if euid == 0 {
        // Root may give the files away.
        let other = 65_534;
        std::os::unix::fs::chown(&private, Some(other), None).unwrap();
        std::os::unix::fs::chown(&public, Some(other), None).unwrap();
        (private, public, other)
    } else {
        // Anyone else finds root's files, such as the root folder.
        (PathBuf::from("/"), PathBuf::from("/"), 0)
    };
    for err in [
        read_signing_key(&private).map(|_| ()).unwrap_err(),
        read_verifying_key(&private).map(|_| ()).unwrap_err(),
        read_verifying_key(&public).map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(err, KeyFileError::NotOwned { owner, expected, .. } if owner == other && expected == euid),
            "{err:?}"
        );
    }
}

/// Six threads start at once, twenty times over, each loading or making the key at `name`
/// and describing what it got with `load`: all get the same key, the file holds it, and no
/// temporary file is left.
fn racing_starts_share_one_complete(
    name: &str,
    load: fn(&Path) -> String,
    read: fn(&Path) -> String,
) {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(&dir, name);
        let start = std::sync::Barrier::new(6);
        let keys: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        load(&path)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        assert!(keys.iter().all(|key| *key == keys[0]), "one key for all");
        assert_eq!(read(&path), keys[0]);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [name], "no temporary file is left");
    }
}

#[test]
fn racing_starts_share_one_complete_key() {
    racing_starts_share_one_complete(
        "signing-key.pem",
        |path| load_or_create_signing_key(path).unwrap().kid().to_owned(),
        |path| read_signing_key(path).unwrap().kid().to_owned(),
    );
}

#[test]
fn a_key_path_that_cannot_be_inspected_is_not_taken_for_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = key_path(&dir, "not-a-folder");
    std::fs::write(&file, "").unwrap();
    let err = load_or_create_signing_key(&file.join("signing-key.pem")).unwrap_err();
    assert!(
        matches!(
            err,
            KeyFileError::Io {
                action: "look for the signing key",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_key_that_cannot_be_written_is_an_error_not_a_read() {
    let dir = tempfile::tempdir().unwrap();
    // The folder is missing: the key cannot be made there, and nothing is to be read.
    let missing = dir.path().join("missing");
    let is_create_not_found = |err: &KeyFileError| {
        matches!(err, KeyFileError::Io { action: "create", source, .. }
            if source.kind() == std::io::ErrorKind::NotFound)
    };
    let err = load_or_create_signing_key(&missing.join("signing-key.pem")).unwrap_err();
    assert!(is_create_not_found(&err), "{err:?}");
    let err = load_or_create_factor_key(&missing.join("factor-key")).unwrap_err();
    assert!(is_create_not_found(&err), "{err:?}");
    assert!(!missing.exists(), "nothing made on the way");
}

#[test]
fn racing_starts_share_one_complete_factor_key() {
    fn base64(key: FactorKey) -> String {
        key.to_base64().expose_secret().to_owned()
    }
    racing_starts_share_one_complete(
        "factor-key",
        |path| base64(load_or_create_factor_key(path).unwrap()),
        |path| base64(read_factor_key(path).unwrap()),
    );
}

#[cfg(unix)]
#[test]
fn a_data_folder_group_or_others_can_enter_is_warned_about() {
    let logs = crate::testing::observe::captured_logs;
    logs();
    let private = tempfile::tempdir().unwrap();
    let open = tempfile::tempdir().unwrap();
    set_mode(private.path(), 0o700);
    set_mode(open.path(), 0o750);
    create_private_dir(private.path()).unwrap();
    create_private_dir(open.path()).unwrap();
    let warnings_about = |path: &Path| {
        let path = path.display().to_string();
        logs()
            .lines()
            .filter(|line| line.contains(&path) && line.contains("data folder"))
            .map(|line| crate::testing::observe::level(line).to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(warnings_about(open.path()), ["WARN"]);
    assert!(warnings_about(private.path()).is_empty());
}

#[test]
fn a_bare_file_name_goes_in_the_current_folder() {
    assert_eq!(folder_of(Path::new("signing-key.pem")), Path::new("."));
    assert_eq!(
        folder_of(Path::new("data/signing-key.pem")),
        Path::new("data")
    );
    assert_eq!(
        folder_of(Path::new("/srv/keys/signing-key.pem")),
        Path::new("/srv/keys")
    );
}

#[test]
fn a_taken_temporary_name_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let target = key_path(&dir, "taken.pem");
    // The next twelve names are taken (another process's leftovers, say): the sixteen
    // tries skip them. Only this test makes names for `taken.pem`.
    let next = NEXT_TEMP.load(std::sync::atomic::Ordering::Relaxed);
    let taken: Vec<PathBuf> = (next..next + 12)
        .map(|n| {
            dir.path()
                .join(format!(".taken.pem.{}.{n}.tmp", std::process::id()))
        })
        .collect();
    for path in &taken {
        std::fs::write(path, "not ours").unwrap();
    }
    let (temp, _file) = TempFile::create(dir.path(), &target).unwrap();
    assert!(!taken.contains(&temp.0), "{:?}", temp.0);
    assert!(temp.0.exists());
    let made = temp.0.clone();
    drop(temp);
    assert!(!made.exists(), "removed when dropped");
    for path in &taken {
        assert_eq!(std::fs::read_to_string(path).unwrap(), "not ours");
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_in_the_keys_place_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "signing-key.pem");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // Opened without O_NONBLOCK, a FIFO with no writer blocks for ever: the read runs on a
    // thread of its own and the test waits for it with a deadline.
    let (sent, answer) = std::sync::mpsc::channel();
    let reading = path.clone();
    std::thread::spawn(move || {
        let _ = sent.send(read_signing_key(&reading).map(|_| ()));
    });
    let result = answer
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("reading a FIFO returns at once");
    let err = result.unwrap_err();
    assert!(matches!(err, KeyFileError::Invalid { .. }), "{err:?}");
}
