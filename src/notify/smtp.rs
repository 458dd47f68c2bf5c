//! Mail through the configured SMTP server (lettre on rustls/ring): STARTTLS, implicit TLS, or
//! none to a loopback relay; AUTH when a user is set; one connection per message.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message as Mail};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::Failure;
use super::message::Message;
use crate::settings::{Security, Smtp};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    /// `host:port`, for messages.
    pub server: String,
}

impl Mailer {
    pub fn new(smtp: &Smtp, timeout: Duration) -> Result<Mailer, String> {
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|e| format!("notify.smtp.from {:?} is not a mail address ({e})", smtp.from))?;
        let tls = match smtp.security {
            Security::None => Tls::None,
            Security::Starttls => Tls::Required(tls_parameters(smtp)?),
            Security::Tls => Tls::Wrapper(tls_parameters(smtp)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(timeout))
            .hello_name(hello_name());
        if let (Some(user), Some(password)) = (&smtp.user, &smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            timeout,
            server: smtp.server(),
        })
    }

    /// Sends `message` to `to`; the server's answer (`250 …`) or why not.
    pub async fn send(&self, to: &str, message: &Message) -> Result<String, Failure> {
        let to: Mailbox = to.parse().map_err(|e| Failure {
            permanent: true,
            text: format!("{to:?} is not a mail address ({e})"),
        })?;
        let mail = Mail::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .message_id(Some(message.message_id.clone()))
            .date_now()
            .user_agent(concat!("snbox/", env!("CARGO_PKG_VERSION")).to_string())
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone())
            .map_err(|e| Failure {
                permanent: true,
                text: format!("cannot build the message: {e}"),
            })?;
        // lettre's timeout covers each read and write; this bounds the whole exchange.
        let sent = tokio::time::timeout(self.timeout * 2, self.transport.send(mail)).await;
        match sent {
            Err(_) => Err(Failure {
                permanent: false,
                text: format!("{}: no answer within {} s", self.server, (self.timeout * 2).as_secs()),
            }),
            Ok(Ok(answer)) => Ok(format!(
                "{} {}",
                answer.code(),
                answer.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(e)) => Err(Failure {
                permanent: e.is_permanent(),
                text: format!("{}: {}", self.server, error_chain(&e)),
            }),
        }
    }
}

fn tls_parameters(smtp: &Smtp) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("notify.smtp.ca_file {}: {e}", path.display()))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("notify.smtp.ca_file {}: no usable CA certificate ({e})", path.display()))?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| format!("TLS to the mail server: {e}"))
}

/// The name the box gives in `EHLO`: its host name, or `[127.0.0.1]` as lettre does.
fn hello_name() -> ClientId {
    crate::host_name().map_or_else(ClientId::default, ClientId::Domain)
}

/// An error with its causes, each once (lettre's Display omits its source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
