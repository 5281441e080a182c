//! `vigint`: command line, logger, exit codes. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use vigint::config::{Config, ConfigError, DEFAULT_PATH};

const USAGE: &str = "\
vigint: turns a camera (or a test pattern) into an RTSP network camera

Usage:
  vigint [OPTIONS]
  vigint --check-config FILE
  vigint --list-cameras [--json]

Options:
  --config FILE        JSON config file (see docs/CONFIG.md); without it, path `cam` from `auto`
  --rtsp-listen ADDR   RTSP address, e.g. 0.0.0.0:8554
  --http-listen ADDR   HTTP address, e.g. 0.0.0.0:8080
  --source SPEC        auto | test-pattern[:WIDTHxHEIGHT@FPS] | /dev/videoN (the `cam` path,
                       or the only path of the config)
  --data-dir DIR       where recordings and state live
  --log-level LEVEL    error | warn | info | debug | trace
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
    check_config: Option<PathBuf>,
    list_cameras: bool,
    json: bool,
}

enum Command {
    Run(Args),
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
            Long("check-config") => args.check_config = Some(parser.value()?.into()),
            Long("list-cameras") => args.list_cameras = true,
            Long("json") => args.json = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Command::Run(args))
}

/// Loads the config and applies command-line overrides; the result is validated.
fn build_config(args: &Args) -> Result<Config, ConfigError> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let addr = |field: &str, v: &str| {
        v.parse().map_err(|_| ConfigError {
            field: field.to_string(),
            reason: format!("`{v}` is not an address like 0.0.0.0:8554"),
        })
    };
    if let Some(v) = &args.rtsp_listen {
        cfg.rtsp.listen = addr("--rtsp-listen", v)?;
    }
    if let Some(v) = &args.http_listen {
        cfg.http.listen = addr("--http-listen", v)?;
    }
    if let Some(v) = &args.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(v) = &args.log_level {
        cfg.log_level = v.clone();
    }
    if let Some(src) = &args.source {
        let name = if cfg.paths.len() == 1 {
            cfg.paths.keys().next().cloned().unwrap_or_default()
        } else {
            DEFAULT_PATH.to_string()
        };
        match cfg.paths.get_mut(&name) {
            Some(p) => p.source = src.clone(),
            None => {
                return Err(ConfigError {
                    field: "--source".into(),
                    reason: format!("the config has several paths and none is named `{DEFAULT_PATH}`; set each path's source in the file"),
                })
            }
        }
    }
    cfg.validate()?;
    Ok(cfg)
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
    let cfg = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigint: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    vigint::logger::init(&cfg.log_level);
    log::info!("vigint {} starting", env!("CARGO_PKG_VERSION"));
    match vigint::app::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `--list-cameras`: a table for people, or JSON for scripts.
fn list_cameras(json: bool) -> ExitCode {
    let cameras = vigint::capture::v4l2::list_cameras();
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
