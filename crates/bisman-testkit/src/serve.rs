//! A `bisman serve` process for end-to-end tests: started on a free loopback
//! port, spoken to over plain HTTP/1.1, stopped with SIGTERM (or killed if
//! the test ends early).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};

use serde_json::Value;

/// A running `bisman serve`.
pub struct ServeProcess {
    child: Child,
    addr: String,
}

impl ServeProcess {
    /// Starts `binary serve --bind 127.0.0.1:0` with `env` (e.g.
    /// `DATABASE_URL`, `REDIS_URL`, `BISMAN_CACHE_PREFIX`) and waits until it
    /// listens. Maintenance is off unless `env` turns it on.
    pub fn start(binary: &str, env: &[(&str, &str)]) -> ServeProcess {
        let mut cmd = Command::new(binary);
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .env("BISMAN_MAINTENANCE", "false")
            .env("BISMAN_DB_POOL_SIZE", "4")
            .env("BISMAN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start bisman serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("bisman serve exited before listening")
                .unwrap();
            if let Some(a) = line.strip_prefix("bisman serve: listening on http://") {
                break a.trim().to_string();
            }
        };
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServeProcess { child, addr }
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One HTTP/1.1 request; (status, JSON body or `Null`).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        stream.write_all(req.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let status: u16 = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Logs in to tenant `demo` as `email` with `password`; the session token.
    pub fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(serde_json::json!({"tenant": "demo", "email": email, "password": password})),
        );
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
