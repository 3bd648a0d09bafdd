//! The test server helper (`support/remote_cache_server.rs`) from outside the
//! binary, as the e2e scenarios will use it: it starts the real npm server,
//! answers with the token, refuses without it, and is gone after `stop`.
//! The helper itself is shared with the unit tests in `cli/src/remote/`.

#[path = "support/remote_cache_server.rs"]
mod remote_cache_server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use remote_cache_server::{RemoteCacheServer, ServerOptions};

fn repo_root() -> PathBuf {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR"));
    cli.parent()
        .map_or_else(|| cli.to_path_buf(), Path::to_path_buf)
}

fn status_line(port: u16, token: Option<&str>) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "HEAD /v8/artifacts/00?slug=t HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

#[test]
fn remote_test_server_starts_checks_the_token_and_stops() {
    let mut server = RemoteCacheServer::start(&repo_root(), ServerOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let port = server.port();
    let ok = status_line(port, Some(server.token())).expect("request");
    assert!(ok.contains(" 404"), "an unknown artifact: {ok}");
    let refused = status_line(port, Some("wrong")).expect("request");
    assert!(refused.contains(" 401"), "{refused}");
    server.stop();
    assert!(status_line(port, Some("x")).is_err(), "the server is gone");
}
