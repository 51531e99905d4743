//! End-to-end tests in real headless Chromium, driven over WebDriver (chromedriver).
//!
//! Without `CI` set and without Chromium, these tests say on stderr, past libtest's capture,
//! that they were skipped; with `CI` set they must run. `.ci/run` installs Debian's `chromium`
//! and `chromium-driver`.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use user_core::factor::totp_code;
use user_core::ports::Clock as _;

use crate::{PW, TestApp};

/// A chromedriver process and a way to open browser sessions on it.
struct Driver {
    url: String,
    _process: Killed,
    profiles: tempfile::TempDir,
    chromium: PathBuf,
}

/// A child process, killed and reaped when this is dropped (also while a failing test unwinds).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long chromedriver may take to say which port it listens on.
const START_DEADLINE: Duration = Duration::from_secs(30);

fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Says on the process's stderr, past libtest's capture of passing tests' output, that the
/// running test (named after its thread) was skipped, so that a skip is visible in every run.
fn say_skipped(why: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a browser test");
    let _ = writeln!(std::io::stderr().lock(), "*** skipped {test}: {why}");
}

/// The port in chromedriver's start-up line, "ChromeDriver was started successfully on port N."
fn started_on(line: &str) -> Option<u16> {
    line.trim_end()
        .strip_prefix("ChromeDriver was started successfully on port ")?
        .strip_suffix('.')?
        .parse()
        .ok()
        .filter(|&port| port != 0)
}

impl Driver {
    /// Starts chromedriver, or returns `None` (saying so on stderr) when Chromium is not
    /// installed and `CI` is not set. Called on the test's own thread, which names the test.
    async fn start() -> Option<Self> {
        let chromium = find(
            "CHROME_BIN",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let driver = find("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but chromium/chromedriver are missing: install Debian's chromium and chromium-driver"
            );
            say_skipped(
                "chromium and chromedriver are not installed \
                 (apt-get install chromium chromium-driver; CI runs them)",
            );
            return None;
        };
        // Port 0: chromedriver binds a free port itself and names it on stdout, so no other
        // process can take the port between choosing it and listening on it.
        let mut process = Killed(
            std::process::Command::new(&driver)
                .arg("--port=0")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("chromedriver {} starts: {e}", driver.display())),
        );
        let stdout = process
            .0
            .stdout
            .take()
            .expect("chromedriver's stdout is piped");
        // A thread reads stdout to its end (so that the pipe never fills), handing over the
        // port, or everything said before an early exit.
        let (said, port) = tokio::sync::oneshot::channel::<Result<u16, String>>();
        std::thread::spawn(move || {
            let mut said = Some(said);
            let mut before = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if said.is_some() {
                    match started_on(&line) {
                        Some(port) => {
                            let _ = said.take().map(|s| s.send(Ok(port)));
                        }
                        None => before.push_str(&format!("{line}\n")),
                    }
                }
            }
            if let Some(said) = said {
                let _ = said.send(Err(before));
            }
        });
        let port = match tokio::time::timeout(START_DEADLINE, port).await {
            Ok(Ok(Ok(port))) => port,
            Ok(Ok(Err(before))) => {
                panic!("chromedriver closed its stdout without naming its port; it said:\n{before}")
            }
            Ok(Err(_)) => panic!("the reader of chromedriver's stdout ended without a word"),
            Err(_) => panic!("chromedriver did not name its port within {START_DEADLINE:?}"),
        };
        assert!(
            process
                .0
                .try_wait()
                .expect("chromedriver's state")
                .is_none(),
            "chromedriver exited right after naming port {port}"
        );
        Some(Self {
            url: format!("http://127.0.0.1:{port}"),
            _process: process,
            profiles: tempfile::tempdir().unwrap(),
            chromium,
        })
    }

    /// A new browser with its own profile (its own cookies).
    async fn browser(&self, name: &str) -> Client {
        let profile = self.profiles.path().join(name);
        let caps = json!({
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--no-first-run",
                    "--disable-component-update", "--disable-sync", "--disable-quic",
                    "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        // chromedriver speaks plain HTTP on localhost: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

async fn fill(client: &Client, name: &str, value: &str) {
    let input = client
        .find(Locator::Css(&format!("[name='{name}']")))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn submit(client: &Client, form_action_suffix: &str) {
    let selector = format!("form[action$='{form_action_suffix}'] button[type='submit']");
    client
        .find(Locator::Css(&selector))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn heading(client: &Client) -> String {
    client
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn wait_heading(client: &Client, text: &str) {
    let xpath = format!("//h1[normalize-space()=\"{text}\"]");
    let found = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(&xpath))
        .await;
    if let Err(e) = found {
        let url = client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let source = client.source().await.unwrap_or_default();
        panic!("no heading {text:?} at {url}: {e}\n{source:.2000}");
    }
}

/// Waits for the admin's user page to show the status `text`: the heading is the same before
/// and after a submit, so waiting for it could read the old page.
async fn wait_status(client: &Client, text: &str) {
    let xpath =
        format!("//dt[.=\"Status\"]/following-sibling::dd[1][normalize-space()=\"{text}\"]");
    let found = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(&xpath))
        .await;
    if let Err(e) = found {
        let source = client.source().await.unwrap_or_default();
        panic!("no status {text:?}: {e}\n{source:.2000}");
    }
}

async fn path(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_owned()
}

/// Saves a screenshot under the target directory, for the docs.
async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The app with its clock at the real time: the browser expires cookies by its own clock.
async fn browser_app() -> TestApp {
    let app = TestApp::new().await;
    app.clock.set(time::OffsetDateTime::now_utc());
    app
}

async fn sign_in(client: &Client, base: &str, identifier: &str, password: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    fill(client, "identifier", identifier).await;
    fill(client, "password", password).await;
    submit(client, "/login").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registers_edits_changes_password_and_signs_out() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = browser_app().await;
    let (base, _stop) = app.spawn().await;
    let b = driver.browser("alice").await;

    b.goto(&format!("{base}/")).await.unwrap();
    wait_heading(&b, "Sign in").await;
    screenshot(&b, "login").await;
    b.find(Locator::LinkText("Create one"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&b, "Create account").await;
    fill(&b, "username", "alice").await;
    fill(&b, "email", "alice@example.com").await;
    fill(&b, "password", "short").await;
    submit(&b, "/register").await;
    // The heading is the same before and after the submit: wait for the error itself.
    let error = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#password-error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(error.contains("at least 12 characters"), "{error}");
    let kept = b
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("alice"),
        "the form keeps what was typed"
    );
    screenshot(&b, "register-errors").await;
    fill(&b, "password", PW).await;
    submit(&b, "/register").await;
    wait_heading(&b, "alice").await;
    assert_eq!(path(&b).await, "/profile");
    let flash = b
        .find(Locator::Css(".flash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("Welcome"));

    b.find(Locator::LinkText("Edit profile"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&b, "Edit profile").await;
    fill(&b, "display_name", "Alice Liddell").await;
    submit(&b, "/profile/edit").await;
    wait_heading(&b, "Alice Liddell").await;
    screenshot(&b, "profile").await;

    b.find(Locator::LinkText("Change password"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&b, "Change password").await;
    fill(&b, "current_password", PW).await;
    fill(&b, "new_password", "a whole new passphrase").await;
    submit(&b, "/profile/password").await;
    wait_heading(&b, "Alice Liddell").await;

    submit(&b, "/logout").await;
    wait_heading(&b, "Sign in").await;
    sign_in(&b, &base, "alice", PW).await;
    // The sign-in page is there before the submit too: wait for the answer's refusal.
    wait_xpath(&b, "//p[@role='alert']").await;
    assert_eq!(heading(&b).await, "Sign in");
    let alert = b
        .find(Locator::Css("[role='alert']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(alert, "Invalid username, email or password.");
    sign_in(&b, &base, "alice@example.com", "a whole new passphrase").await;
    wait_heading(&b, "Alice Liddell").await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_disables_and_re_enables_a_user() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = browser_app().await;
    app.create_admin("root").await;
    app.register("bob").await;
    app.register("carol").await;
    let (base, _stop) = app.spawn().await;

    let bob = driver.browser("bob").await;
    sign_in(&bob, &base, "bob", PW).await;
    wait_heading(&bob, "bob").await;

    let admin = driver.browser("root").await;
    sign_in(&admin, &base, "root", PW).await;
    wait_heading(&admin, "root").await;
    admin
        .find(Locator::LinkText("Users"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&admin, "Users").await;
    fill(&admin, "q", "bo").await;
    admin
        .find(Locator::Css("form[role='search'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The list before the search has the same caption: wait for the filtered rows.
    let filtered = admin
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//tbody[contains(., 'bob') and not(contains(., 'carol'))]",
        ))
        .await;
    if let Err(e) = filtered {
        let source = admin.source().await.unwrap_or_default();
        panic!("the search did not keep bob alone: {e}\n{source:.2000}");
    }
    screenshot(&admin, "admin-users").await;
    admin
        .find(Locator::LinkText("bob"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&admin, "bob").await;
    submit(&admin, "/status").await;
    wait_status(&admin, "disabled").await;
    screenshot(&admin, "admin-user").await;

    // Bob's open session stopped working at once.
    bob.goto(&format!("{base}/profile")).await.unwrap();
    wait_heading(&bob, "Sign in").await;
    assert_eq!(path(&bob).await, "/login");
    // The sign-in page is there before the submit too: wait for the answer to it, the
    // refusal, and check that it did not sign bob in.
    sign_in(&bob, &base, "bob", PW).await;
    wait_xpath(
        &bob,
        "//p[@role='alert'][contains(., 'nvalid username, email or password')]",
    )
    .await;
    assert_eq!(heading(&bob).await, "Sign in");
    assert_eq!(path(&bob).await, "/login");
    bob.goto(&format!("{base}/profile")).await.unwrap();
    wait_heading(&bob, "Sign in").await;

    submit(&admin, "/status").await;
    wait_status(&admin, "active").await;
    sign_in(&bob, &base, "bob", PW).await;
    wait_heading(&bob, "bob").await;
    bob.close().await.unwrap();
    admin.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_in_a_display_name_renders_as_text() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = browser_app().await;
    app.register("mallory").await;
    let (base, _stop) = app.spawn().await;
    let b = driver.browser("mallory").await;
    sign_in(&b, &base, "mallory", PW).await;
    wait_heading(&b, "mallory").await;
    b.goto(&format!("{base}/profile/edit")).await.unwrap();
    let payload = "<script>alert('pwned')</script>";
    fill(&b, "display_name", payload).await;
    submit(&b, "/profile/edit").await;
    b.wait().for_element(Locator::Css(".flash")).await.unwrap();
    assert_eq!(heading(&b).await, payload, "shown as text");
    match b.get_alert_text().await {
        Err(e) if e.is_no_such_alert() => {}
        other => panic!("no script may run and open an alert: {other:?}"),
    }
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_resets_a_forgotten_password_from_the_mailed_link() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = browser_app().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let new_password = "a fresh new passphrase";

    // A session from before the reset, in another browser.
    let old = driver.browser("old").await;
    sign_in(&old, &base, "alice", PW).await;
    wait_heading(&old, "alice").await;

    let b = driver.browser("alice").await;
    b.goto(&format!("{base}/login")).await.unwrap();
    wait_heading(&b, "Sign in").await;
    b.find(Locator::LinkText("Forgot your password?"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&b, "Forgot your password?").await;
    fill(&b, "email", "alice@example.com").await;
    submit(&b, "/forgot-password").await;
    wait_heading(&b, "Check your email").await;

    // The mail client opens the link.
    let token = app.link_token("/reset-password", "alice@example.com").await;
    let link = format!("{base}/reset-password?token={token}");
    b.goto(&link).await.unwrap();
    wait_heading(&b, "Choose a new password").await;
    screenshot(&b, "reset-password").await;
    fill(&b, "new_password", new_password).await;
    submit(&b, "/reset-password").await;
    wait_heading(&b, "Sign in").await;
    let flash = b
        .find(Locator::Css(".flash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("Your password was changed"), "{flash}");

    // The old session is gone; the new password signs in.
    old.goto(&format!("{base}/profile")).await.unwrap();
    wait_heading(&old, "Sign in").await;
    sign_in(&b, &base, "alice", new_password).await;
    wait_heading(&b, "alice").await;

    // The same link twice is refused.
    b.goto(&link).await.unwrap();
    wait_heading(&b, "Choose a new password").await;
    fill(&b, "new_password", "yet another passphrase").await;
    submit(&b, "/reset-password").await;
    wait_heading(&b, "This reset link is invalid or expired").await;
    old.close().await.unwrap();
    b.close().await.unwrap();
}

/// Waits for an element matching `xpath`: for a page whose heading stays the same after a
/// submit, so waiting for the heading could read the old page.
async fn wait_xpath(client: &Client, xpath: &str) {
    let found = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(xpath))
        .await;
    if let Err(e) = found {
        let source = client.source().await.unwrap_or_default();
        panic!("nothing matches {xpath:?}: {e}\n{source:.2000}");
    }
}

async fn flash(client: &Client) -> String {
    client
        .find(Locator::Css(".flash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_confirms_their_address_then_deletes_their_account_and_an_admin_sees_it() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = browser_app().await;
    app.create_admin("root").await;
    app.links("/verify-email").await;
    app.register("carol").await;
    let (base, _stop) = app.spawn().await;

    let b = driver.browser("carol").await;
    sign_in(&b, &base, "carol", PW).await;
    wait_heading(&b, "carol").await;
    let email = "//dt[.=\"Email\"]/following-sibling::dd[1]";
    wait_xpath(&b, &format!("{email}[contains(., \"(not verified)\")]")).await;

    // The mail client opens the link: a page that confirms with one click, so that a
    // scanner fetching the link confirms nothing.
    let token = app.link_token("/verify-email", "carol@example.com").await;
    let link = format!("{base}/verify-email?token={token}");
    b.goto(&link).await.unwrap();
    wait_heading(&b, "Confirm your email address").await;
    screenshot(&b, "verify-email").await;
    submit(&b, "/verify-email").await;
    wait_heading(&b, "carol").await;
    assert!(flash(&b).await.contains("Your email address is verified"));
    wait_xpath(
        &b,
        &format!("{email}[contains(., \"(verified)\") and not(contains(., \"not verified\"))]"),
    )
    .await;
    // Recent activity on the profile names it.
    wait_xpath(&b, "//td[contains(., \"Email address verified\")]").await;

    // The same link a second time is refused.
    b.goto(&link).await.unwrap();
    wait_heading(&b, "Confirm your email address").await;
    submit(&b, "/verify-email").await;
    wait_heading(&b, "This confirmation link is invalid or expired").await;

    // Deletion asks for the password; a wrong one keeps the account.
    b.goto(&format!("{base}/profile")).await.unwrap();
    wait_heading(&b, "carol").await;
    b.find(Locator::LinkText("Delete my account…"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&b, "Delete your account?").await;
    fill(&b, "password", "not my password").await;
    submit(&b, "/profile/delete").await;
    wait_xpath(&b, "//p[@id=\"password-error\"]").await;
    screenshot(&b, "delete-account-wrong-password").await;
    fill(&b, "password", PW).await;
    submit(&b, "/profile/delete").await;
    wait_heading(&b, "Sign in").await;
    assert!(flash(&b).await.contains("Your account was deleted"));
    sign_in(&b, &base, "carol", PW).await;
    wait_xpath(&b, "//*[@role=\"alert\"]").await;
    assert_eq!(heading(&b).await, "Sign in", "the account is gone");

    // The admin's log keeps an anonymized record.
    let admin = driver.browser("root").await;
    sign_in(&admin, &base, "root", PW).await;
    wait_heading(&admin, "root").await;
    admin
        .goto(&format!("{base}/admin/audit?kind=deleted"))
        .await
        .unwrap();
    wait_heading(&admin, "Audit log").await;
    screenshot(&admin, "admin-audit").await;
    let rows = admin.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2, "the wrong password and the deletion");
    let text = rows[0].text().await.unwrap();
    assert!(
        text.contains("Account deletion") && text.contains("Succeeded"),
        "{text}"
    );
    assert!(
        !text.contains("127.0.0.1"),
        "no address on the owner's own deletion: {text}"
    );
    b.close().await.unwrap();
    admin.close().await.unwrap();
}

/// Types `code` into the second step of a sign-in and sends it.
async fn type_code(client: &Client, code: &str) {
    wait_heading(client, "Enter a code").await;
    fill(client, "code", code).await;
    submit(client, "/login/second-factor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_turns_on_two_step_sign_in_and_signs_in_with_codes() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = browser_app().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    // Each code works once: the app's clock moves on a step before each.
    let step = Duration::from_secs(30);
    let b = driver.browser("alice").await;
    sign_in(&b, &base, "alice", PW).await;
    wait_heading(&b, "alice").await;

    // From the profile: password, then the QR code and the key.
    b.find(Locator::LinkText("Manage two-step sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&b, "Two-step sign-in").await;
    fill(&b, "password", PW).await;
    submit(&b, "/profile/second-factor/setup").await;
    wait_heading(&b, "Set up two-step sign-in").await;
    let qr = b.find(Locator::Css(".qr svg")).await.unwrap();
    let (_, _, width, height) = qr.rectangle().await.unwrap();
    assert!(
        width >= 150.0 && (width - height).abs() < 1.0,
        "a square QR code on screen: {width}x{height}"
    );
    screenshot(&b, "second-factor-setup").await;
    let secret = b
        .find(Locator::Css("#secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .replace(' ', "");
    assert_eq!(secret.len(), 32, "{secret}");
    app.clock.advance(step);
    fill(&b, "code", &totp_code(&secret, app.clock.now())).await;
    submit(&b, "/profile/second-factor/confirm").await;
    wait_heading(&b, "Your recovery codes").await;
    screenshot(&b, "recovery-codes").await;
    let mut codes = Vec::new();
    for item in b.find_all(Locator::Css(".codes code")).await.unwrap() {
        codes.push(item.text().await.unwrap());
    }
    assert_eq!(codes.len(), 10, "{codes:?}");
    b.find(Locator::LinkText("Continue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_heading(&b, "Two-step sign-in").await;
    wait_xpath(
        &b,
        "//dd[@id=\"second-factor-status\"][starts-with(., \"On since\")]",
    )
    .await;

    // Signed out, a sign-in asks for a code from the app.
    submit(&b, "/logout").await;
    wait_heading(&b, "Sign in").await;
    sign_in(&b, &base, "alice", PW).await;
    wait_heading(&b, "Enter a code").await;
    screenshot(&b, "second-factor-code").await;
    app.clock.advance(step);
    type_code(&b, &totp_code(&secret, app.clock.now())).await;
    wait_heading(&b, "alice").await;
    assert_eq!(path(&b).await, "/profile");

    // A recovery code instead.
    submit(&b, "/logout").await;
    wait_heading(&b, "Sign in").await;
    sign_in(&b, &base, "alice", PW).await;
    type_code(&b, &codes[0]).await;
    wait_heading(&b, "alice").await;

    // The same recovery code a second time is refused.
    submit(&b, "/logout").await;
    wait_heading(&b, "Sign in").await;
    sign_in(&b, &base, "alice", PW).await;
    type_code(&b, &codes[0]).await;
    wait_xpath(&b, "//p[@id=\"code-error\"]").await;
    let error = b
        .find(Locator::Css("#code-error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(error, "The code is not valid.");
    assert_eq!(heading(&b).await, "Enter a code");

    // New recovery codes take the password and a current code (here a recovery code).
    app.clock.advance(step);
    type_code(&b, &totp_code(&secret, app.clock.now())).await;
    wait_heading(&b, "alice").await;
    b.goto(&format!("{base}/profile/second-factor"))
        .await
        .unwrap();
    wait_heading(&b, "Two-step sign-in").await;
    for (id, value) in [("codes-password", PW), ("codes-code", codes[1].as_str())] {
        let input = b.find(Locator::Id(id)).await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    submit(&b, "/profile/second-factor/recovery-codes").await;
    wait_heading(&b, "Your recovery codes").await;
    let mut new = Vec::new();
    for item in b.find_all(Locator::Css(".codes code")).await.unwrap() {
        new.push(item.text().await.unwrap());
    }
    assert_eq!(new.len(), 10, "{new:?}");
    assert!(new.iter().all(|c| !codes.contains(c)), "{new:?}");
    b.close().await.unwrap();
}
