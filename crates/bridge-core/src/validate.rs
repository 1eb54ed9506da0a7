//! Field rules shared by every trigger kind: branch names, causes, repository URLs.
//!
//! The repository check is the bridge's SSRF boundary: `work` clones whatever URL a request
//! carries, so only the configured project (and, if allowed, its forks) on the configured git
//! host may pass, spelled the one canonical way.

use std::fmt;

use url::{Host, Url};

use crate::model::{Cause, ProjectRef};

/// Why a field was refused. `Display` never repeats a value that could hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("branch {shown}: {why}", shown = Shown(.name))]
    Branch { name: String, why: &'static str },
    #[error(
        "cause {shown} is neither a pull-request number (1 to 10 decimal digits, no leading zero) nor a full commit id (40 or 64 hex digits)",
        shown = Shown(.0)
    )]
    Cause(String),
    #[error("{0}")]
    Repo(RepoError),
}

/// Shows a user-supplied value in an error message: quoted, escaped, cut at 80 characters.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut: String = self.0.chars().take(80).collect();
        if cut.len() < self.0.len() { write!(f, "{cut:?}…") } else { write!(f, "{cut:?}") }
    }
}

/// Longest branch name accepted (bytes). Git has no limit; file systems and Pagure do.
pub const MAX_BRANCH_LEN: usize = 255;

/// Checks a branch name as `git check-ref-format --branch` does (outside a repository, where
/// `@{-1}` and `@` are not expanded): `refs/heads/<name>` must be a valid ref name
/// (`check_refname_format` in git's `refs.c`), the name must not start with `-` (a tool
/// could take it for an option) nor be `HEAD` (`check_branch_ref`). Stricter than git in two
/// ways: `@` alone (git takes `refs/heads/@`, but `@` means `HEAD` to most commands) and
/// names over [`MAX_BRANCH_LEN`] bytes are refused.
pub fn check_branch(name: &str) -> Result<(), FieldError> {
    let fail = |why| Err(FieldError::Branch { name: name.to_owned(), why });
    if name.is_empty() {
        return fail("is empty");
    }
    if name.len() > MAX_BRANCH_LEN {
        return fail("is longer than 255 bytes");
    }
    if name.starts_with('-') {
        return fail("starts with '-'");
    }
    if name == "@" {
        return fail("is '@'");
    }
    if name == "HEAD" {
        return fail("is 'HEAD' (git check-ref-format --branch refuses it)");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return fail("has an empty path component (leading, trailing or double '/')");
    }
    if name.ends_with('.') {
        return fail("ends with '.'");
    }
    if name.contains("..") {
        return fail("contains '..'");
    }
    if name.contains("@{") {
        return fail("contains '@{'");
    }
    if name.chars().any(|c| c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')) {
        return fail("contains a space, a control character or one of ~ ^ : ? * [ \\");
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return fail("has a path component starting with '.'");
        }
        if component.ends_with(".lock") {
            return fail("has a path component ending with '.lock'");
        }
    }
    Ok(())
}

/// Parses pagure-ci's `cause`: a PR number or a full commit id (lower-cased).
pub fn parse_cause(value: &str) -> Result<Cause, FieldError> {
    let bytes = value.as_bytes();
    let is_pr = !bytes.is_empty() && bytes.len() <= 10 && bytes[0] != b'0' && bytes.iter().all(u8::is_ascii_digit);
    if is_pr {
        return value.parse().map(|id| Cause::PullRequest { id }).map_err(|_| FieldError::Cause(value.to_owned()));
    }
    if (bytes.len() == 40 || bytes.len() == 64) && bytes.iter().all(u8::is_ascii_hexdigit) {
        return Ok(Cause::Commit { sha: value.to_ascii_lowercase() });
    }
    Err(FieldError::Cause(value.to_owned()))
}

/// Why a repository URL was refused. None of these repeat the URL: it may carry credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    #[error("the repository URL is empty or longer than 2048 bytes")]
    Length,
    #[error(
        "the repository URL contains characters that never occur in a Pagure clone URL (whitespace, control characters, '\\', '%', '@', '?' or '#')"
    )]
    Characters,
    #[error("the repository URL is not a valid absolute URL")]
    Syntax,
    #[error("the repository URL uses scheme `{found}`; this project only clones over `{expected}`")]
    Scheme { found: String, expected: String },
    #[error("the repository URL is not on this project's git host")]
    Host,
    #[error("the repository URL's path is not this project{forks}", forks = if *.forks_allowed { " or a fork of it" } else { "" })]
    Path { forks_allowed: bool },
}

/// Where a project's repositories may be cloned from: the configured Pagure git base URL,
/// the project's full name, and whether forks (`forks/<user>/…`) are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPolicy {
    base: Url,
    /// Base path without trailing slash, e.g. `` or `/git`.
    base_path: String,
    namespace: Option<String>,
    name: String,
    allow_forks: bool,
}

/// A Pagure name component: what Pagure allows in user, namespace and project names.
pub fn is_pagure_name(component: &str) -> bool {
    let mut chars = component.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
        && component.len() <= 255
        && !component.ends_with(".git")
}

impl RepoPolicy {
    /// `git_url` is Pagure's `GIT_URL_GIT` (e.g. `https://pagure.io`), `fullname` the
    /// project's `[namespace/]name`. Errors are for configuration: they name what is wrong.
    pub fn new(git_url: &str, fullname: &str, allow_forks: bool) -> Result<Self, String> {
        let base = Url::parse(git_url).map_err(|e| format!("git_url `{git_url}` is not a URL: {e}"))?;
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(format!("git_url `{git_url}` has no host"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err("git_url must not contain credentials".into());
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(format!("git_url `{git_url}` must not have a query or fragment"));
        }
        let base_path = base.path().trim_end_matches('/').to_owned();
        let (namespace, name) = match fullname.split_once('/') {
            Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
            None => (None, fullname.to_owned()),
        };
        if !is_pagure_name(&name) || !namespace.as_deref().is_none_or(is_pagure_name) || name.contains('/') {
            return Err(format!("project `{fullname}` is not a Pagure full name (`name` or `namespace/name`)"));
        }
        Ok(RepoPolicy { base, base_path, namespace, name, allow_forks })
    }

    pub fn scheme(&self) -> &str {
        self.base.scheme()
    }

    pub fn fullname(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The canonical clone URL of the project, or of a user's fork of it.
    pub fn clone_url(&self, fork_user: Option<&str>) -> String {
        let mut url = format!("{}://{}{}", self.base.scheme(), authority(&self.base), self.base_path);
        if let Some(user) = fork_user {
            url.push_str("/forks/");
            url.push_str(user);
        }
        url.push('/');
        url.push_str(&self.fullname());
        url.push_str(".git");
        url
    }

    /// Checks `candidate` and returns the canonical URL and the project it names.
    pub fn check(&self, key: &str, candidate: &str) -> Result<(String, ProjectRef), RepoError> {
        if candidate.is_empty() || candidate.len() > 2048 {
            return Err(RepoError::Length);
        }
        if candidate.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\\' | '%' | '@' | '?' | '#')) {
            return Err(RepoError::Characters);
        }
        let url = Url::parse(candidate).map_err(|_| RepoError::Syntax)?;
        if url.scheme() != self.base.scheme() {
            return Err(RepoError::Scheme { found: url.scheme().to_owned(), expected: self.base.scheme().to_owned() });
        }
        if !same_host(&url, &self.base) {
            return Err(RepoError::Host);
        }
        // The URL parser resolves `.`/`..` segments, so look at what was written: everything
        // after the authority. '%', '?', '#' and '@' were refused above.
        let after_scheme = &candidate[candidate.find("://").map_or(0, |i| i + 3)..];
        let raw_path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
        let rest = raw_path
            .strip_prefix(self.base_path.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(RepoError::Path { forks_allowed: self.allow_forks })?;
        let rest = rest.strip_suffix(".git").unwrap_or(rest);
        let path_error = RepoError::Path { forks_allowed: self.allow_forks };
        let components: Vec<&str> = rest.split('/').collect();
        if !components.iter().all(|c| is_pagure_name(c)) {
            return Err(path_error);
        }
        let fullname = self.fullname();
        let fork_user = match components.as_slice() {
            ["forks", user, tail @ ..] if self.allow_forks && tail.join("/") == fullname => Some((*user).to_owned()),
            _ if rest == fullname => None,
            _ => return Err(path_error),
        };
        let project =
            ProjectRef { key: key.to_owned(), namespace: self.namespace.clone(), name: self.name.clone(), fork_user };
        Ok((self.clone_url(project.fork_user.as_deref()), project))
    }
}

fn authority(url: &Url) -> String {
    let host = match url.host() {
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// Same host (as parsed: IP literals compared as addresses, names case-insensitively) and
/// same effective port.
fn same_host(a: &Url, b: &Url) -> bool {
    let host_eq = match (a.host(), b.host()) {
        (Some(Host::Domain(x)), Some(Host::Domain(y))) => x.eq_ignore_ascii_case(y),
        (Some(x), Some(y)) => x == y,
        _ => false,
    };
    host_eq && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_check_ref_format() {
        for good in [
            "main",
            "rawhide",
            "f41",
            "feature/x",
            "bob-fix",
            "a.b",
            "ü-branch",
            "v1.0",
            "x@y",
            "HEAD/x",
            "x/HEAD",
            "head",
            "HEADS",
            "a./b",
            "@x",
            "x@",
            "a{b}",
            "a@b{",
        ] {
            assert_eq!(check_branch(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-x",
            "@",
            "/a",
            "a/",
            "a//b",
            "a.",
            "a..b",
            "a@{1}",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            ".hidden",
            "a/.b",
            "x.lock",
            "a/b.lock/c",
            "tab\there",
            "nul\0",
            "HEAD",
            "del\u{7f}",
            "a/.",
            "a/..",
            "..",
            "a.lock/b",
            "@{",
            "a@{-1}",
            "a/b.",
            ".x",
        ] {
            assert!(check_branch(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_branch(&"a".repeat(256)).is_err());
        assert!(check_branch(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn causes_are_pr_numbers_or_full_shas() {
        assert_eq!(parse_cause("1"), Ok(Cause::PullRequest { id: 1 }));
        assert_eq!(parse_cause("4294967296"), Ok(Cause::PullRequest { id: 4_294_967_296 }));
        let sha = "E886513DC44B134DB15541EF1A4B05F908DDCE11";
        assert_eq!(parse_cause(sha), Ok(Cause::Commit { sha: sha.to_ascii_lowercase() }));
        assert!(parse_cause(&"a".repeat(64)).is_ok());
        for bad in ["", "0", "01", "-1", "+1", "1.0", "12345678901", "abc", &"a".repeat(39), &"g".repeat(40), "None"] {
            assert!(parse_cause(bad).is_err(), "{bad:?}");
        }
    }

    fn policy() -> RepoPolicy {
        RepoPolicy::new("https://pagure.io", "rpms/demo", true).expect("policy")
    }

    #[test]
    fn repository_urls_canonicalise() {
        let p = policy();
        let (url, project) = p.check("k", "https://pagure.io/rpms/demo.git").expect("ok");
        assert_eq!(url, "https://pagure.io/rpms/demo.git");
        assert_eq!(project.fork_user, None);
        assert_eq!(project.namespace.as_deref(), Some("rpms"));
        let (url, project) = p.check("k", "https://PAGURE.io:443/forks/bob/rpms/demo").expect("fork");
        assert_eq!(url, "https://pagure.io/forks/bob/rpms/demo.git");
        assert_eq!(project.fork_user.as_deref(), Some("bob"));
        let git = RepoPolicy::new("git://127.0.0.1:5602", "demo", true).expect("policy");
        assert_eq!(
            git.check("k", "git://127.0.0.1:5602/forks/bob/demo.git").expect("ok").0,
            "git://127.0.0.1:5602/forks/bob/demo.git"
        );
        let sub = RepoPolicy::new("https://example.com/git/", "demo", false).expect("policy");
        assert_eq!(
            sub.check("k", "https://example.com/git/demo.git").expect("ok").0,
            "https://example.com/git/demo.git"
        );
        assert!(sub.check("k", "https://example.com/demo.git").is_err());
        assert!(sub.check("k", "https://example.com/git/forks/bob/demo.git").is_err());
    }

    #[test]
    fn repository_urls_refused_before_any_connection() {
        let p = policy();
        for bad in [
            "",
            "http://pagure.io/rpms/demo.git",
            "ssh://pagure.io/rpms/demo.git",
            "file:///srv/git/rpms/demo.git",
            "https://evil.example/rpms/demo.git",
            "https://pagure.io.evil.example/rpms/demo.git",
            "https://evilpagure.io/rpms/demo.git",
            "https://pagure.io@evil.example/rpms/demo.git",
            "https://user:pw@pagure.io/rpms/demo.git",
            "https://pagure.io:8443/rpms/demo.git",
            "https://1.2.3.4/rpms/demo.git",
            "https://[::1]/rpms/demo.git",
            "https://2130706433/rpms/demo.git",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/rpms/demo.git",
            "https://pagure.io/rpms/../rpms/demo.git",
            "https://pagure.io/rpms/./demo.git",
            "https://pagure.io/rpms/%2e%2e/demo.git",
            "https://pagure.io/rpms/other.git",
            "https://pagure.io/demo.git",
            "https://pagure.io/rpms/demo.git?x=1",
            "https://pagure.io/rpms/demo.git#frag",
            "https://pagure.io//rpms/demo.git",
            "https://pagure.io/forks/rpms/demo.git",
            "https://pagure.io/forks/-bob/rpms/demo.git",
            "https://pagure.io/forks/bob/x/rpms/demo.git",
            "https://pagure.io/rpms/demo.git/",
            "https://pagure.io\\rpms/demo.git",
            " https://pagure.io/rpms/demo.git",
            "pagure.io/rpms/demo.git",
            // IP spellings the resolver would accept: octal, hex, short, IPv4-mapped IPv6.
            "https://0177.0.0.1/rpms/demo.git",
            "https://0x7f000001/rpms/demo.git",
            "https://127.1/rpms/demo.git",
            "https://[::ffff:127.0.0.1]/rpms/demo.git",
            "https://[fd00:ec2::254]/latest/meta-data",
            // Host look-alikes: percent-encoded dot, trailing dot, a Cyrillic `а`, a port trick.
            "https://pagure%2eio/rpms/demo.git",
            "https://pagure.io./rpms/demo.git",
            "https://p\u{430}gure.io/rpms/demo.git",
            "https://pagure.io:443@evil.example/rpms/demo.git",
            "https://evil.example#@pagure.io/rpms/demo.git",
            "javascript:alert(1)//pagure.io/rpms/demo.git",
        ] {
            assert!(p.check("k", bad).is_err(), "{bad:?} accepted");
        }
        let no_forks = RepoPolicy::new("https://pagure.io", "rpms/demo", false).expect("policy");
        assert_eq!(
            no_forks.check("k", "https://pagure.io/forks/bob/rpms/demo.git"),
            Err(RepoError::Path { forks_allowed: false })
        );
    }

    #[test]
    fn repo_errors_never_repeat_the_url() {
        let secret = "https://user:hunter2@pagure.io/rpms/demo.git";
        let err = policy().check("k", secret).expect_err("refused");
        assert!(!err.to_string().contains("hunter2"));
    }
}
