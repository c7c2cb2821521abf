//! Each sandbox has a loopback of its own: parallel sandboxes bind the same port, and
//! `connect` reaches the server of the sandbox it is called on.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use common::{Footprint, systemctl, wait_for};
use imageserving_sandbox::Sandbox;

const PORT: u16 = 8080;

#[test]
fn parallel_sandboxes_serve_the_same_port_on_their_own_loopback() {
    let sandboxes: Vec<Sandbox> = [thread::spawn(common::boot), thread::spawn(common::boot)]
        .into_iter()
        .map(|boot| boot.join().unwrap())
        .collect();
    let footprints: Vec<Footprint> = sandboxes.iter().map(Footprint::of).collect();

    for sandbox in &sandboxes {
        serve_page(sandbox, &page_of(sandbox));
    }
    for sandbox in &sandboxes {
        let address = SocketAddr::from(([127, 0, 0, 1], PORT));
        wait_for(
            "the web server in the sandbox",
            Duration::from_secs(20),
            || sandbox.connect(address).is_ok(),
        );
        let mut stream = sandbox.connect(address).unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.0 200"),
            "{reply}\n{}",
            sandbox.journal("web.service")
        );
        assert!(reply.ends_with(&page_of(sandbox)), "{reply}");
    }

    for sandbox in sandboxes {
        sandbox.shutdown().unwrap();
    }
    footprints.iter().for_each(Footprint::assert_nothing_left);
}

fn page_of(sandbox: &Sandbox) -> String {
    format!("served by the sandbox with PID 1 {}\n", sandbox.pid1())
}

/// Starts `python3 -m http.server` on 127.0.0.1:PORT inside, serving `page` at /.
fn serve_page(sandbox: &Sandbox, page: &str) {
    let www = sandbox.state_dir().join("www");
    fs::create_dir(&www).unwrap();
    fs::write(www.join("index.html"), page).unwrap();
    let unit = format!(
        "[Service]\nExecStart=/usr/bin/python3 -m http.server {PORT} --bind 127.0.0.1 --directory {}\n",
        www.display()
    );
    sandbox.write_unit_file("web.service", &unit).unwrap();
    sandbox.daemon_reload().unwrap();
    systemctl(sandbox, &["start", "web.service"]);
}
