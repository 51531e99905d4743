//! A gRPC client in Rust: register, sign in, read the profile, call the host's protected
//! service (when the server has one, as `grpc_embed` does), refresh the tokens, log out, and
//! see the old token refused.
//!
//! ```sh
//! cargo run --release --example server                         # first, in another terminal
//! cargo run --example grpc_client                              # talks to 127.0.0.1:50051
//! cargo run --example grpc_client -- http://127.0.0.1:50051    # or any address
//! cargo run --example grpc_client -- http://127.0.0.1:50051 alice  # and a username
//! ```

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use user_grpc::pb;
use user_grpc::pb::user_service_client::UserServiceClient;

/// The host's protocol, as in `grpc_embed`.
#[allow(unreachable_pub)] // generated code
pub(crate) mod inventory {
    tonic::include_proto!("inventory");
}

use inventory::inventory_client::InventoryClient;

/// What the walkthrough saw.
#[derive(Debug)]
pub(crate) struct Walkthrough {
    /// The registered user.
    pub(crate) user: pb::User,
    /// Who the host's service saw as the caller, when the server has that service.
    pub(crate) inventory_owner: Option<String>,
    /// The status code the old access token got after logout.
    pub(crate) after_logout: Code,
}

fn authed<T>(message: T, token: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// Runs the walkthrough against `endpoint`, printing each step.
pub(crate) async fn run(endpoint: String, username: &str) -> anyhow::Result<Walkthrough> {
    let channel = Channel::from_shared(endpoint)?.connect().await?;
    let mut users = UserServiceClient::new(channel.clone());
    let password = "correct horse battery staple";

    let user = users
        .register_user(pb::RegisterUserRequest {
            username: username.into(),
            email: format!("{username}@example.com"),
            password: password.into(),
            display_name: "Demo User".into(),
        })
        .await?
        .into_inner()
        .user
        .ok_or_else(|| anyhow::anyhow!("no user in the response"))?;
    println!("registered {} ({})", user.username, user.id);

    let login = users
        .login_user(pb::LoginUserRequest {
            username: username.into(),
            password: password.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    println!("signed in: access token valid {} s", login.expires_in);

    let me = users
        .get_user(authed(pb::GetUserRequest::default(), &login.token)?)
        .await?
        .into_inner();
    println!("GetUser: {:?}", me.user.map(|u| u.email));

    let items = InventoryClient::new(channel)
        .list_items(authed(inventory::ListItemsRequest {}, &login.token)?)
        .await;
    let inventory_owner = match items {
        Ok(items) => {
            let items = items.into_inner();
            println!(
                "host service saw {} and returned {:?}",
                items.owner_id, items.items
            );
            Some(items.owner_id)
        }
        Err(status) if status.code() == Code::Unimplemented => {
            println!("(this server has no host service inventory.Inventory; skipped)");
            None
        }
        Err(status) => return Err(status.into()),
    };

    let renewed = users
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: login.refresh_token,
        })
        .await?
        .into_inner();
    println!("refreshed: new refresh token issued, the old one is spent");

    users
        .logout(authed(pb::EmptyRequest {}, &renewed.token)?)
        .await?;
    let after = users
        .get_user(authed(pb::GetUserRequest::default(), &renewed.token)?)
        .await;
    let after_logout = after.err().map_or(Code::Ok, |s| s.code());
    println!("logged out: the old token now gets {after_logout:?}");

    Ok(Walkthrough {
        user,
        inventory_owner,
        after_logout,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    // A fresh name per run, so the walkthrough can be repeated.
    let username = match args.next() {
        Some(name) => name,
        None => {
            let suffix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .subsec_micros();
            format!("demo{suffix}")
        }
    };
    let seen = run(endpoint, &username).await?;
    println!(
        "done: {} ({}); after logout the old token gets {:?}",
        seen.user.username,
        seen.inventory_owner.as_deref().unwrap_or("no host service"),
        seen.after_logout
    );
    Ok(())
}
