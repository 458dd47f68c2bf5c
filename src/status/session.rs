//! Browser access to the status endpoint: a login form that sets a session cookie (`Secure`,
//! `HttpOnly`, `SameSite=Strict`, accepted over HTTPS only), a logout, and a limit on failed
//! logins per client address. Sessions live in memory: a restart signs everyone out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "snbox_session";
/// How long a session lasts after its login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions at most; the oldest goes first.
const MAX_SESSIONS: usize = 256;
/// Failed logins (any way of presenting a token) per address and [`WINDOW`], at most.
pub const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered, at most (the oldest window goes first).
const MAX_ADDRESSES: usize = 1024;

#[derive(Debug, Default)]
pub struct Sessions {
    /// Session id → (index of the token in `status.tokens`, when it ends).
    open: Mutex<HashMap<String, (usize, Instant)>>,
    /// Address → (failures, when its window began).
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Sessions {
    /// Opens a session for the token at `index`; returns its id.
    pub fn open(&self, index: usize) -> Option<String> {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = self.open.lock().ok()?;
        let now = Instant::now();
        open.retain(|_, (_, until)| *until > now);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open.iter().min_by_key(|(_, (_, until))| *until).map(|(k, _)| k.clone())
        {
            open.remove(&oldest);
        }
        open.insert(id.clone(), (index, now + LIFETIME));
        Some(id)
    }

    /// The token index of a live session.
    pub fn token_of(&self, id: &str) -> Option<usize> {
        let open = self.open.lock().ok()?;
        open.get(id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(i, _)| *i)
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(id);
        }
    }

    /// Seconds until `ip` may try again, while it is over [`MAX_FAILURES`].
    pub fn blocked_for(&self, ip: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().ok()?;
        let (count, since) = failures.get(&ip)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (*count >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    /// Counts a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let Ok(mut failures) = self.failures.lock() else { return };
        let now = Instant::now();
        if failures.len() >= MAX_ADDRESSES && !failures.contains_key(&ip) {
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if failures.len() >= MAX_ADDRESSES
                && let Some(oldest) = failures.iter().min_by_key(|(_, (_, s))| *s).map(|(k, _)| *k)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(ip).or_insert((0, now));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

/// The session ids a request's `Cookie` headers carry.
pub fn ids(headers: &axum::http::HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(cookie_of)
}

/// The session id in a `Cookie` header.
pub fn cookie_of(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The login page; `message` says why it is shown again.
pub fn login_page(message: Option<&str>) -> String {
    let message = message.map_or(String::new(), |m| {
        format!("<p class=\"error\">{}</p>", super::html::esc(m))
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>snbox — sign in</title>\
         <style>body{{font-family:sans-serif;margin:3em auto;max-width:24em}}input{{width:100%;padding:.4em;margin:.5em 0}}\
         button{{padding:.4em 1.2em}}.error{{color:#a00}}</style></head><body><h1>snbox status</h1>{message}\
         <form method=\"post\" action=\"/login\"><label for=\"token\">Access token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\">Sign in</button></form></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_limit_block_the_address_for_the_window() {
        let s = Sessions::default();
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        for _ in 0..MAX_FAILURES - 1 {
            s.failed(ip);
        }
        assert_eq!(s.blocked_for(ip), None);
        s.failed(ip);
        assert!(s.blocked_for(ip).is_some_and(|left| left <= 60));
        assert_eq!(s.blocked_for("192.0.2.8".parse().expect("ip")), None);
    }

    #[test]
    fn a_session_names_its_token_until_closed() {
        let s = Sessions::default();
        let id = s.open(3).expect("session");
        assert_eq!(id.len(), 64);
        assert_eq!(s.token_of(&id), Some(3));
        assert_eq!(cookie_of(&format!("a=b; {COOKIE}={id}; c=d")), Some(id.as_str()));
        s.close(&id);
        assert_eq!(s.token_of(&id), None);
    }
}
