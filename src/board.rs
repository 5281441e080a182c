//! Board profiles: what vigint assumes about the board it runs on.
//!
//! Owns: the profiles in `board/profiles/*.json` (embedded, so the binary is self-contained),
//! their checks, detection from the device tree's model string (read through `ModelSource`,
//! so tests use fixture files), the choice between the command line, the config and
//! detection, and the report status shows. A profile gives a path's picture and bitrate
//! defaults, LED defaults (plain data: the LED subsystem decides what to do with them) and
//! the encode routes the board has. Does not own: applying defaults to a config (`config`),
//! driving the LED (`led`), or encoding (`encode`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Every embedded profile, in detection order (a model string matches at most one: tested).
const PROFILE_TEXTS: [(&str, &str); 6] = [
    (
        "pi-zero-2w.json",
        include_str!("../board/profiles/pi-zero-2w.json"),
    ),
    ("pi3.json", include_str!("../board/profiles/pi3.json")),
    ("pi4.json", include_str!("../board/profiles/pi4.json")),
    ("pi5.json", include_str!("../board/profiles/pi5.json")),
    (
        "generic-aarch64.json",
        include_str!("../board/profiles/generic-aarch64.json"),
    ),
    (
        "generic-x86_64.json",
        include_str!("../board/profiles/generic-x86_64.json"),
    ),
];

/// Where Linux shows the board's model on device-tree machines (Pis and most ARM boards).
pub const DEVICE_TREE_MODEL: &str = "/proc/device-tree/model";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What `--board` and the config's `board` name.
    pub id: String,
    pub name: String,
    /// The chip and cores, for people reading status.
    pub soc: String,
    /// Substrings of the device tree's model that mean this board.
    #[serde(default)]
    pub models: Vec<String>,
    /// Architectures (`std::env::consts::ARCH`) for which this is the profile of an unknown
    /// board.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_for_arch: Vec<String>,
    pub led: LedDefaults,
    pub video: VideoDefaults,
    /// How the video defaults were chosen (measured or estimated).
    pub video_basis: String,
    pub encode_routes: Vec<EncodeRoute>,
}

/// The board's status LED, as the `led` config would name it. Plain data: the LED
/// subsystem turns it into a driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedDefaults {
    /// `sysfs` (a Linux LED class device), `gpio` (a pin), or `none`.
    pub driver: String,
    /// `/sys/class/leds` names to try in order: the Pi's activity LED is `ACT` on current
    /// kernels, `led0` on older Raspberry Pi kernels.
    pub names: Vec<String>,
    /// BCM GPIO number for `gpio`. The Pis' own LEDs belong to the kernel's LED driver
    /// (which owns the pin), so their profiles use `sysfs` and no pin.
    pub pin: Option<u8>,
    pub active_low: bool,
}

/// A path's picture and bitrate when its config does not set them: the board profile's
/// (`board`), merged into the config in one step (`Config::with_defaults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoDefaults {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
}

impl VideoDefaults {
    /// Vigint's defaults where no board profile is in force (library users, unit tests).
    pub const BUILT_IN: VideoDefaults = VideoDefaults {
        width: 1280,
        height: 720,
        fps: 30,
        bitrate_kbps: 2000,
    };
}

/// How frames can become H.264 on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// openh264 on the CPU.
    Software,
    /// The camera's own H.264, passed through.
    Passthrough,
    /// A hardware encoder of the board.
    Hardware,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeRoute {
    pub route: Route,
    /// Whether vigint uses this route today.
    pub used: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub note: String,
}

impl Profile {
    /// Checks what the rest of vigint relies on; the reason names the field.
    pub fn check(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(format!(
                "id `{}`: lowercase letters, digits, - and _",
                self.id
            ));
        }
        if self.models.iter().any(|m| m.trim().is_empty()) {
            return Err("models: an empty substring would match every board".into());
        }
        if self.models.is_empty() && self.fallback_for_arch.is_empty() {
            return Err("neither models nor fallback_for_arch: never chosen".into());
        }
        let v = &self.video;
        let even = |n: u32| (16..=4096).contains(&n) && n.is_multiple_of(2);
        if !even(v.width) || !even(v.height) {
            return Err("video: width and height must be even, 16 to 4096".into());
        }
        if !(1..=120).contains(&v.fps) || !(50..=50_000).contains(&v.bitrate_kbps) {
            return Err("video: fps 1 to 120, bitrate_kbps 50 to 50000".into());
        }
        let led = &self.led;
        match led.driver.as_str() {
            "sysfs" if led.names.is_empty() => {
                return Err("led: sysfs needs at least one name".into())
            }
            "gpio" if led.pin.is_none() => return Err("led: gpio needs a pin".into()),
            "sysfs" | "gpio" | "none" => {}
            other => return Err(format!("led.driver `{other}`: sysfs, gpio or none")),
        }
        if !self
            .encode_routes
            .iter()
            .any(|r| r.route == Route::Software)
        {
            return Err("encode_routes: software encoding works on every board".into());
        }
        Ok(())
    }

    fn matches(&self, model: &str) -> bool {
        self.models.iter().any(|m| model.contains(m.as_str()))
    }
}

/// Every embedded profile, parsed. A broken profile is a build defect (the tests parse and
/// check each one), so it is left out with a message rather than stopping a camera.
pub fn profiles() -> &'static [Profile] {
    static PROFILES: std::sync::OnceLock<Vec<Profile>> = std::sync::OnceLock::new();
    PROFILES.get_or_init(|| {
        PROFILE_TEXTS
            .iter()
            .filter_map(|(file, text)| match parse(file, text) {
                Ok(p) => Some(p),
                Err(e) => {
                    // The board is chosen before the logger starts: straight to stderr.
                    #[allow(clippy::print_stderr)]
                    {
                        eprintln!("vigint: board/profiles/{e}");
                    }
                    None
                }
            })
            .collect()
    })
}

fn parse(file: &str, text: &str) -> Result<Profile, String> {
    let p: Profile = serde_json::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    p.check().map_err(|e| format!("{file}: {e}"))?;
    Ok(p)
}

/// The profile called `id`.
pub fn find(id: &str) -> Option<&'static Profile> {
    profiles().iter().find(|p| p.id == id)
}

/// Every profile id, for messages.
pub fn ids() -> Vec<&'static str> {
    profiles().iter().map(|p| p.id.as_str()).collect()
}

/// Where the board's model string comes from.
pub trait ModelSource {
    /// The model, without the device tree's trailing NUL; `None` where there is none.
    fn model(&self) -> Option<String>;
}

/// Reads a device-tree model file (`/proc/device-tree/model`, or a fixture in tests).
pub struct DeviceTreeModel(pub PathBuf);

impl Default for DeviceTreeModel {
    fn default() -> Self {
        DeviceTreeModel(PathBuf::from(DEVICE_TREE_MODEL))
    }
}

impl ModelSource for DeviceTreeModel {
    fn model(&self) -> Option<String> {
        model_from_bytes(&std::fs::read(&self.0).ok()?)
    }
}

/// The model text of a device-tree property: NUL-terminated, maybe not UTF-8.
pub fn model_from_bytes(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let model = text.trim_end_matches('\0').trim();
    (!model.is_empty()).then(|| model.to_string())
}

/// The profile of a known board model.
pub fn detect(model: &str) -> Option<&'static Profile> {
    profiles().iter().find(|p| p.matches(model))
}

/// The profile for an unknown board of architecture `arch`: x86_64 has its own, every
/// other architecture gets the generic ARM one (conservative defaults).
pub fn fallback(arch: &str) -> Option<&'static Profile> {
    let all = profiles();
    all.iter()
        .find(|p| p.fallback_for_arch.iter().any(|a| a == arch))
        .or_else(|| all.iter().find(|p| p.id == "generic-aarch64"))
}

/// Who chose the profile in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChosenBy {
    CommandLine,
    Config,
    /// The device tree's model string named a known board.
    DeviceTree,
    /// Unknown board: the generic profile of the architecture.
    Architecture,
}

impl ChosenBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ChosenBy::CommandLine => "--board",
            ChosenBy::Config => "the config's board",
            ChosenBy::DeviceTree => "detected from the device tree",
            ChosenBy::Architecture => "unknown board: the architecture's generic profile",
        }
    }
}

/// The profile in force and why.
#[derive(Debug, Clone)]
pub struct Choice {
    pub profile: &'static Profile,
    pub chosen_by: ChosenBy,
    /// The device tree's model, when there is one.
    pub model: Option<String>,
}

/// Picks the profile: `--board`, else the config's `board`, else the model, else the
/// architecture's generic profile. An unknown id is an error naming where it came from.
pub fn choose(
    cli: Option<&str>,
    config: Option<&str>,
    source: &dyn ModelSource,
    arch: &str,
) -> Result<Choice, String> {
    let model = source.model();
    let named = |id: &str, by: ChosenBy, what: &str| -> Result<Choice, String> {
        let profile = find(id)
            .ok_or_else(|| format!("{what}: unknown board `{id}`: one of {}", ids().join(", ")))?;
        Ok(Choice {
            profile,
            chosen_by: by,
            model: model.clone(),
        })
    };
    if let Some(id) = cli {
        return named(id, ChosenBy::CommandLine, "--board");
    }
    if let Some(id) = config {
        return named(id, ChosenBy::Config, "board");
    }
    if let Some(profile) = model.as_deref().and_then(detect) {
        return Ok(Choice {
            profile,
            chosen_by: ChosenBy::DeviceTree,
            model,
        });
    }
    let profile = fallback(arch).ok_or("no board profile is embedded (a build defect)")?;
    Ok(Choice {
        profile,
        chosen_by: ChosenBy::Architecture,
        model,
    })
}

/// The video fields a profile can fill in.
pub const VIDEO_FIELDS: [&str; 4] = ["width", "height", "fps", "bitrate_kbps"];

/// Which path fields of a config document took the board's defaults (`paths.cam.width`),
/// given the names and sources of the paths that run. A document without `paths` has the
/// default path, with nothing set; a `test-pattern:WxH@F` source sets its own geometry.
pub fn defaults_taken(doc: &serde_json::Value, run_paths: &[(String, String)]) -> Vec<String> {
    let paths = doc.get("paths").and_then(|p| p.as_object());
    let mut out = Vec::new();
    for (name, source) in run_paths {
        let set = paths.and_then(|p| p.get(name)).and_then(|p| p.as_object());
        let sized_pattern = source.starts_with("test-pattern:");
        for field in VIDEO_FIELDS {
            if field != "bitrate_kbps" && sized_pattern {
                continue;
            }
            if !set.is_some_and(|p| p.contains_key(field)) {
                out.push(format!("paths.{name}.{field}"));
            }
        }
    }
    out
}

/// The board as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardReport {
    pub id: String,
    pub name: String,
    pub chosen_by: ChosenBy,
    pub soc: String,
    pub video_defaults: VideoDefaults,
    pub video_basis: String,
    /// Config fields that took the profile's value when the config was read at start
    /// (`paths.cam.width`); a change saved from the page writes values of its own.
    pub defaults_applied: Vec<String>,
    pub led: LedDefaults,
    pub encode_routes: Vec<EncodeRoute>,
}

impl BoardReport {
    pub fn new(choice: &Choice, defaults_applied: Vec<String>) -> BoardReport {
        let p = choice.profile;
        BoardReport {
            id: p.id.clone(),
            name: p.name.clone(),
            chosen_by: choice.chosen_by,
            soc: p.soc.clone(),
            video_defaults: p.video,
            video_basis: p.video_basis.clone(),
            defaults_applied,
            led: p.led.clone(),
            encode_routes: p.encode_routes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> DeviceTreeModel {
        DeviceTreeModel(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("board/fixtures")
                .join(name),
        )
    }

    /// A model string given directly.
    struct Fixed(Option<&'static str>);
    impl ModelSource for Fixed {
        fn model(&self) -> Option<String> {
            self.0.map(str::to_string)
        }
    }

    #[test]
    fn every_embedded_profile_parses_and_checks() {
        for (file, text) in PROFILE_TEXTS {
            let p = parse(file, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format!("{}.json", p.id), file, "file named after its id");
        }
        assert_eq!(profiles().len(), PROFILE_TEXTS.len());
        let mut ids = ids();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), PROFILE_TEXTS.len(), "ids are unique");
        for id in [
            "pi-zero-2w",
            "pi3",
            "pi4",
            "pi5",
            "generic-aarch64",
            "generic-x86_64",
        ] {
            assert!(find(id).is_some(), "{id}");
        }
    }

    #[test]
    fn profile_checks_refuse_what_vigint_cannot_use() {
        let good = find("pi4").expect("pi4").clone();
        let mut p = good.clone();
        p.video.width = 641;
        assert!(p.check().unwrap_err().contains("video"));
        let mut p = good.clone();
        p.led.driver = "gpio".into();
        assert!(p.check().unwrap_err().contains("pin"));
        let mut p = good.clone();
        p.led.names.clear();
        assert!(p.check().unwrap_err().contains("sysfs"));
        let mut p = good.clone();
        p.models = vec![" ".into()];
        assert!(p.check().unwrap_err().contains("every board"));
        let mut p = good.clone();
        p.id = "Pi 4".into();
        assert!(p.check().is_err());
        assert!(parse("x.json", r#"{"id":"x"}"#).is_err());
        let unknown = text_with_extra_field(PROFILE_TEXTS[2].1);
        assert!(parse("pi4.json", &unknown)
            .unwrap_err()
            .contains("unknown field"));
    }

    fn text_with_extra_field(text: &str) -> String {
        text.replacen('{', "{ \"ledd\": 1,", 1)
    }

    #[test]
    fn real_model_strings_detect_their_board() {
        let cases = [
            ("pi-zero-2w.model", "pi-zero-2w"),
            ("pi3-b.model", "pi3"),
            ("pi3-b-plus.model", "pi3"),
            ("pi3-a-plus.model", "pi3"),
            ("cm3-plus.model", "pi3"),
            ("pi4-b.model", "pi4"),
            ("pi400.model", "pi4"),
            ("cm4.model", "pi4"),
            ("pi5-b.model", "pi5"),
            ("pi500.model", "pi5"),
            ("cm5.model", "pi5"),
        ];
        for (file, id) in cases {
            let raw = std::fs::read(&fixture(file).0).expect("fixture");
            assert_eq!(
                raw.last(),
                Some(&0),
                "{file}: NUL-terminated as in the device tree"
            );
            let model = fixture(file).model().expect("model");
            assert!(!model.contains('\0'), "{model:?}");
            // Each string matches exactly one profile, so detection order does not matter.
            let matching: Vec<&str> = profiles()
                .iter()
                .filter(|p| p.matches(&model))
                .map(|p| p.id.as_str())
                .collect();
            assert_eq!(matching, vec![id], "{file}: {model:?}");
            let c = choose(None, None, &fixture(file), "aarch64").expect("choice");
            assert_eq!(
                (c.profile.id.as_str(), c.chosen_by),
                (id, ChosenBy::DeviceTree)
            );
            assert_eq!(c.model.as_deref(), Some(model.as_str()));
        }
    }

    #[test]
    fn unknown_boards_get_their_architectures_generic_profile() {
        // A Pi Zero W (ARMv6) is not a Zero 2 W; a Rockchip board is unknown.
        for file in ["pi-zero-w.model", "rockpro64.model"] {
            let c = choose(None, None, &fixture(file), "aarch64").expect("choice");
            assert_eq!(c.profile.id, "generic-aarch64", "{file}");
            assert_eq!(c.chosen_by, ChosenBy::Architecture);
        }
        let none = fixture("no-such-file.model");
        assert_eq!(none.model(), None);
        let c = choose(None, None, &none, "x86_64").expect("choice");
        assert_eq!(
            (c.profile.id.as_str(), c.chosen_by),
            ("generic-x86_64", ChosenBy::Architecture)
        );
        for arch in ["aarch64", "arm", "riscv64"] {
            assert_eq!(
                choose(None, None, &none, arch).expect("c").profile.id,
                "generic-aarch64"
            );
        }
        assert_eq!(model_from_bytes(b"\0"), None);
        assert_eq!(
            model_from_bytes(b"  Board X \0\0").as_deref(),
            Some("Board X")
        );
    }

    #[test]
    fn the_command_line_beats_the_config_which_beats_detection() {
        let pi4 = fixture("pi4-b.model");
        let c = choose(Some("pi5"), Some("pi3"), &pi4, "aarch64").expect("c");
        assert_eq!(
            (c.profile.id.as_str(), c.chosen_by),
            ("pi5", ChosenBy::CommandLine)
        );
        assert_eq!(c.model.as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
        let c = choose(None, Some("pi3"), &pi4, "aarch64").expect("c");
        assert_eq!(
            (c.profile.id.as_str(), c.chosen_by),
            ("pi3", ChosenBy::Config)
        );
        let c = choose(
            None,
            None,
            &Fixed(Some("Raspberry Pi 4 Model B Rev 1.5")),
            "x86_64",
        )
        .expect("c");
        assert_eq!(
            (c.profile.id.as_str(), c.chosen_by),
            ("pi4", ChosenBy::DeviceTree)
        );
        let e = choose(Some("pi6"), None, &pi4, "aarch64").unwrap_err();
        assert!(
            e.starts_with("--board: unknown board `pi6`") && e.contains("pi5"),
            "{e}"
        );
        let e = choose(None, Some("pi6"), &Fixed(None), "aarch64").unwrap_err();
        assert!(e.starts_with("board: unknown board"), "{e}");
    }

    #[test]
    fn pi_profiles_say_what_their_hardware_has() {
        let has_hw = |id: &str| {
            find(id)
                .expect("profile")
                .encode_routes
                .iter()
                .any(|r| r.route == Route::Hardware)
        };
        assert!(has_hw("pi-zero-2w") && has_hw("pi3") && has_hw("pi4"));
        assert!(!has_hw("pi5"), "the Pi 5 has no H.264 encoder");
        for p in profiles() {
            assert!(p
                .encode_routes
                .iter()
                .all(|r| r.route != Route::Hardware || !r.used));
            if p.id.starts_with("pi") {
                assert_eq!(p.led.driver, "sysfs");
                assert_eq!(p.led.names[0], "ACT", "{}", p.id);
            }
        }
        let v = find("pi-zero-2w").expect("zero").video;
        assert_eq!((v.width, v.height, v.fps), (640, 480, 15));
        assert_eq!(
            find("generic-x86_64").expect("x86").video,
            VideoDefaults::BUILT_IN
        );
    }

    #[test]
    fn defaults_are_taken_only_where_the_config_leaves_a_field_unset() {
        let doc = serde_json::json!({"paths": {
            "a": {"width": 800, "height": 600, "source": "/dev/video0"},
            "b": {"source": "test-pattern:320x240@5"},
            "c": {"bitrate_kbps": 900, "fps": 10}
        }});
        let run = |names: &[(&str, &str)]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect()
        };
        let taken = defaults_taken(
            &doc,
            &run(&[
                ("a", "/dev/video0"),
                ("b", "test-pattern:320x240@5"),
                ("c", "auto"),
            ]),
        );
        assert_eq!(
            taken,
            [
                "paths.a.fps",
                "paths.a.bitrate_kbps",
                "paths.b.bitrate_kbps",
                "paths.c.width",
                "paths.c.height"
            ]
        );
        // No file, or no paths in it: the default path takes all four.
        let taken = defaults_taken(&serde_json::json!({}), &run(&[("cam", "auto")]));
        assert_eq!(taken.len(), 4);
    }
}
