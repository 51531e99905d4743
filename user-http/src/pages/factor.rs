//! Second factors on the pages: the second step of a sign-in (a code from the authenticator
//! app or a recovery code, or the enrolment the policy requires), the owner's two-step
//! sign-in page (set up, new recovery codes, turn off), and the QR code of an enrolment.
//!
//! Pages that show a secret (the enrolment's key and QR code, recovery codes) are answers to
//! a POST, never reachable by GET, and are sent `Cache-Control: no-store` like every page. A
//! wrong code at an enrolment shows the code form again without the key: the key is never
//! carried in a form, and asking for a new one would replace the one the app holds already.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use user_core::auth::{Challenge, SecondStep};
use user_core::domain::ChallengePurpose;
use user_core::error::{AuthError, ErrorKind, ServiceError as _, UserError};
use user_core::factor::{FactorStatus, TotpSetup};

use super::account::{after_sign_in, start_session};
use super::error::{PageError, Refusal, refused_form};
use super::flash::Flash;
use super::views::{date, v};
use super::web::{Posted, Web, local_path};

/// A period as a person reads it: `30 days`, `12 hours`, `5 minutes` (rounded down).
pub(crate) fn period(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    let (n, unit) = if secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs >= 3_600 {
        (secs / 3_600, "hour")
    } else {
        ((secs / 60).max(1), "minute")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// How long a browser the person trusts skips the second step, from the policy.
fn trust_period(web: &Web) -> String {
    period(web.state.auth.policy().second_factor.trusted_device_ttl)
}

/// The only bytes the QR code's markup may hold: the renderer's element and attribute names,
/// numbers, path commands, the colours and the label below. No `:` (no URL, no namespace),
/// no `&`, no `;`, no quote but `"`, no parenthesis (no `url(...)`).
fn is_plain_markup(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" <>/=\"#-.".contains(&b)
}

/// The QR code of an `otpauth://` URI as inline SVG, drawn on the server by `qrcode`'s SVG
/// renderer: no script, no external reference, nothing of the URI as text. `None` when the
/// URI does not fit in a QR code, or the markup is not what this function expects (the page
/// then shows the key as text only).
pub(crate) fn qr_svg(uri: &str) -> Option<Value> {
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M).ok()?;
    let markup = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // Inline in HTML: no XML declaration; the HTML parser gives <svg> its namespace. An
    // accessible name instead.
    let markup = markup.get(markup.find("<svg")?..)?.replacen(
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1""#,
        r#"<svg role="img" aria-label="QR code for your authenticator app""#,
        1,
    );
    if !markup.bytes().all(is_plain_markup) || markup.contains("<script") {
        tracing::error!("the QR code's SVG markup is not as expected; showing the key only");
        return None;
    }
    // The one place markup is marked safe: the renderer's own, checked above.
    Some(Value::from_safe_string(markup))
}

/// The key in groups of four, for typing: `ABCD EFGH IJKL ...`.
fn grouped(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a refused form shows: the refusal, beside a field or above the form.
struct Problem {
    refusal: Refusal,
    /// The id of the field the message goes beside; `None`: above the form.
    field: Option<&'static str>,
}

impl Problem {
    fn errors(&self) -> BTreeMap<&'static str, Vec<String>> {
        self.field
            .map(|field| (field, vec![self.refusal.message.clone()]))
            .into_iter()
            .collect()
    }

    fn alert(&self) -> Option<&str> {
        self.field
            .is_none()
            .then_some(self.refusal.message.as_str())
    }
}

/// Renders a page with a problem's status, messages and `Retry-After`, or 200 without one.
fn render(web: Web, name: &str, problem: Option<&Problem>, page: Value) -> Response {
    let status = problem.map_or(StatusCode::OK, |p| p.refusal.status);
    let errors = problem.map(Problem::errors).unwrap_or_default();
    let error = problem.and_then(Problem::alert);
    let page = context! { errors => v(&errors), error => error, ..page };
    let response = web.render(status, name, page);
    match problem {
        Some(p) => p.refusal.apply(response),
        None => response,
    }
}

// ---------------------------------------------------------------------------------------
// The second step of a sign-in
// ---------------------------------------------------------------------------------------

/// The page a challenge of the password step asks for: the code form, or the enrolment
/// (started here, so the POST that got the challenge shows the QR code at once).
pub(crate) async fn second_step_page(
    web: Web,
    challenge: Challenge,
    next: &str,
) -> Result<Response, PageError> {
    let token = challenge.token;
    let at = SignInStep {
        challenge: token.expose_secret(),
        next,
        trust_device: false,
    };
    match challenge.purpose {
        ChallengePurpose::SecondFactor => Ok(code_page(web, &at, None)),
        ChallengePurpose::Enrolment => match web.state.auth.start_enrolment(&token).await {
            Ok(setup) => Ok(setup_page(web, Enrolment::SignIn(at), Some(&setup), None)),
            Err(e) => refused_step(web, at, e, StepForm::Enrol),
        },
    }
}

/// What the forms of a sign-in's second step carry from one page to the next.
#[derive(Clone, Copy)]
struct SignInStep<'a> {
    challenge: &'a str,
    next: &'a str,
    trust_device: bool,
}

/// The code form of a sign-in.
fn code_page(web: Web, at: &SignInStep<'_>, problem: Option<&Problem>) -> Response {
    let page = context! {
        challenge => at.challenge,
        next => at.next,
        trust_device => at.trust_device,
        trust_period => trust_period(&web),
        title => "Enter a code",
    };
    render(web, "login_second_factor.html", problem, page)
}

/// The form of a sign-in's second step.
#[derive(Clone, Copy)]
enum StepForm {
    /// The code of a factor.
    Code,
    /// The first code of an enrolment.
    Enrol,
}

/// The form again after a refused code, or back to the sign-in page when the challenge no
/// longer works; the error page for the rest.
fn refused_step(
    web: Web,
    at: SignInStep<'_>,
    e: AuthError,
    form: StepForm,
) -> Result<Response, PageError> {
    let field = match &e {
        AuthError::ChallengeExpired => return Ok(sign_in_again(web, at.next)),
        AuthError::InvalidCode => Some("code"),
        _ => match e.kind() {
            ErrorKind::Throttled { .. } | ErrorKind::Overloaded => None,
            _ => return Err(e.into()),
        },
    };
    let problem = Problem {
        refusal: refused_form(&e),
        field,
    };
    Ok(match form {
        StepForm::Code => code_page(web, &at, Some(&problem)),
        StepForm::Enrol => setup_page(web, Enrolment::SignIn(at), None, Some(&problem)),
    })
}

/// Back to the sign-in page, which says why.
fn sign_in_again(web: Web, next: &str) -> Response {
    let to = match local_path(next) {
        Some(next) => format!(
            "/login?{}",
            serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
        ),
        None => "/login".to_owned(),
    };
    web.redirect(&to, Some(Flash::SignInExpired))
}

// No `Debug`: it holds a code and the challenge.
#[derive(Default, Deserialize)]
pub(crate) struct SecondStepForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    code: String,
    /// A checkbox: present (`on`) when ticked.
    #[serde(default)]
    trust_device: Option<String>,
    #[serde(default)]
    next: String,
}

impl Posted for SecondStepForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl SecondStepForm {
    fn step(&self, web: &Web) -> SecondStep {
        SecondStep {
            challenge: SecretString::from(self.challenge.clone()),
            code: SecretString::from(self.code.clone()),
            device_token: web.device_token.clone().map(SecretString::from),
            trust_device: self.trust_device.is_some(),
        }
    }

    fn at(&self) -> SignInStep<'_> {
        SignInStep {
            challenge: &self.challenge,
            next: local_path(&self.next).unwrap_or_default(),
            trust_device: self.trust_device.is_some(),
        }
    }
}

/// `POST /login/second-factor`: the code of a sign-in.
pub(crate) async fn login_second_factor(
    mut web: Web,
    form: Result<Form<SecondStepForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = web.accept(form)?;
    let step = form.step(&web);
    match web
        .state
        .auth
        .complete_sign_in_browser(step, web.client.clone())
        .await
    {
        Ok(login) => {
            start_session(&mut web, &login).await;
            let next = after_sign_in(&web, &form.next);
            Ok(web.redirect(&next, None))
        }
        Err(e) => refused_step(web, form.at(), e, StepForm::Code),
    }
}

/// `POST /login/enrol`: the first code of the app enrolled at a sign-in; signs in and shows
/// the recovery codes, once.
pub(crate) async fn login_enrol(
    mut web: Web,
    form: Result<Form<SecondStepForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = web.accept(form)?;
    let step = form.step(&web);
    match web
        .state
        .auth
        .complete_enrolment_browser(step, web.client.clone())
        .await
    {
        Ok((login, codes)) => {
            start_session(&mut web, &login).await;
            let next = after_sign_in(&web, &form.next);
            Ok(codes_page(web, &codes, &next, true))
        }
        Err(e) => refused_step(web, form.at(), e, StepForm::Enrol),
    }
}

// ---------------------------------------------------------------------------------------
// Enrolment pages (at sign-in and on the profile) and recovery codes
// ---------------------------------------------------------------------------------------

/// Where an enrolment's form goes.
enum Enrolment<'a> {
    /// At a sign-in the policy sent to enrolment.
    SignIn(SignInStep<'a>),
    /// From the owner's two-step sign-in page.
    Profile,
}

/// The enrolment page: the QR code and the key (when just made), and the form for the first
/// code.
fn setup_page(
    web: Web,
    at: Enrolment<'_>,
    setup: Option<&TotpSetup>,
    problem: Option<&Problem>,
) -> Response {
    let step = match at {
        Enrolment::SignIn(step) => Some(step),
        Enrolment::Profile => None,
    };
    let qr = setup.and_then(|s| qr_svg(s.uri.expose_secret()));
    let page = context! {
        challenge => step.map(|s| s.challenge),
        next => step.map(|s| s.next),
        trust_device => step.is_some_and(|s| s.trust_device),
        trust_period => step.map(|_| trust_period(&web)),
        at_sign_in => step.is_some(),
        qr => qr,
        secret => setup.map(|s| grouped(s.secret.expose_secret())),
        account => setup.map(|s| s.account.clone()),
        issuer => setup.map(|s| s.issuer.clone()),
        title => "Set up two-step sign-in",
    };
    render(web, "totp_setup.html", problem, page)
}

/// The recovery codes, shown once; `next` is where "Continue" leads (under the base).
fn codes_page(web: Web, codes: &[SecretString], next: &str, new_factor: bool) -> Response {
    let codes: Vec<String> = codes.iter().map(|c| c.expose_secret().to_owned()).collect();
    let page = context! {
        codes => codes,
        next => format!("{}{next}", web.base),
        new_factor => new_factor,
        title => "Your recovery codes",
    };
    web.render(StatusCode::OK, "recovery_codes.html", page)
}

// ---------------------------------------------------------------------------------------
// The owner's two-step sign-in page
// ---------------------------------------------------------------------------------------

/// A second factor's state as templates see it.
#[derive(Debug, Serialize)]
pub(crate) struct StatusView {
    on: bool,
    enabled_at: Option<String>,
    pending: bool,
    recovery_codes_left: u32,
    required: bool,
}

impl From<FactorStatus> for StatusView {
    fn from(s: FactorStatus) -> Self {
        Self {
            on: s.enabled_at.is_some(),
            enabled_at: s.enabled_at.map(date),
            pending: s.pending,
            recovery_codes_left: s.recovery_codes_left,
            required: s.required,
        }
    }
}

/// The two-step sign-in page, with a problem beside its form.
async fn status_page(web: Web, problem: Option<&Problem>) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let status = StatusView::from(web.state.users.second_factor(&actor).await?);
    let page = context! { status => v(&status), title => "Two-step sign-in" };
    Ok(render(web, "second_factor.html", problem, page))
}

/// `GET /profile/second-factor`.
pub(crate) async fn status(web: Web) -> Result<Response, PageError> {
    status_page(web, None).await
}

/// The two-step sign-in page again after a refused form: a wrong password or code beside
/// its field, a refusal of the whole form (throttled, busy, not in that state) above it;
/// the error page for the rest.
async fn refused(
    web: Web,
    e: UserError,
    password_field: &'static str,
    code_field: Option<&'static str>,
) -> Result<Response, PageError> {
    let field = match &e {
        UserError::InvalidCredentials => Some(password_field),
        UserError::InvalidCode => code_field,
        _ => None,
    };
    match e.kind() {
        ErrorKind::InvalidCredentials
        | ErrorKind::Throttled { .. }
        | ErrorKind::Overloaded
        | ErrorKind::FailedPrecondition => {}
        _ => return Err(e.into()),
    }
    let problem = Problem {
        refusal: refused_form(&e),
        field,
    };
    status_page(web, Some(&problem)).await
}

// No `Debug`: it holds a password.
#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: String,
}

impl Posted for PasswordForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

// No `Debug`: it holds a password and a code.
/// The password and a current code: new recovery codes, or turning the factor off.
#[derive(Deserialize)]
pub(crate) struct PasswordAndCodeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

impl Posted for PasswordAndCodeForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

// No `Debug`: it holds a code.
#[derive(Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

impl Posted for CodeForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /profile/second-factor/setup`: the password, then the QR code and key.
pub(crate) async fn setup(
    web: Web,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let form = web.accept(form)?;
    let password = SecretString::from(form.password);
    match web
        .state
        .users
        .start_totp_enrolment(&actor, &password)
        .await
    {
        Ok(setup) => Ok(setup_page(web, Enrolment::Profile, Some(&setup), None)),
        Err(e) => refused(web, e, "setup-password", None).await,
    }
}

/// `POST /profile/second-factor/confirm`: the app's first code; shows the recovery codes.
pub(crate) async fn confirm(
    web: Web,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let form = web.accept(form)?;
    let code = SecretString::from(form.code);
    match web.state.users.confirm_totp_enrolment(&actor, &code).await {
        Ok(codes) => Ok(codes_page(web, &codes, "/profile/second-factor", true)),
        Err(e @ UserError::InvalidCode) => {
            let problem = Problem {
                refusal: refused_form(&e),
                field: Some("code"),
            };
            Ok(setup_page(web, Enrolment::Profile, None, Some(&problem)))
        }
        Err(e) => refused(web, e, "confirm-code", Some("confirm-code")).await,
    }
}

/// `POST /profile/second-factor/recovery-codes`: ten new codes after the password and a
/// current code (the owner is mailed).
pub(crate) async fn recovery_codes(
    web: Web,
    form: Result<Form<PasswordAndCodeForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let form = web.accept(form)?;
    let password = SecretString::from(form.password);
    let code = SecretString::from(form.code);
    match web
        .state
        .users
        .regenerate_recovery_codes(&actor, &password, &code)
        .await
    {
        Ok(codes) => Ok(codes_page(web, &codes, "/profile/second-factor", false)),
        Err(e) => refused(web, e, "codes-password", Some("codes-code")).await,
    }
}

/// `POST /profile/second-factor/disable`: the password and a code turn it off.
pub(crate) async fn disable(
    web: Web,
    form: Result<Form<PasswordAndCodeForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let form = web.accept(form)?;
    let password = SecretString::from(form.password);
    let code = SecretString::from(form.code);
    match web
        .state
        .users
        .disable_second_factor(&actor, &password, &code)
        .await
    {
        Ok(()) => Ok(web.redirect("/profile/second-factor", Some(Flash::SecondFactorOff))),
        Err(e) => refused(web, e, "disable-password", Some("disable-code")).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_a_person_says_them() {
        assert_eq!(period(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(period(Duration::from_secs(86_400)), "1 day");
        assert_eq!(period(Duration::from_secs(12 * 3_600)), "12 hours");
        assert_eq!(period(Duration::from_secs(90)), "1 minute");
        assert_eq!(period(Duration::from_secs(10)), "1 minute");
    }

    #[test]
    fn the_key_is_grouped_in_fours() {
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
        assert_eq!(grouped(""), "");
    }

    #[test]
    fn the_qr_code_is_plain_svg_without_the_uri_or_any_reference() {
        let uri = "otpauth://totp/Acme:alice?secret=JBSWY3DPEHPK3PXP&issuer=Acme";
        let svg = qr_svg(uri).unwrap().to_string();
        assert!(svg.starts_with("<svg role=\"img\""), "{svg:.200}");
        assert!(svg.ends_with("</svg>"));
        for absent in [
            "<?xml", "<script", "href", "http", "url(", "JBSWY3DP", "otpauth",
        ] {
            assert!(!svg.contains(absent), "{absent} in {svg:.200}");
        }
        let too_long = "x".repeat(8_000);
        assert!(qr_svg(&too_long).is_none(), "does not fit in a QR code");
    }
}
