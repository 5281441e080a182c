//! What a user may do, in the style of MediaMTX's internal users: `read` (watch) and
//! `publish` (push a stream) on one path or on all of them.
//!
//! Owns: `Permission` (as the config writes it) and the rule `allowed`. A user without a
//! `permissions` list may read every path and publish nowhere (today's behaviour, and
//! nobody publishes without being named for it); an anonymous client may read only where
//! no users are configured, and never publish. Pure. Does not own: who the user is
//! (`rtsp::auth`, `http::login`) or where users are stored (`config`).

use serde::{Deserialize, Serialize};

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    Publish,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Publish => "publish",
        }
    }
}

/// One grant: `action` on `path`, or on every path when `path` is unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Credentials are needed (or were wrong): 401 and a challenge.
    LogIn,
    /// The user is known but may not do this: 403.
    Forbidden,
}

/// May `user` (with its `permissions`; `None` when anonymous) do `action` on `path`?
/// `users_configured`: whether any user exists (else reading is open to all).
pub fn allowed(
    users_configured: bool,
    user: Option<Option<&[Permission]>>,
    action: Action,
    path: &str,
) -> Verdict {
    match (user, action) {
        // Anonymous: reading is open only on a device without users; publishing never.
        (None, Action::Read) if !users_configured => Verdict::Allowed,
        (None, _) => Verdict::LogIn,
        // No list: today's users, who may watch everything and publish nothing.
        (Some(None), Action::Read) => Verdict::Allowed,
        (Some(None), Action::Publish) => Verdict::Forbidden,
        (Some(Some(perms)), _) => {
            let granted = perms
                .iter()
                .any(|p| p.action == action && p.path.as_deref().is_none_or(|p| p == path));
            if granted {
                Verdict::Allowed
            } else {
                Verdict::Forbidden
            }
        }
    }
}

/// A grant of `action` on `path` (every path when `None`): the unit tests' shorthand, here
/// and in `http::access`.
#[cfg(test)]
pub(crate) fn grant(action: Action, path: Option<&str>) -> Permission {
    Permission {
        action,
        path: path.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_publishes_anonymously_and_reading_is_open_only_without_users() {
        use Verdict::*;
        assert_eq!(allowed(false, None, Action::Read, "cam"), Allowed);
        assert_eq!(allowed(false, None, Action::Publish, "cam"), LogIn);
        assert_eq!(allowed(true, None, Action::Read, "cam"), LogIn);
        assert_eq!(allowed(true, None, Action::Publish, "cam"), LogIn);
    }

    #[test]
    fn users_without_a_list_read_everything_and_publish_nothing() {
        use Verdict::*;
        assert_eq!(allowed(true, Some(None), Action::Read, "any"), Allowed);
        assert_eq!(allowed(true, Some(None), Action::Publish, "any"), Forbidden);
    }

    #[test]
    fn grants_name_an_action_on_one_path_or_all() {
        use Verdict::*;
        let publisher = [grant(Action::Publish, Some("door"))];
        let p = Some(Some(&publisher[..]));
        assert_eq!(allowed(true, p, Action::Publish, "door"), Allowed);
        assert_eq!(allowed(true, p, Action::Publish, "cam"), Forbidden);
        assert_eq!(allowed(true, p, Action::Read, "door"), Forbidden);
        let all = [grant(Action::Read, None), grant(Action::Publish, Some("x"))];
        let a = Some(Some(&all[..]));
        assert_eq!(allowed(true, a, Action::Read, "anything"), Allowed);
        assert_eq!(allowed(true, a, Action::Publish, "x"), Allowed);
        assert_eq!(allowed(true, a, Action::Publish, "y"), Forbidden);
        let none: [Permission; 0] = [];
        assert_eq!(
            allowed(true, Some(Some(&none[..])), Action::Read, "cam"),
            Forbidden
        );
    }

    #[test]
    fn the_config_spelling() {
        let p: Permission = serde_json::from_str(r#"{"action":"publish","path":"cam"}"#).unwrap();
        assert_eq!(p, grant(Action::Publish, Some("cam")));
        let p: Permission = serde_json::from_str(r#"{"action":"read"}"#).unwrap();
        assert_eq!(p, grant(Action::Read, None));
        assert!(serde_json::from_str::<Permission>(r#"{"action":"write"}"#).is_err());
        assert!(serde_json::from_str::<Permission>(r#"{"action":"read","paths":"x"}"#).is_err());
    }
}
