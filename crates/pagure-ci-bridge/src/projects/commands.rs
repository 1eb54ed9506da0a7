//! `add`, `list`, `check` and `remove`.

use super::*;
use anyhow::{anyhow, bail};
use bridge_core::auth::Secret;
use bridge_core::config::ProjectConfig;
use bridge_core::model::TriggerKind;
use bridge_core::registry::{Registry, RegistryDocument, RegistryError, RuleSettings, RuleSource};
use bridge_pagure::PagureClient;
use serde_json::{Map, Value, json};

impl Projects {
    fn compile(&self, document: &RegistryDocument) -> Result<Registry, RegistryError> {
        Registry::compile(&self.setup.inline, Some(document), &self.setup.deployment)
    }

    async fn document(&self) -> anyhow::Result<(RegistryDocument, Option<String>)> {
        match self.backend.read_registry().await? {
            Some(stored) => Ok((
                RegistryDocument::parse(&stored.text).with_context(|| self.backend.registry_place())?,
                Some(stored.version),
            )),
            None => Ok((RegistryDocument::default(), None)),
        }
    }

    fn client(&self) -> anyhow::Result<PagureClient> {
        Ok(PagureClient::new(self.retry)?)
    }

    /// `projects add KEY`: the rule, checked with the whole registry and on Pagure, then the
    /// tokens; prints what to paste into Pagure.
    pub async fn add(&self, key: &str, options: AddOptions) -> anyhow::Result<()> {
        if self.setup.inline.contains_key(key) {
            bail!("`{key}` is configured inline (the configuration file or PCB_PROJECTS): edit it there");
        }
        let trigger_token =
            options.trigger_token_file.as_deref().map(|p| read_token(p, "the trigger token")).transpose()?;
        let hook_token = options.hook_token_file.as_deref().map(|p| read_token(p, "the web-hook key")).transpose()?;
        let api_token =
            options.pagure_api_token_file.as_deref().map(|p| read_token(p, "the Pagure API token")).transpose()?;
        let is_pattern = key.contains('*');
        if is_pattern && (trigger_token.is_some() || hook_token.is_some())
            || is_pattern && api_token.is_some() && options.shared_token_name.is_none()
        {
            bail!(
                "tokens belong to one project: store them with `projects add <project> …` for each project `{key}` matches (a pattern may only carry a shared API token)"
            );
        }
        let (mut document, version) = self.document().await?;
        let existed = document.rule_mut(key).is_some();
        // A project a pattern already routes needs no rule of its own unless it differs.
        let routed_by_pattern = !is_pattern
            && !existed
            && self
                .compile(&document)
                .ok()
                .and_then(|r| r.lookup(key))
                .is_some_and(|(_, source)| matches!(source, RuleSource::Rule { matches, .. } if matches != key));
        let edit_rule = !routed_by_pattern || options.sets_rule_fields();
        if !edit_rule {
            return self.add_tokens_only(key, &document, trigger_token, hook_token, api_token, &options).await;
        }
        if !existed {
            document.rules.push(RuleSettings { matches: Some(key.to_owned()), ..RuleSettings::default() });
        }
        let rule = document.rule_mut(key).expect("just ensured");
        let set = |field: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                field.clone_from(value);
            }
        };
        set(&mut rule.project, &options.project);
        set(&mut rule.pipeline, &options.pipeline);
        set(&mut rule.untrusted_pipeline, &options.untrusted_pipeline);
        set(&mut rule.buildspec, &options.buildspec);
        set(&mut rule.approval_phrase, &options.approval_phrase);
        set(&mut rule.pagure_url, &options.pagure_url);
        set(&mut rule.git_url, &options.git_url);
        set(&mut rule.shared_pagure_api_token, &options.shared_token_name);
        if options.triggers.is_some() {
            rule.triggers.clone_from(&options.triggers);
        }
        if options.allow_forks.is_some() {
            rule.allow_forks = options.allow_forks;
        }
        let registry = self.compile(&document).map_err(|e| anyhow!("the rule for `{key}` is refused: {e}"))?;
        if is_pattern {
            self.backend.write_registry(&document.to_json(), version.as_deref()).await?;
            say(format!(
                "{} the pattern rule `{key}` in {}",
                if existed { "updated" } else { "added" },
                self.backend.registry_place()
            ));
            if let (Some(token), Some(name)) = (&api_token, &options.shared_token_name) {
                let mut secrets = self.backend.read_secrets().await?;
                secrets.shared().insert(name.clone(), json!(token.expose()));
                self.backend.write_secrets(&secrets).await?;
                say(format!("stored the shared API token `{name}` in {}", self.backend.secrets_place()));
            }
            say(
                "Each project it matches is built once its tokens are stored: pagure-ci-bridge projects add <namespace/name> --trigger-token-file - (the Pagure CI job name is the project's full name)",
            );
            return Ok(());
        }
        let (project, _) = registry
            .lookup(key)
            .ok_or_else(|| anyhow!("`{key}` is not a project key: segments of [A-Za-z0-9._+-] separated by '/'"))?;
        let mut secrets = self.backend.read_secrets().await?;
        let shared_name = project.shared_pagure_api_token.clone();
        let token_for_checks =
            api_token.clone().or_else(|| existing_api_token(&secrets.view(), key, shared_name.as_deref()));
        if options.skip_pagure {
            say("Pagure not called (--skip-pagure-check)");
        } else {
            self.check_on_pagure(&project, token_for_checks.as_ref()).await?;
        }
        self.backend.write_registry(&document.to_json(), version.as_deref()).await?;
        say(format!(
            "{} the rule for `{key}` in {}",
            if existed { "updated" } else { "added" },
            self.backend.registry_place()
        ));
        if trigger_token.is_some() || hook_token.is_some() || api_token.is_some() {
            let entry = secrets.project_entry(key)?;
            if let Some(token) = &trigger_token {
                entry.insert("trigger_token".into(), json!(token.expose()));
            }
            if let Some(token) = &hook_token {
                entry.insert("hook_token".into(), json!(token.expose()));
            }
            match (&api_token, &options.shared_token_name) {
                (Some(token), Some(name)) => {
                    secrets.shared().insert(name.clone(), json!(token.expose()));
                }
                (Some(token), None) => {
                    secrets.project_entry(key)?.insert("pagure_api_token".into(), json!(token.expose()));
                }
                (None, _) => {}
            }
            self.backend.write_secrets(&secrets).await?;
            say(format!("stored the given token(s) in {}", self.backend.secrets_place()));
        }
        self.print_pagure_settings(key, &project);
        let missing = self.missing_secrets(&secrets.view(), &project);
        if !missing.is_empty() {
            say(format!("still missing: {}", missing.join("; ")));
        }
        say("The bridge reads the registry again within its TTL (60 s by default in AWS).");
        Ok(())
    }

    /// `add` for a project a pattern routes: only its tokens are stored.
    async fn add_tokens_only(
        &self,
        key: &str,
        document: &RegistryDocument,
        trigger_token: Option<Secret>,
        hook_token: Option<Secret>,
        api_token: Option<Secret>,
        options: &AddOptions,
    ) -> anyhow::Result<()> {
        let (project, source) = self.compile(document)?.lookup(key).expect("routed by a pattern");
        say(format!("`{key}` is routed by {source}: it needs no rule of its own"));
        let mut secrets = self.backend.read_secrets().await?;
        let token_for_checks = api_token
            .clone()
            .or_else(|| existing_api_token(&secrets.view(), key, project.shared_pagure_api_token.as_deref()));
        if options.skip_pagure {
            say("Pagure not called (--skip-pagure-check)");
        } else {
            self.check_on_pagure(&project, token_for_checks.as_ref()).await?;
        }
        if trigger_token.is_some() || hook_token.is_some() || api_token.is_some() {
            let entry = secrets.project_entry(key)?;
            for (field, token) in
                [("trigger_token", &trigger_token), ("hook_token", &hook_token), ("pagure_api_token", &api_token)]
            {
                if let Some(token) = token {
                    entry.insert(field.into(), json!(token.expose()));
                }
            }
            self.backend.write_secrets(&secrets).await?;
            say(format!("stored the given token(s) in {}", self.backend.secrets_place()));
        }
        self.print_pagure_settings(key, &project);
        let missing = self.missing_secrets(&secrets.view(), &project);
        if !missing.is_empty() {
            say(format!("still missing: {}", missing.join("; ")));
        }
        Ok(())
    }

    async fn check_on_pagure(&self, project: &ProjectConfig, token: Option<&Secret>) -> anyhow::Result<()> {
        let client = self.client()?;
        let fullname = project.repo.fullname();
        let found = client
            .project(&project.pagure_url, &fullname, token)
            .await
            .with_context(|| format!("asking {} about `{fullname}`", project.pagure_url))?;
        match found {
            Some(name) if name == fullname => say(format!("Pagure at {} has `{fullname}`", project.pagure_url)),
            Some(name) => bail!("Pagure calls the project `{name}`, not `{fullname}`: use --project {name}"),
            None => bail!("Pagure at {} has no project `{fullname}` (HTTP 404)", project.pagure_url),
        }
        match token {
            Some(token) => {
                let user = client
                    .whoami(&project.pagure_url, token)
                    .await
                    .with_context(|| format!("checking the Pagure API token on {}", project.pagure_url))?;
                say(format!("the Pagure API token belongs to `{user}`: flags will be posted as that user"));
            }
            None => say("no Pagure API token for this project: its flags would only be logged"),
        }
        Ok(())
    }

    fn print_pagure_settings(&self, key: &str, project: &ProjectConfig) {
        let base = self.bridge_url.as_deref().map(|u| u.trim_end_matches('/').to_owned());
        let base = base.as_deref().unwrap_or("<the bridge's URL>");
        let settings = format!("{}{}/settings", project.pagure_url, project.repo.fullname());
        println!("In Pagure ({settings}):");
        if project.accepts(TriggerKind::Jenkins) {
            println!("  Hooks → Pagure CI: activate, type `jenkins`, URL {base}/jenkins/, job name `{key}`.");
            println!(
                "  Then store the token Pagure shows there: pagure-ci-bridge projects add {key} --trigger-token-file -"
            );
        }
        if project.accepts(TriggerKind::Webhook) {
            println!("  Project options → web-hooks: add {base}/webhook/{key}");
            println!(
                "  The key is on the \"Private Web Hook Key\" tab: pagure-ci-bridge projects add {key} --hook-token-file -"
            );
        }
        if project.accepts(TriggerKind::Json) {
            println!("  JSON trigger (scripts): POST {base}/trigger/{key} with `Authorization: token <trigger token>`");
        }
    }

    /// What this project still needs in the secrets document.
    fn missing_secrets(&self, secrets: &Map<String, Value>, project: &ProjectConfig) -> Vec<String> {
        let entry = secrets.get("projects").and_then(|p| p.get(&project.key));
        let has = |field: &str| entry.and_then(|e| e.get(field)).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
        let mut missing = Vec::new();
        // Pagure CI and web-hooks are alternatives: one door with its credential is enough.
        let token_door = project.accepts(TriggerKind::Jenkins) || project.accepts(TriggerKind::Json);
        let hook_door = project.accepts(TriggerKind::Webhook);
        if !(token_door && has("trigger_token") || hook_door && has("hook_token")) {
            missing.push(match (token_door, hook_door) {
                (true, true) => "the trigger token (Pagure CI's token): --trigger-token-file, or the web-hook key: --hook-token-file",
                (true, false) => "the trigger token (Pagure CI's token): --trigger-token-file",
                _ => "the web-hook key: --hook-token-file",
            }.to_owned());
        }
        if existing_api_token(secrets, &project.key, project.shared_pagure_api_token.as_deref()).is_none() {
            missing.push(match &project.shared_pagure_api_token {
                Some(name) => format!(
                    "the shared Pagure API token `{name}`: --shared-pagure-api-token {name} --pagure-api-token-file"
                ),
                None => "a Pagure API token (flags are only logged without one): --pagure-api-token-file".to_owned(),
            });
        }
        missing
    }

    /// `projects list`: every rule and inline project, with which secrets it has.
    pub async fn list(&self, as_json: bool) -> anyhow::Result<()> {
        let (document, _) = self.document().await?;
        let registry = self.compile(&document)?;
        let secrets = self.backend.read_secrets().await?.view();
        let mut rows = Vec::new();
        let mut inline: Vec<_> = self.setup.inline.keys().collect();
        inline.sort();
        let keys = inline.into_iter().map(|k| (k.clone(), "inline".to_owned())).chain(
            document.rules.iter().enumerate().filter_map(|(i, r)| Some((r.matches.clone()?, format!("rule {i}")))),
        );
        for (matches, source) in keys {
            let exact = registry.get(&matches);
            let row = match &exact {
                Some(project) => json!({
                    "match": matches, "source": source, "project": project.repo.fullname(),
                    "pipeline": project.pipeline, "untrusted_pipeline": project.untrusted_pipeline,
                    "triggers": project.triggers.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                    "missing": self.missing_secrets(&secrets, project),
                }),
                None => json!({"match": matches, "source": source, "pattern": true}),
            };
            rows.push(row);
        }
        if as_json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
        println!("{:<40} {:<10} {:<28} MISSING", "MATCH", "SOURCE", "PIPELINE (UNTRUSTED)");
        for row in &rows {
            let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let pipelines = match (text("pipeline"), text("untrusted_pipeline")) {
                (p, _) if p.is_empty() => "(pattern: per project)".to_owned(),
                (p, u) if u.is_empty() => p,
                (p, u) => format!("{p} ({u})"),
            };
            let missing = row.get("missing").and_then(Value::as_array).map_or(0, Vec::len);
            let missing = if row.get("pattern").is_some() { "-".to_owned() } else { missing.to_string() };
            println!("{:<40} {:<10} {:<28} {}", text("match"), text("source"), pipelines, missing);
        }
        say(format!("{} rule(s) in {}", document.rules.len(), self.backend.registry_place()));
        Ok(())
    }

    /// `projects check KEY`: which rule routes it and what it still lacks. `Ok(false)` when
    /// something is missing (the command exits 1).
    pub async fn check(&self, key: &str, skip_pagure: bool) -> anyhow::Result<bool> {
        let (document, _) = self.document().await?;
        let registry = self.compile(&document)?;
        let Some((project, source)) = registry.lookup(key) else {
            println!("✗ `{key}`: no rule matches it (add one: pagure-ci-bridge projects add {key})");
            return Ok(false);
        };
        println!("✓ `{key}` is routed by {source}: project `{}` on {}", project.repo.fullname(), project.pagure_url);
        println!(
            "  trusted builds: {}; untrusted builds: {}",
            project.pipeline,
            project.untrusted_pipeline.as_deref().map_or_else(
                || match &project.approval_phrase {
                    Some(phrase) => format!("none (wait for a committer's `{phrase}`)"),
                    None => "none (refused with an error flag)".to_owned(),
                },
                str::to_owned
            )
        );
        let secrets = self.backend.read_secrets().await?.view();
        let mut ok = true;
        for missing in self.missing_secrets(&secrets, &project) {
            println!("✗ missing {missing}");
            ok = false;
        }
        if !skip_pagure {
            let token = existing_api_token(&secrets, key, project.shared_pagure_api_token.as_deref());
            match self.check_on_pagure(&project, token.as_ref()).await {
                Ok(()) => {
                    println!("✓ Pagure knows the project{}", if token.is_some() { " and the API token" } else { "" })
                }
                Err(e) => {
                    println!("✗ {e:#}");
                    ok = false;
                }
            }
        }
        if ok {
            println!("✓ nothing missing");
        }
        Ok(ok)
    }

    /// `projects remove KEY`: its rule, and (unless kept) its secrets.
    pub async fn remove(&self, key: &str, keep_secrets: bool) -> anyhow::Result<()> {
        if self.setup.inline.contains_key(key) {
            bail!("`{key}` is configured inline (the configuration file or PCB_PROJECTS): remove it there");
        }
        let (mut document, version) = self.document().await?;
        let before = document.rules.len();
        document.rules.retain(|r| r.matches.as_deref() != Some(key));
        if document.rules.len() < before {
            self.compile(&document)?;
            self.backend.write_registry(&document.to_json(), version.as_deref()).await?;
            say(format!("removed the rule `{key}` from {}", self.backend.registry_place()));
        } else if keep_secrets || self.compile(&document)?.lookup(key).is_none() {
            bail!("no rule matches exactly `{key}` in {}", self.backend.registry_place());
        }
        let registry = self.compile(&document)?;
        if let Some((_, source)) = registry.lookup(key) {
            // A pattern still routes it: without its tokens, its triggers are refused.
            say(format!("note: `{key}` is still routed by {source}"));
        }
        if !keep_secrets {
            let mut secrets = self.backend.read_secrets().await?;
            if secrets.remove_project(key) {
                self.backend.write_secrets(&secrets).await?;
                say(format!("removed its tokens from {}", self.backend.secrets_place()));
            }
        }
        Ok(())
    }
}
