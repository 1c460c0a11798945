//! Who may watch and who may push: HTTP Basic users and bearer tokens, with
//! permissions per action and per stream.
//!
//! With no user and no token configured, the server is open, as an MJPEG
//! server on a LAN usually is. As soon as one is configured, every request
//! needs credentials, except what `public_watch` / `public_push` leave open
//! (for example: anyone may watch, only a token may push).
//!
//! Credentials come in three ways, because browsers differ in what they can
//! send: `Authorization: Basic` (the browser's own login prompt, then sent
//! with every `<img>` of the page), `Authorization: Bearer TOKEN` (scripts,
//! Prometheus), and `?token=TOKEN` in the URL, because an `<img src>` cannot
//! carry a header.
//!
//! Secrets are compared as SHA-256 digests with a constant-time equality, so
//! neither a secret's content nor its length shows in the answer's timing.

use base64::Engine;
use globset::{Glob, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a request wants to do with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read it: stream, snapshot, index page.
    Watch,
    /// Write it: push frames or chart samples.
    Push,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, and the action is not public: `401`, with a
    /// challenge so that a browser asks for a password.
    Missing,
    /// Credentials that match no user or token: `401`.
    Invalid,
    /// Valid credentials without this permission: `403`.
    Forbidden,
}

/// Stream-name patterns (`*` matches any run of characters; stream names
/// have no `/`, so nothing else is special).
///
/// `*` alone and plain names are matched without compiling anything: the
/// open server's rules are built on every start, and a compiled glob set
/// costs megabytes of transient memory for nothing there.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    source: Vec<String>,
    any: bool,
    globs: Option<GlobSet>,
}

impl Patterns {
    /// Compiles `patterns`, or says which one is wrong.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Patterns, String> {
        let mut globs = GlobSetBuilder::new();
        let mut any = false;
        let mut has_globs = false;
        for p in patterns {
            let p = p.as_ref();
            if p.is_empty() {
                return Err(
                    "an empty stream pattern matches nothing; use \"*\" for every stream".into(),
                );
            }
            if p == "*" {
                any = true;
            } else if p.contains(['*', '?', '[', ']', '{', '}', '\\']) {
                globs.add(Glob::new(p).map_err(|e| format!("stream pattern {p:?}: {e}"))?);
                has_globs = true;
            }
        }
        let globs = match has_globs {
            true => Some(globs.build().map_err(|e| format!("stream patterns: {e}"))?),
            false => None,
        };
        Ok(Patterns {
            source: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
            any,
            globs,
        })
    }

    /// Every stream.
    pub fn all() -> Patterns {
        Patterns {
            source: vec!["*".into()],
            any: true,
            globs: None,
        }
    }

    /// Whether `stream` matches one of the patterns.
    pub fn matches(&self, stream: &str) -> bool {
        self.any
            || self.source.iter().any(|p| p == stream)
            || self.globs.as_ref().is_some_and(|g| g.is_match(stream))
    }

    /// The patterns as written.
    pub fn as_strs(&self) -> &[String] {
        &self.source
    }
}

/// What one user or token may do.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Streams it may watch.
    pub watch: Patterns,
    /// Streams it may push to.
    pub push: Patterns,
}

impl Grant {
    /// Watch and push every stream.
    pub fn everything() -> Grant {
        Grant {
            watch: Patterns::all(),
            push: Patterns::all(),
        }
    }

    /// Watch every stream, push none.
    pub fn watch_only() -> Grant {
        Grant {
            watch: Patterns::all(),
            push: Patterns::default(),
        }
    }

    /// Push to every stream, watch none.
    pub fn push_only() -> Grant {
        Grant {
            watch: Patterns::default(),
            push: Patterns::all(),
        }
    }

    fn allows(&self, action: Action, stream: &str) -> bool {
        match action {
            Action::Watch => self.watch.matches(stream),
            Action::Push => self.push.matches(stream),
        }
    }
}

/// One configured credential: the digest of its secret and its grant.
#[derive(Clone)]
struct Credential {
    kind: Kind,
    /// SHA-256 of `name:password` (Basic) or of the token.
    digest: [u8; 32],
    /// Who it is, for logs: the user's name, or `token N`.
    label: String,
    grant: Grant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Basic,
    Token,
}

impl std::fmt::Debug for Credential {
    /// Never prints the digest: it is as good as a password for offline
    /// guessing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("label", &self.label)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Whether `name` and `password` can be an HTTP Basic user (what
/// [`Access::add_user`] refuses, for checking settings before use).
pub fn check_user(name: &str, password: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(':') {
        return Err(format!(
            "user name {name:?} must be non-empty and without ':'"
        ));
    }
    if password.is_empty() {
        return Err(format!("user {name:?} needs a password"));
    }
    Ok(())
}

/// Whether `token` can be a bearer token (what [`Access::add_token`]
/// refuses): a short one is easily guessed from a URL.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.len() < 8 {
        return Err("a token needs at least 8 characters (try `openssl rand -hex 16`)".into());
    }
    if token
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("a token cannot contain spaces or control characters".into());
    }
    Ok(())
}

/// The access rules of a server. [`Access::default`] is open: everyone may
/// do everything.
#[derive(Debug, Clone)]
pub struct Access {
    realm: String,
    credentials: Vec<Credential>,
    public: Grant,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            realm: "mjpeg-server".into(),
            credentials: Vec::new(),
            public: Grant::everything(),
        }
    }
}

/// The credentials a request carries, borrowed from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The `Authorization` header's value.
    pub authorization: Option<&'a [u8]>,
    /// The `token` query parameter, already percent-decoded.
    pub token: Option<&'a str>,
}

/// Who made a request, once [`Access::identify`] has checked it.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    credential: Option<&'a Credential>,
}

impl Identity<'_> {
    /// Whether the request carried valid credentials (not anonymous).
    pub fn is_known(&self) -> bool {
        self.credential.is_some()
    }

    /// The user's name or `token N`, for logs; `None` when anonymous.
    pub fn label(&self) -> Option<&str> {
        self.credential.map(|c| c.label.as_str())
    }
}

impl Access {
    /// Rules with no credentials yet, where anonymous clients may do what
    /// `public` grants. (With no credentials at all, [`Access::default`]'s
    /// "everything is open" applies instead; see [`Access::is_open`].)
    pub fn new(realm: impl Into<String>, public: Grant) -> Access {
        Access {
            realm: realm.into(),
            credentials: Vec::new(),
            public,
        }
    }

    /// Adds an HTTP Basic user. A `:` cannot be part of the name (Basic
    /// auth splits `name:password` at the first one).
    pub fn add_user(&mut self, name: &str, password: &str, grant: Grant) -> Result<(), String> {
        check_user(name, password)?;
        self.credentials.push(Credential {
            kind: Kind::Basic,
            digest: digest(format!("{name}:{password}").as_bytes()),
            label: name.to_string(),
            grant,
        });
        Ok(())
    }

    /// Adds a bearer token (also accepted as `?token=`). Tokens are compared
    /// whole; a short one is refused because a URL token is easily guessed.
    pub fn add_token(&mut self, token: &str, grant: Grant) -> Result<(), String> {
        check_token(token)?;
        let n = self
            .credentials
            .iter()
            .filter(|c| c.kind == Kind::Token)
            .count();
        self.credentials.push(Credential {
            kind: Kind::Token,
            digest: digest(token.as_bytes()),
            label: format!("token {}", n + 1),
            grant,
        });
        Ok(())
    }

    /// True when no credential is configured: every request is allowed.
    pub fn is_open(&self) -> bool {
        self.credentials.is_empty()
    }

    /// The realm named in `WWW-Authenticate`.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Checks the presented credentials: anonymous if there are none (or
    /// nothing is configured to check them against: a client that sends a
    /// password to an open server is not refused), [`Denied::Invalid`] if
    /// they match no user or token.
    pub fn identify(&self, p: &Presented) -> Result<Identity<'_>, Denied> {
        if self.is_open() {
            return Ok(Identity { credential: None });
        }
        let (kind, secret): (Kind, Vec<u8>) = if let Some(auth) = p.authorization {
            let auth = std::str::from_utf8(auth)
                .map_err(|_| Denied::Invalid)?
                .trim();
            let (scheme, rest) = auth.split_once(' ').ok_or(Denied::Invalid)?;
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .map_err(|_| Denied::Invalid)?;
                (Kind::Basic, decoded)
            } else if scheme.eq_ignore_ascii_case("bearer") {
                (Kind::Token, rest.as_bytes().to_vec())
            } else {
                return Err(Denied::Invalid);
            }
        } else if let Some(token) = p.token {
            (Kind::Token, token.as_bytes().to_vec())
        } else {
            return Ok(Identity { credential: None });
        };
        let given = digest(&secret);
        // Every credential is compared, in constant time, so the answer's
        // timing does not depend on which one (if any) matched.
        let mut found = None;
        for c in &self.credentials {
            let same = c.kind == kind && bool::from(c.digest.ct_eq(&given));
            if same && found.is_none() {
                found = Some(c);
            }
        }
        match found {
            Some(c) => Ok(Identity {
                credential: Some(c),
            }),
            None => Err(Denied::Invalid),
        }
    }

    /// Whether `who` may do `action` on `stream`.
    pub fn permits(&self, who: Identity<'_>, action: Action, stream: &str) -> Result<(), Denied> {
        if self.is_open() || self.public.allows(action, stream) {
            return Ok(());
        }
        match who.credential {
            Some(c) if c.grant.allows(action, stream) => Ok(()),
            Some(_) => Err(Denied::Forbidden),
            None => Err(Denied::Missing),
        }
    }

    /// [`identify`](Access::identify) then [`permits`](Access::permits).
    pub fn check(&self, p: &Presented, action: Action, stream: &str) -> Result<(), Denied> {
        if self.is_open() {
            return Ok(());
        }
        let who = self.identify(p)?;
        self.permits(who, action, stream)
    }

    /// Pages about the server itself (`/status`, `/metrics`) show every
    /// stream and client address: with credentials configured they need
    /// valid ones, whatever they grant.
    pub fn check_known(&self, p: &Presented) -> Result<(), Denied> {
        if self.is_open() {
            return Ok(());
        }
        match self.identify(p)? {
            who if who.is_known() => Ok(()),
            _ => Err(Denied::Missing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    fn rules() -> Access {
        let mut a = Access::new(
            "cams",
            Grant {
                watch: Patterns::new(&["lobby"]).unwrap(),
                push: Patterns::default(),
            },
        );
        a.add_user("alice", "s3cret:x", Grant::everything())
            .unwrap();
        a.add_user(
            "bob",
            "hunter22",
            Grant {
                watch: Patterns::new(&["cam-*"]).unwrap(),
                push: Patterns::default(),
            },
        )
        .unwrap();
        a.add_token("0123456789abcdef", Grant::push_only()).unwrap();
        a
    }

    #[test]
    fn open_unless_configured() {
        let a = Access::default();
        assert!(a.is_open());
        assert_eq!(a.check(&Presented::default(), Action::Push, "x"), Ok(()));
        // Even nonsense credentials pass an open server: nothing to check.
        let p = Presented {
            authorization: Some(b"Basic !!!"),
            token: None,
        };
        assert_eq!(a.check(&p, Action::Watch, "x"), Ok(()));
    }

    #[test]
    fn users_tokens_and_rules() {
        let a = rules();
        let anon = Presented::default();
        assert_eq!(a.check(&anon, Action::Watch, "lobby"), Ok(()));
        assert_eq!(a.check(&anon, Action::Watch, "cam-1"), Err(Denied::Missing));
        assert_eq!(a.check(&anon, Action::Push, "lobby"), Err(Denied::Missing));

        let alice = basic("alice:s3cret:x");
        let p = Presented {
            authorization: Some(alice.as_bytes()),
            token: None,
        };
        assert_eq!(a.check(&p, Action::Push, "anything"), Ok(()));

        let bob = basic("bob:hunter22");
        let p = Presented {
            authorization: Some(bob.as_bytes()),
            token: None,
        };
        assert_eq!(a.check(&p, Action::Watch, "cam-2"), Ok(()));
        assert_eq!(a.check(&p, Action::Watch, "garden"), Err(Denied::Forbidden));
        assert_eq!(a.check(&p, Action::Push, "cam-2"), Err(Denied::Forbidden));

        for wrong in ["bob:hunter2", "bob:hunter222", "alice:s3cret", "bob", ""] {
            let h = basic(wrong);
            let p = Presented {
                authorization: Some(h.as_bytes()),
                token: None,
            };
            assert_eq!(
                a.check(&p, Action::Watch, "lobby"),
                Err(Denied::Invalid),
                "{wrong}"
            );
        }

        // The token, as a header or in the URL; a user's secret is no token.
        let p = Presented {
            authorization: Some(b"Bearer 0123456789abcdef"),
            token: None,
        };
        assert_eq!(a.check(&p, Action::Push, "cam-1"), Ok(()));
        assert_eq!(a.check(&p, Action::Watch, "cam-1"), Err(Denied::Forbidden));
        let p = Presented {
            authorization: None,
            token: Some("0123456789abcdef"),
        };
        assert_eq!(a.check(&p, Action::Push, "x"), Ok(()));
        let p = Presented {
            authorization: None,
            token: Some("bob:hunter22"),
        };
        assert_eq!(a.check(&p, Action::Watch, "cam-1"), Err(Denied::Invalid));
        for junk in [
            &b"Digest x"[..],
            b"Basic",
            b"Basic %%%",
            b"\xff\xfe",
            b"Bearer",
        ] {
            let p = Presented {
                authorization: Some(junk),
                token: None,
            };
            assert_eq!(a.check(&p, Action::Watch, "lobby"), Err(Denied::Invalid));
        }
        // Status pages: any valid credential, never anonymous.
        assert_eq!(a.check_known(&anon), Err(Denied::Missing));
        let p = Presented {
            authorization: None,
            token: Some("0123456789abcdef"),
        };
        assert_eq!(a.check_known(&p), Ok(()));
    }

    #[test]
    fn bad_rules_are_refused() {
        let mut a = Access::default();
        assert!(a.add_user("a:b", "pw", Grant::everything()).is_err());
        assert!(a.add_user("", "pw", Grant::everything()).is_err());
        assert!(a.add_user("a", "", Grant::everything()).is_err());
        assert!(a.add_token("short", Grant::everything()).is_err());
        assert!(a.add_token("has a space", Grant::everything()).is_err());
        assert!(Patterns::new(&[""]).is_err());
        assert!(Patterns::new(&["cam["]).is_err());
        assert!(!Patterns::default().matches("x"));
        assert!(Patterns::all().matches("x"));
        let p = Patterns::new(&["lobby", "cam-*", "b?"]).unwrap();
        for (name, yes) in [
            ("lobby", true),
            ("lobby2", false),
            ("cam-1", true),
            ("cam", false),
            ("b1", true),
            ("b12", false),
        ] {
            assert_eq!(p.matches(name), yes, "{name}");
        }
    }
}
