//! The RTSP session state machine (RFC 2326 appendix A.2), pure.
//!
//! Owns: which method is valid in which state and where it leads. The connection code asks
//! `transition` before doing anything, so a wrong-state request changes nothing.

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// SETUP done, not playing.
    Ready,
    /// Media flows.
    Playing,
}

/// What a request does to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Setup,
    Play,
    Pause,
    Teardown,
    /// GET_PARAMETER, SET_PARAMETER, OPTIONS with a session: keep-alive only.
    KeepAlive,
}

/// Result of a transition: the next state, or `None` when the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Stay(State),
    Ended,
}

/// The request is not valid in this state (455 Method Not Valid in This State).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongState;

/// Applies `method` to a session in `state`. `None` stands for "no session yet".
pub fn transition(state: Option<State>, method: Method) -> Result<Next, WrongState> {
    use Method::*;
    use State::*;
    match (state, method) {
        (None, Setup) => Ok(Next::Stay(Ready)),
        // No session yet: only SETUP may create one; the caller answers 454 when a
        // Session header names an unknown id, and 455 here when none was given.
        (None, _) => Err(WrongState),
        (Some(Ready), Setup) => Ok(Next::Stay(Ready)),
        // Changing transport while playing is not supported.
        (Some(Playing), Setup) => Err(WrongState),
        (Some(_), Play) => Ok(Next::Stay(Playing)),
        (Some(_), Pause) => Ok(Next::Stay(Ready)),
        (Some(_), Teardown) => Ok(Next::Ended),
        (Some(s), KeepAlive) => Ok(Next::Stay(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::Method::*;
    use super::State::*;
    use super::*;

    #[test]
    fn normal_lifecycle() {
        let s = transition(None, Setup).unwrap();
        assert_eq!(s, Next::Stay(Ready));
        assert_eq!(transition(Some(Ready), Play).unwrap(), Next::Stay(Playing));
        assert_eq!(transition(Some(Playing), Pause).unwrap(), Next::Stay(Ready));
        assert_eq!(transition(Some(Ready), Play).unwrap(), Next::Stay(Playing));
        assert_eq!(
            transition(Some(Playing), KeepAlive).unwrap(),
            Next::Stay(Playing)
        );
        assert_eq!(transition(Some(Playing), Teardown).unwrap(), Next::Ended);
    }

    #[test]
    fn invalid_transitions() {
        assert_eq!(transition(None, Play), Err(WrongState));
        assert_eq!(transition(None, Pause), Err(WrongState));
        assert_eq!(transition(None, Teardown), Err(WrongState));
        assert_eq!(transition(Some(Playing), Setup), Err(WrongState));
    }

    #[test]
    fn idempotent_requests() {
        assert_eq!(transition(Some(Ready), Setup).unwrap(), Next::Stay(Ready));
        assert_eq!(transition(Some(Ready), Pause).unwrap(), Next::Stay(Ready));
        assert_eq!(
            transition(Some(Playing), Play).unwrap(),
            Next::Stay(Playing)
        );
    }
}
