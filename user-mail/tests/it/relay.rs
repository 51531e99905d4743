//! A small SMTP server for the tests, on 127.0.0.1:0: it records each session's envelope,
//! `AUTH PLAIN` credentials and message, and answers `RCPT TO` as told.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// How the relay behaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Behaviour {
    /// The reply to every `RCPT TO` (default `250 2.1.5 ok`).
    pub(crate) rcpt_reply: Option<&'static str>,
    /// Offer `AUTH PLAIN LOGIN` in the `EHLO` answer.
    pub(crate) offer_auth: bool,
    /// The reply to `AUTH PLAIN` (default `235 2.7.0 authenticated`).
    pub(crate) auth_reply: Option<&'static str>,
}

/// What one client did in one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    /// Every command line, as sent (the `AUTH` line included).
    pub(crate) commands: Vec<String>,
    /// `(authorization id, user, password)` from `AUTH PLAIN`.
    pub(crate) auth_plain: Option<(String, String, String)>,
    /// The path of `MAIL FROM`.
    pub(crate) mail_from: Option<String>,
    /// The paths of `RCPT TO`.
    pub(crate) rcpt_to: Vec<String>,
    /// The message, dot-unstuffed, without the final `.` line.
    pub(crate) data: Option<Vec<u8>>,
}

/// A running relay; dropped, it stops accepting.
pub(crate) struct Relay {
    pub(crate) addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Session>>>,
    task: JoinHandle<()>,
}

impl Relay {
    pub(crate) async fn start(behaviour: Behaviour) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&sessions);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let behaviour = behaviour.clone();
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let index = {
                        let mut all = recorded.lock().unwrap();
                        all.push(Session::default());
                        all.len() - 1
                    };
                    // A broken connection just ends the session.
                    let _ = serve(stream, &behaviour, |f| {
                        f(&mut recorded.lock().unwrap()[index]);
                    })
                    .await;
                });
            }
        });
        Relay {
            addr,
            sessions,
            task,
        }
    }

    /// The sessions so far, in the order they connected.
    pub(crate) fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: TcpStream,
    behaviour: &Behaviour,
    record: impl Fn(&dyn Fn(&mut Session)),
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 relay.test ESMTP ready\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']).to_owned();
        record(&|s| s.commands.push(command.clone()));
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let auth = if behaviour.offer_auth {
                "250-AUTH PLAIN LOGIN\r\n"
            } else {
                ""
            };
            format!("250-relay.test\r\n250-8BITMIME\r\n{auth}250 SIZE 1000000\r\n")
        } else if upper.starts_with("AUTH PLAIN ") {
            let decoded = STANDARD.decode(command[11..].trim()).unwrap();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8(p.to_vec()).unwrap())
                .collect();
            let [authz, user, password] = <[String; 3]>::try_from(parts).unwrap();
            record(&|s| s.auth_plain = Some((authz.clone(), user.clone(), password.clone())));
            format!(
                "{}\r\n",
                behaviour.auth_reply.unwrap_or("235 2.7.0 authenticated")
            )
        } else if upper.starts_with("MAIL FROM:") {
            let path = command[10..].trim().to_owned();
            record(&|s| s.mail_from = Some(path.clone()));
            "250 2.1.0 ok\r\n".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            let path = command[8..].trim().to_owned();
            record(&|s| s.rcpt_to.push(path.clone()));
            format!("{}\r\n", behaviour.rcpt_reply.unwrap_or("250 2.1.5 ok"))
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = Vec::new();
            let mut raw = Vec::new();
            loop {
                raw.clear();
                if lines.read_until(b'\n', &mut raw).await? == 0 {
                    return Ok(());
                }
                if raw == b".\r\n" {
                    break;
                }
                let unstuffed = raw.strip_prefix(b".").unwrap_or(&raw);
                data.extend_from_slice(unstuffed);
            }
            record(&|s| s.data = Some(data.clone()));
            "250 2.0.0 queued\r\n".to_owned()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok\r\n".to_owned()
        } else {
            "502 5.5.2 not implemented\r\n".to_owned()
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// A listener that accepts connections and never says a word.
pub(crate) struct SilentRelay {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentRelay {
    pub(crate) async fn start() -> SilentRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        SilentRelay { addr, task }
    }
}

impl Drop for SilentRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address on which nothing listens: a socket bound to it and never listening, kept
/// (with the port) while the returned socket lives, so that no other test's listener can take
/// the port meanwhile. A connection to it is refused.
pub(crate) fn closed_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}
