//! `snbox pair`: provision the box with a one-time token (protocol.md §5.1).

use std::path::PathBuf;
use std::process::ExitCode;

use super::bad;
use snbox::central::pair::{self, PairError, Request};
use snbox::central::trust::Trust;
use snbox::secret::Secret;
use snbox::settings::{self, Mode, Settings};

pub struct Args {
    pub config: Option<PathBuf>,
    pub central: String,
    pub token: String,
    pub ca_cert_hash: Option<String>,
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = args.config.unwrap_or_else(|| PathBuf::from(settings::DEFAULT_PATH));
    let settings = Settings::load(&path).map_err(|problems| {
        for p in &problems.0 {
            eprintln!("{}: {p}", path.display());
        }
        bad(format!("{}: invalid settings", path.display()))
    })?;
    let trust = match &settings.mode {
        Mode::Central(c) => c.ca_file.clone().map_or(Trust::System, Trust::CaFile),
        _ => Trust::System,
    };
    let request = Request {
        central: args.central,
        token: Secret::new(args.token),
        ca_cert_hash: args.ca_cert_hash,
        force: args.force,
        trust,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    match runtime.block_on(pair::pair(&settings.state_dir, request)) {
        Ok(identity) => {
            outln!(
                "paired with {} as box {} at node {}; identity in {}",
                identity.central_url,
                identity.box_id,
                identity.node,
                snbox::central::Identity::path(&settings.state_dir).display()
            );
            if matches!(settings.mode, Mode::Standalone { .. }) {
                outln!(
                    "note: {} still has [standalone]; replace it with [central] url = \"{}\" for the daemon to use the central server",
                    path.display(),
                    identity.central_url
                );
            }
            outln!("restart the daemon to use it: systemctl restart snbox");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ PairError::Central(_)) => Err(anyhow::Error::new(e)),
        Err(e) if e.is_bad_input() => Err(bad(e.to_string())),
        Err(e) => Err(anyhow::Error::new(e)),
    }
}
