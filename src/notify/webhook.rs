//! Webhooks: an HTTPS POST of a JSON body per notification, with an optional bearer token,
//! trusting what the central client trusts (the system's roots, or a CA file).

use std::time::Duration;

use super::Failure;
use super::message::Message;
use crate::central::trust::{self, Shown, Trust};
use crate::settings::Webhook;

/// The largest answer read from a webhook: its status is what counts.
const ANSWER_BYTES: usize = 4096;

pub struct Hook {
    pub webhook: Webhook,
    http: reqwest::Client,
    timeout: Duration,
}

impl Hook {
    pub fn new(index: usize, webhook: &Webhook, timeout: Duration) -> Result<Hook, String> {
        let trust = match &webhook.ca_file {
            Some(path) => Trust::CaFile(path.clone()),
            None => Trust::System,
        };
        let field = format!("notify.webhook[{index}].ca_file");
        let tls = trust::client_config_for(&trust, Shown::default(), &field)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("snbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Hook {
            webhook: webhook.clone(),
            http,
            timeout,
        })
    }

    /// POSTs the message's JSON body; `HTTP 200` or why not. A 4xx other than 408 and 429 is
    /// permanent: the same request would be refused again.
    pub async fn send(&self, message: &Message) -> Result<String, Failure> {
        let shown = self.webhook.shown();
        let body = message.json.as_ref().ok_or_else(|| Failure {
            permanent: true,
            text: "this message has no webhook body".into(),
        })?;
        let mut request = self
            .http
            .post(self.webhook.url.clone())
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("x-snbox-message-id", message.message_id.clone())
            .body(serde_json::to_vec(body).unwrap_or_default());
        if let Some(token) = &self.webhook.bearer_token {
            request = request.bearer_auth(token.expose());
        }
        let mut answer = request.send().await.map_err(|e| Failure {
            permanent: false,
            text: format!("{shown}: {}", crate::tls::error_text(&e)),
        })?;
        let status = answer.status().as_u16();
        let mut excerpt = Vec::new();
        while excerpt.len() < ANSWER_BYTES {
            match tokio::time::timeout(self.timeout, answer.chunk()).await {
                Ok(Ok(Some(chunk))) => excerpt.extend_from_slice(&chunk),
                _ => break,
            }
        }
        excerpt.truncate(ANSWER_BYTES);
        let excerpt: String = String::from_utf8_lossy(&excerpt)
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        if (200..300).contains(&status) {
            Ok(format!("HTTP {status}"))
        } else {
            Err(Failure {
                permanent: (400..500).contains(&status) && status != 408 && status != 429,
                text: format!("{shown} answered HTTP {status}: {excerpt}"),
            })
        }
    }
}
