//! Who asks, and whether they may: the admin, or a viewer (an RTSP user logged in on the
//! HTTP side, who may watch the paths it may `read`), and the rule `admit` from a route's
//! `Access` and the path it reads to a pass or a refusal.
//!
//! Owns: `Viewer` (a user's name and grants, or the one path a live link opens) and
//! `admit`. Pure, unit-tested. Does not own: checking credentials (`login`, which resolves
//! a request's `Verdict` once), which route needs what (`routes::Route::access` and
//! `Route::read_path`), the MediaMTX-style rule itself (`auth::permissions`), turning a
//! refusal into an answer (`mod.rs`).

use std::time::Duration;

use super::login::Verdict;
use super::routes::Access;
use crate::auth::permissions::{self, Action, Permission};

/// An RTSP user logged in on the HTTP side (or a live link, which opens one path): may
/// watch what it may `read` and nothing else. Never carries the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// The user's name; empty for a live link.
    pub name: String,
    /// The user's grants as the config writes them; `None`: read every path (a user
    /// without a `permissions` list).
    grants: Option<Vec<Permission>>,
}

impl Viewer {
    pub fn new(name: &str, grants: Option<Vec<Permission>>) -> Self {
        Viewer {
            name: name.to_string(),
            grants,
        }
    }

    /// What a live link grants: reading `path`, and only that.
    pub fn of_link(path: &str) -> Self {
        Viewer::new(
            "",
            Some(vec![Permission {
                action: Action::Read,
                path: Some(path.to_string()),
            }]),
        )
    }

    /// May this viewer watch `path`? (`publish` alone is not watching.)
    pub fn may_read(&self, path: &str) -> bool {
        permissions::allowed(true, Some(self.grants.as_deref()), Action::Read, path)
            == permissions::Verdict::Allowed
    }
}

/// Why a request does not get through (`mod.rs` makes it an `ApiError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An admin route before the first-run setup: 403 `setup_required`.
    SetupRequired,
    /// No or wrong credentials: 401 (`wrong`: some were sent and refused).
    LogIn { wrong: bool },
    /// Too many failed logins from this address: 429.
    Wait(Duration),
    /// A viewer on a route that is the admin's: 403 `admin_only`.
    AdminOnly,
    /// A viewer on a path it may not read: 403 `not_allowed` (whether or not it exists).
    NotReadable,
}

/// Whether `verdict` may use a route of `access` that reads `path` (when it names one).
///
/// Before the first-run setup `Status` and `Viewer` routes are open to all (nothing can
/// be changed then); after it the admin may do everything, a viewer only `Viewer` routes
/// and only on the paths it may read, anybody else nothing but `Open` routes.
pub fn admit(access: Access, path: Option<&str>, verdict: &Verdict) -> Result<(), Refusal> {
    match (access, verdict) {
        (Access::Open, _) | (_, Verdict::Admin) => Ok(()),
        (Access::Status | Access::Viewer, Verdict::SetupRequired) => Ok(()),
        (Access::Admin, Verdict::SetupRequired) => Err(Refusal::SetupRequired),
        (_, Verdict::Wait(wait)) => Err(Refusal::Wait(*wait)),
        (Access::Viewer, Verdict::Viewer(v)) => match path {
            Some(p) if !v.may_read(p) => Err(Refusal::NotReadable),
            _ => Ok(()),
        },
        (Access::Status | Access::Admin, Verdict::Viewer(_)) => Err(Refusal::AdminOnly),
        (_, Verdict::Wrong) => Err(Refusal::LogIn { wrong: true }),
        (_, Verdict::Anonymous) => Err(Refusal::LogIn { wrong: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::permissions::grant;

    #[test]
    fn viewers_read_what_their_grants_say() {
        let all = Viewer::new("v", None);
        assert!(all.may_read("cam") && all.may_read("door"));
        let door = Viewer::new("v", Some(vec![grant(Action::Read, Some("door"))]));
        assert!(door.may_read("door") && !door.may_read("cam"));
        // Publishing is not watching.
        let pusher = Viewer::new("p", Some(vec![grant(Action::Publish, Some("cam"))]));
        assert!(!pusher.may_read("cam"));
        let every = Viewer::new("e", Some(vec![grant(Action::Read, None)]));
        assert!(every.may_read("anything"));
        let link = Viewer::of_link("cam");
        assert!(link.may_read("cam") && !link.may_read("door"));
    }

    #[test]
    fn admit_by_access_and_who() {
        use Access::*;
        let door = Verdict::Viewer(super::Viewer::new(
            "v",
            Some(vec![grant(Action::Read, Some("door"))]),
        ));
        let wait = Duration::from_secs(3);
        for access in [Open, Status, Viewer, Admin] {
            assert_eq!(admit(access, Some("cam"), &Verdict::Admin), Ok(()));
            assert_eq!(admit(access, None, &Verdict::Admin), Ok(()));
        }
        // Before the first-run setup: reads are open, changes refused.
        assert_eq!(admit(Status, None, &Verdict::SetupRequired), Ok(()));
        assert_eq!(admit(Viewer, Some("cam"), &Verdict::SetupRequired), Ok(()));
        assert_eq!(
            admit(Admin, None, &Verdict::SetupRequired),
            Err(Refusal::SetupRequired)
        );
        // A viewer: its own paths, lists (filtered by the handler), nothing of the admin's.
        assert_eq!(admit(Viewer, Some("door"), &door), Ok(()));
        assert_eq!(admit(Viewer, None, &door), Ok(()));
        assert_eq!(admit(Viewer, Some("cam"), &door), Err(Refusal::NotReadable));
        assert_eq!(admit(Status, None, &door), Err(Refusal::AdminOnly));
        assert_eq!(admit(Admin, Some("door"), &door), Err(Refusal::AdminOnly));
        assert_eq!(admit(Open, None, &door), Ok(()));
        // Nobody or a wrong login: only open routes.
        for access in [Status, Viewer, Admin] {
            assert_eq!(
                admit(access, None, &Verdict::Anonymous),
                Err(Refusal::LogIn { wrong: false })
            );
            assert_eq!(
                admit(access, None, &Verdict::Wrong),
                Err(Refusal::LogIn { wrong: true })
            );
            assert_eq!(
                admit(access, None, &Verdict::Wait(wait)),
                Err(Refusal::Wait(wait))
            );
        }
        assert_eq!(admit(Open, None, &Verdict::Wrong), Ok(()));
    }
}
