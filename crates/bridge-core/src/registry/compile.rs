//! The compiled registry the stages look projects up in: inline projects and exact rules by
//! key, pattern rules indexed by their first segment (so that a lookup tries only the
//! patterns that can match), and exact keys by Pagure full name for the report stage.
//! Compiling checks every rule (`checks`): one wrong rule refuses the whole document.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use super::checks::{check_rule, to_project_settings};
use super::pattern::Pattern;
use super::{Deployment, RegistryDocument, RegistryError};
use crate::config::{ProjectConfig, ProjectSettings, is_project_key};

/// A pattern rule, merged with the defaults and checked once.
#[derive(Debug, Clone)]
pub(super) struct PatternRule {
    pub(super) index: usize,
    pub(super) pattern: Pattern,
    pub(super) settings: ProjectSettings,
}

/// Which rule a project comes from, for `projects check` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// A `[projects.<key>]` table of the local file or of `PCB_PROJECTS`.
    Inline,
    /// `rules[index]` of the registry document, with its `match`.
    Rule { index: usize, matches: String },
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSource::Inline => f.write_str("inline configuration"),
            RuleSource::Rule { index, matches } => write!(f, "registry rule {index} (`{matches}`)"),
        }
    }
}

/// A registry ready for lookups: inline projects and exact rules by key, pattern rules
/// indexed by their first segment.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub(super) exact: HashMap<String, (Arc<ProjectConfig>, RuleSource)>,
    pub(super) patterns: Vec<PatternRule>,
    /// Pattern positions by literal first segment, and those starting with a glob.
    by_head: HashMap<String, Vec<usize>>,
    glob_head: Vec<usize>,
    /// Exact keys by Pagure full name (the report stage knows a build by its project's name).
    pub(super) by_fullname: HashMap<String, Vec<String>>,
}

impl Registry {
    /// Inline projects (checked already) and the document's rules, checked here: one wrong
    /// rule refuses the whole document, so that a half-applied registry never routes builds.
    pub fn compile(
        inline: &BTreeMap<String, ProjectConfig>,
        document: Option<&RegistryDocument>,
        deployment: &Deployment,
    ) -> Result<Self, RegistryError> {
        let mut registry = Registry::default();
        for (key, project) in inline {
            registry.insert_exact(key, Arc::new(project.clone()), RuleSource::Inline);
        }
        let Some(document) = document else {
            registry.check_across(deployment)?;
            return Ok(registry);
        };
        let at = |index: Option<usize>, field: &str| match index {
            Some(i) => format!("rules[{i}].{field}"),
            None => format!("defaults.{field}"),
        };
        if document.defaults.matches.is_some() || document.defaults.project.is_some() {
            let field = if document.defaults.matches.is_some() { "match" } else { "project" };
            return Err(RegistryError::Invalid { at: at(None, field), message: "only a rule may set this".into() });
        }
        let base = document.defaults.over(&deployment.as_rule());
        for (index, rule) in document.rules.iter().enumerate() {
            let Some(matches) = rule.matches.as_deref() else {
                return Err(RegistryError::Invalid { at: at(Some(index), "match"), message: "is required".into() });
            };
            let pattern = Pattern::parse(matches)
                .map_err(|message| RegistryError::Invalid { at: at(Some(index), "match"), message })?;
            let merged = rule.over(&base);
            let source = RuleSource::Rule { index, matches: matches.to_owned() };
            if pattern.is_exact() {
                if registry.exact.contains_key(matches) {
                    let message = format!("`{matches}` is already configured (inline or by an earlier rule)");
                    return Err(RegistryError::Invalid { at: at(Some(index), "match"), message });
                }
                let project = check_rule(index, matches, &merged, deployment)?;
                registry.insert_exact(matches, Arc::new(project), source);
            } else {
                if rule.project.is_some() {
                    let message = "a pattern rule's projects are named by their key: leave `project` out".into();
                    return Err(RegistryError::Invalid { at: at(Some(index), "project"), message });
                }
                let settings = to_project_settings(index, &merged)?;
                check_rule(index, &pattern.example(), &merged, deployment)?;
                let position = registry.patterns.len();
                match pattern.literal_head() {
                    Some(head) => registry.by_head.entry(head.to_owned()).or_default().push(position),
                    None => registry.glob_head.push(position),
                }
                registry.patterns.push(PatternRule { index, pattern, settings });
            }
        }
        registry.check_across(deployment)?;
        Ok(registry)
    }

    fn insert_exact(&mut self, key: &str, project: Arc<ProjectConfig>, source: RuleSource) {
        self.by_fullname.entry(project.repo.fullname()).or_default().push(key.to_owned());
        self.exact.insert(key.to_owned(), (project, source));
    }

    /// The project a key names, and the rule it comes from.
    pub fn lookup(&self, key: &str) -> Option<(Arc<ProjectConfig>, RuleSource)> {
        if !is_project_key(key) {
            return None;
        }
        if let Some((project, source)) = self.exact.get(key) {
            return Some((project.clone(), source.clone()));
        }
        let segments: Vec<&str> = key.split('/').collect();
        let heads = self.by_head.get(segments[0]).map(Vec::as_slice).unwrap_or_default();
        // Both lists are in document order: the first match of their merge wins.
        let (mut a, mut b) = (heads.iter().peekable(), self.glob_head.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => return None,
            };
            let rule = &self.patterns[*next.expect("peeked")];
            if rule.pattern.matches(&segments) {
                let settings = ProjectSettings { project: key.to_owned(), ..rule.settings.clone() };
                // The pattern's settings were checked when loaded; a key that is not a Pagure
                // full name (e.g. `a.git`) fails here and is simply not a project.
                let project = ProjectConfig::from_settings(key, &settings).ok()?;
                let source = RuleSource::Rule { index: rule.index, matches: rule.pattern.segments.join("/") };
                return Some((Arc::new(project), source));
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<ProjectConfig>> {
        self.lookup(key).map(|(project, _)| project)
    }

    /// The projects named `fullname`: exact entries with that project, else the pattern
    /// project whose key is the name.
    pub fn by_fullname(&self, fullname: &str) -> Vec<Arc<ProjectConfig>> {
        match self.by_fullname.get(fullname) {
            Some(keys) => keys.iter().filter_map(|k| self.exact.get(k)).map(|(p, _)| p.clone()).collect(),
            None => self.get(fullname).into_iter().collect(),
        }
    }

    /// Inline projects and exact rules, by key (for listings).
    pub fn exact_keys(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
