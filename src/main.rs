//! `vigint`: command line, logger, exit codes. Everything else lives in the library.
// The command line talks to its user on stdout and stderr (before and beside the logger).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use vigint::config::{Config, ConfigError, ConfigFile, Overrides};

const USAGE: &str = "\
vigint: turns a camera (or a test pattern) into an RTSP network camera

Usage:
  vigint [OPTIONS]
  vigint --check-config FILE
  vigint --list-cameras [--json]

Options:
  --config FILE        JSON config file (see docs/CONFIG.md), saved when settings change over
                       HTTP; default DATA_DIR/vigint.json; missing: defaults (path `cam`, `auto`)
  --rtsp-listen ADDR   RTSP address, e.g. 0.0.0.0:8554
  --http-listen ADDR   HTTP address, e.g. 0.0.0.0:8080
  --source SPEC        auto | test-pattern[:WIDTHxHEIGHT@FPS] | /dev/videoN (the `cam` path,
                       or the only path of the config)
  --data-dir DIR       where recordings and state live
  --log-level LEVEL    error | warn | info | debug | trace
  --board ID           board profile (pi-zero-2w, pi3, pi4, pi5, generic-aarch64, generic-x86_64);
                       default: the config's `board`, else detected from /proc/device-tree/model
  --first-boot FILE    a partial config merged into the config file at start, then removed
                       (default /boot/firmware/vigint.json; see docs/CONFIG.md)
  --check-config FILE  validate FILE: exit 0 if valid, else print the field and reason, exit 2
  --list-cameras       V4L2 capture devices: driver, card, formats, sizes, frame rates
  --json               with --list-cameras: print JSON instead of a table
  -h, --help           this text
  -V, --version        the version

Exit codes: 0 clean stop, 1 runtime failure, 2 bad command line or config.";

#[derive(Default)]
struct Args {
    config: Option<PathBuf>,
    rtsp_listen: Option<String>,
    http_listen: Option<String>,
    source: Option<String>,
    data_dir: Option<PathBuf>,
    log_level: Option<String>,
    board: Option<String>,
    first_boot: Option<PathBuf>,
    check_config: Option<PathBuf>,
    list_cameras: bool,
    json: bool,
}

enum Command {
    Run(Box<Args>),
    Help,
    Version,
}

fn parse_args() -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") => args.config = Some(parser.value()?.into()),
            Long("rtsp-listen") => args.rtsp_listen = Some(parser.value()?.string()?),
            Long("http-listen") => args.http_listen = Some(parser.value()?.string()?),
            Long("source") => args.source = Some(parser.value()?.string()?),
            Long("data-dir") => args.data_dir = Some(parser.value()?.into()),
            Long("log-level") => args.log_level = Some(parser.value()?.string()?),
            Long("board") => args.board = Some(parser.value()?.string()?),
            Long("first-boot") => args.first_boot = Some(parser.value()?.into()),
            Long("check-config") => args.check_config = Some(parser.value()?.into()),
            Long("list-cameras") => args.list_cameras = true,
            Long("json") => args.json = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Command::Run(Box::new(args)))
}

/// Where the config lives: `--config`, else `vigint.json` in the data directory.
fn config_file(args: &Args) -> PathBuf {
    match &args.config {
        Some(p) => p.clone(),
        None => args
            .data_dir
            .clone()
            .unwrap_or_else(|| Config::default().data_dir)
            .join("vigint.json"),
    }
}

/// The command-line settings that win over the file for this run.
fn overrides(args: &Args) -> Result<Overrides, ConfigError> {
    let addr = |field: &str, v: &Option<String>| -> Result<Option<SocketAddr>, ConfigError> {
        v.as_deref()
            .map(|v| {
                v.parse().map_err(|_| ConfigError {
                    field: field.to_string(),
                    reason: format!("`{v}` is not an address like 0.0.0.0:8554"),
                })
            })
            .transpose()
    };
    Ok(Overrides {
        rtsp_listen: addr("--rtsp-listen", &args.rtsp_listen)?,
        http_listen: addr("--http-listen", &args.http_listen)?,
        data_dir: args.data_dir.clone(),
        log_level: args.log_level.clone(),
        source: args.source.clone(),
    })
}

/// Loads the config file once (a missing one means defaults: it is created on the first
/// change saved from the API), chooses the board profile (`--board`, the file's `board`,
/// the device tree), and builds this run's config in one step: the file, the profile's
/// defaults for what its paths leave unset, then the command-line overrides.
fn load(
    args: &Args,
) -> Result<(ConfigFile, Overrides, Config, vigint::board::BoardReport), ConfigError> {
    let path = config_file(args);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ConfigError::new(
                "",
                format!("cannot read {}: {e}", path.display()),
            ))
        }
    };
    let file = match &text {
        Some(t) => Config::from_json(t)?,
        None => Config::default(),
    };
    let choice = vigint::board::choose(
        args.board.as_deref(),
        file.board.as_deref(),
        &vigint::board::DeviceTreeModel::default(),
        std::env::consts::ARCH,
    )
    .map_err(|reason| ConfigError::new("", reason))?;
    let overrides = overrides(args)?;
    let run = overrides.apply(&file.with_defaults(&choice.profile.video))?;
    let doc = text
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let sources: Vec<(String, String)> = run
        .paths
        .iter()
        .map(|(n, p)| (n.clone(), p.source.clone()))
        .collect();
    let board =
        vigint::board::BoardReport::new(&choice, vigint::board::defaults_taken(&doc, &sources));
    Ok((ConfigFile { path, config: file }, overrides, run, board))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Command::Run(a)) => a,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("vigint {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vigint: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.json && !args.list_cameras {
        eprintln!("vigint: --json only goes with --list-cameras\n\n{USAGE}");
        return ExitCode::from(2);
    }
    if args.list_cameras {
        return list_cameras(args.json);
    }
    if let Some(file) = &args.check_config {
        return match Config::load(file) {
            Ok(_) => {
                println!("{}: valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::from(2)
            }
        };
    }
    // Before the config is read: the first-boot file changes it. Logged once the logger runs.
    let first_boot = vigint::firstboot::apply(
        args.first_boot
            .as_deref()
            .unwrap_or(std::path::Path::new(vigint::firstboot::DEFAULT_PATH)),
        &config_file(&args),
    );
    let (file, overrides, cfg, board) = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            if let Some(fb) = first_boot.as_ref().and_then(|r| r.error.as_ref()) {
                eprintln!("vigint: first boot: {fb}");
            }
            eprintln!("vigint: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    vigint::logger::init(&cfg.log_level);
    log::info!("vigint {} starting", env!("CARGO_PKG_VERSION"));
    if let Some(report) = &first_boot {
        report.log();
    }
    let v = board.video_defaults;
    log::info!(
        "board: {} ({}, {}); defaults for what a path leaves unset: {}x{}@{}, {} kbit/s",
        board.name,
        board.id,
        board.chosen_by.as_str(),
        v.width,
        v.height,
        v.fps,
        v.bitrate_kbps
    );
    if file.path.exists() {
        log::info!("config: {}", file.path.display());
    } else {
        log::info!(
            "config: {} does not exist yet: defaults in use; the first change saved from the page creates it",
            file.path.display()
        );
    }
    let startup = vigint::app::Startup {
        board: Some(board),
        first_boot,
    };
    match vigint::app::run_with(file, overrides, cfg, startup) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `--list-cameras`: a table for people, or JSON for scripts.
fn list_cameras(json: bool) -> ExitCode {
    let cameras = vigint::source::v4l2::list_cameras();
    if json {
        match serde_json::to_string_pretty(&cameras) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("vigint: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    if cameras.is_empty() {
        println!("no V4L2 capture devices found");
        return ExitCode::SUCCESS;
    }
    for cam in &cameras {
        println!(
            "{}: {} (driver {}, {})",
            cam.path, cam.card, cam.driver, cam.bus
        );
        for f in &cam.formats {
            let note = if f.format.is_some() {
                ""
            } else {
                "  (not usable)"
            };
            println!("  {:<4}  {}{note}", f.fourcc, f.description);
            for size in &f.sizes {
                let rates: Vec<String> = size.intervals.iter().map(|i| i.to_string()).collect();
                let rates = if rates.is_empty() {
                    "rates not listed".to_string()
                } else {
                    format!("{} fps", rates.join(" "))
                };
                println!("        {}x{}: {rates}", size.width, size.height);
            }
        }
    }
    ExitCode::SUCCESS
}
