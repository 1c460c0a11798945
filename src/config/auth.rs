//! `[auth]` and `[tls]`: who may watch and push, and the certificate of an
//! HTTPS server, as the file and the flags give them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;

use mjpeg_server::access::{check_token, check_user, Access, Grant, Patterns};

/// `[tls]`: the PEM files of an HTTPS server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSetting {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// `[auth]`: users, tokens, and what anyone may do without them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthSetting {
    /// Named in the browser's login prompt.
    pub realm: String,
    /// Streams anyone may watch (patterns, `*` for all).
    pub public_watch: Vec<String>,
    /// Streams anyone may push to.
    pub public_push: Vec<String>,
    /// HTTP Basic users.
    #[serde(rename = "user")]
    pub users: Vec<UserSetting>,
    /// Bearer tokens.
    #[serde(rename = "token")]
    pub tokens: Vec<TokenSetting>,
}

impl Default for AuthSetting {
    fn default() -> Self {
        AuthSetting {
            realm: "mjpeg-server".into(),
            public_watch: Vec::new(),
            public_push: Vec::new(),
            users: Vec::new(),
            tokens: Vec::new(),
        }
    }
}

impl AuthSetting {
    /// No credentials: everyone may do everything.
    pub fn is_open(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// Nothing set: `--check-config` leaves the table out.
    pub(super) fn is_default(&self) -> bool {
        *self == AuthSetting::default()
    }

    /// The access rules these settings describe.
    pub fn access(&self) -> Result<Access, String> {
        let grant = |watch: &[String], push: &[String]| -> Result<Grant, String> {
            Ok(Grant {
                watch: Patterns::new(watch)?,
                push: Patterns::new(push)?,
            })
        };
        let mut access = Access::new(
            self.realm.clone(),
            grant(&self.public_watch, &self.public_push)?,
        );
        for u in &self.users {
            access.add_user(&u.name, &u.password, grant(&u.watch, &u.push)?)?;
        }
        for t in &self.tokens {
            access.add_token(&t.token, grant(&t.watch, &t.push)?)?;
        }
        Ok(access)
    }
}

/// Every stream, the default grant of a user or token.
pub(super) fn all_streams() -> Vec<String> {
    vec!["*".into()]
}

/// Secrets are printed by `--check-config` as this, never in clear.
pub(super) const HIDDEN: &str = "(hidden)";

fn hide<S: Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(HIDDEN)
}

/// `[[auth.user]]` / `--user`: an HTTP Basic user and the streams it may
/// watch and push to (default: all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSetting {
    /// The user name (no `:`).
    pub name: String,
    /// The password.
    #[serde(serialize_with = "hide")]
    pub password: String,
    /// Streams it may watch.
    #[serde(default = "all_streams")]
    pub watch: Vec<String>,
    /// Streams it may push to.
    #[serde(default = "all_streams")]
    pub push: Vec<String>,
}

impl UserSetting {
    pub(super) fn check(&self) -> Result<(), String> {
        check_user(&self.name, &self.password)?;
        Patterns::new(&self.watch)?;
        Patterns::new(&self.push)?;
        Ok(())
    }
}

/// `[[auth.token]]` / `--token`: a bearer token and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSetting {
    /// The token (8 characters or more).
    #[serde(serialize_with = "hide")]
    pub token: String,
    /// Streams it may watch.
    #[serde(default = "all_streams")]
    pub watch: Vec<String>,
    /// Streams it may push to.
    #[serde(default = "all_streams")]
    pub push: Vec<String>,
}

impl TokenSetting {
    pub(super) fn check(&self) -> Result<(), String> {
        check_token(&self.token)?;
        Patterns::new(&self.watch)?;
        Patterns::new(&self.push)?;
        Ok(())
    }
}

/// `[auth]` as written, each entry checked as it is read so that an error
/// points at its line.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct FileAuth {
    pub(super) realm: Option<String>,
    pub(super) public_watch: Option<PatternList>,
    pub(super) public_push: Option<PatternList>,
    #[serde(default, rename = "user")]
    pub(super) users: Vec<FileUser>,
    #[serde(default, rename = "token")]
    pub(super) tokens: Vec<FileToken>,
}

#[derive(Debug)]
pub(super) struct PatternList(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for PatternList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        Patterns::new(&v).map_err(serde::de::Error::custom)?;
        Ok(PatternList(v))
    }
}

#[derive(Debug)]
pub(super) struct FileUser(pub(super) UserSetting);

impl<'de> Deserialize<'de> for FileUser {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let u = UserSetting::deserialize(d)?;
        u.check().map_err(serde::de::Error::custom)?;
        Ok(FileUser(u))
    }
}

#[derive(Debug)]
pub(super) struct FileToken(pub(super) TokenSetting);

impl<'de> Deserialize<'de> for FileToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = TokenSetting::deserialize(d)?;
        t.check().map_err(serde::de::Error::custom)?;
        Ok(FileToken(t))
    }
}
