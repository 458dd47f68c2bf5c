//! `snbox notify test`: a test message through every configured channel, and what each
//! server answered (the technician's way to check `[notify]` on site).

use std::path::PathBuf;
use std::process::ExitCode;

use super::bad;
use snbox::central::identity::Identity;
use snbox::notify::{Channels, message};
use snbox::record::Channel;
use snbox::settings::{self, Mode, Settings};

pub fn test(config: Option<PathBuf>, to: Vec<String>) -> anyhow::Result<ExitCode> {
    let path = config.unwrap_or_else(|| PathBuf::from(settings::DEFAULT_PATH));
    let settings = Settings::load(&path).map_err(|problems| {
        for p in &problems.0 {
            eprintln!("{}: {p}", path.display());
        }
        bad(format!("{}: invalid settings", path.display()))
    })?;
    let notify = &settings.notify;
    if !notify.has_channels() {
        return Err(bad(format!(
            "{}: [notify] has neither smtp nor webhook: nothing to test",
            path.display()
        )));
    }
    for (i, address) in to.iter().enumerate() {
        settings::check_address(address).map_err(|why| bad(format!("--to #{}: {why}", i + 1)))?;
    }
    let recipients = if to.is_empty() { notify.admin.clone() } else { to };
    if notify.smtp.is_some() && recipients.is_empty() {
        return Err(bad("give --to ADDRESS (or set notify.admin) for the test mail"));
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let channels = Channels::new(notify).map_err(|e| bad(format!("{}: [notify]: {e}", path.display())))?;
    let box_id = box_id(&settings);
    let from = notify.smtp.as_ref().map(|s| s.from.as_str()).unwrap_or_default();
    let message = message::test_message(&box_id, jiff::Timestamp::now(), &settings.timezone, from);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut failed = 0;
    let mut attempts: Vec<(Channel, String, String)> = Vec::new();
    if let Some(mailer) = &channels.mailer {
        for to in &recipients {
            attempts.push((Channel::Smtp, to.clone(), format!("smtp {} → {to}", mailer.server)));
        }
    }
    for hook in &channels.hooks {
        attempts.push((
            Channel::Webhook,
            hook.webhook.shown(),
            format!("webhook {}", hook.webhook.shown()),
        ));
    }
    for (channel, recipient, label) in attempts {
        match runtime.block_on(channels.send(channel, &recipient, &message)) {
            Ok(answer) => outln!("{label}: ok, the server answered {answer}"),
            Err(f) => {
                failed += 1;
                outln!(
                    "{label}: FAILED ({}): {}",
                    if f.permanent { "refused" } else { "would be retried" },
                    f.text
                );
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The box's id for the Message-ID: the paired identity's, or the standalone document's.
fn box_id(settings: &Settings) -> String {
    if let Ok(Some(identity)) = Identity::load(&settings.state_dir) {
        return identity.box_id;
    }
    if let Mode::Standalone { document, .. } = &settings.mode
        && let Ok(plan) =
            snbox::planning::plan_from_file(document, &settings.timezone, settings.limits.max_document_bytes)
    {
        return plan.box_id;
    }
    "unpaired".to_string()
}
