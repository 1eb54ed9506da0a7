//! [`PagureForge`]: the forge port over Pagure's API, one token per project.

use bridge_core::config::{ProjectConfig, ReportConfig};
use bridge_core::forge::{Flag, FlagUpdate, Forge, ForgeError, LogStatus, PullRequestFacts};
use bridge_core::ports::Secrets;

use crate::{PagureClient, PagureError};

/// Posts flags on each project's Pagure with the project's `pagure_api_token`. A project
/// without a token has its states logged instead.
#[derive(Debug, Clone)]
pub struct PagureForge<S> {
    client: PagureClient,
    projects: bridge_core::registry::Projects,
    secrets: S,
    username: String,
}

impl<S: Secrets> PagureForge<S> {
    pub fn new(client: PagureClient, projects: bridge_core::registry::Projects, secrets: S, username: String) -> Self {
        PagureForge { client, projects, secrets, username }
    }

    /// The reporter a deployment runs: a client with the configured retries and time limit,
    /// flags under the configured name.
    pub fn from_config(
        report: &ReportConfig,
        projects: bridge_core::registry::Projects,
        secrets: S,
    ) -> Result<Self, PagureError> {
        Ok(Self::new(PagureClient::new(report.retry)?, projects, secrets, report.flag_username.clone()))
    }

    async fn project(&self, key: &str) -> Result<std::sync::Arc<ProjectConfig>, ForgeError> {
        self.projects
            .get(key)
            .await
            .map_err(|e| ForgeError::transient(e.to_string()))?
            .ok_or_else(|| ForgeError::terminal(format!("project `{key}` is not configured")))
    }

    /// The project's own `pagure_api_token`, else the shared one its rule names.
    async fn token(
        &self,
        project: &ProjectConfig,
    ) -> Result<Option<bridge_core::auth::Secret>, bridge_core::ports::SecretsError> {
        let secrets = self.secrets.document().await?;
        Ok(secrets.pagure_api_token(&project.key, project.shared_pagure_api_token.as_deref()).cloned())
    }
}

impl<S: Secrets> Forge for PagureForge<S> {
    async fn report(&self, update: &FlagUpdate) -> Result<(), ForgeError> {
        let project = self.project(&update.project_key).await?;
        let pagure_url = &project.pagure_url;
        let token = self.token(&project).await.map_err(|e| ForgeError::transient(e.to_string()))?;
        let Some(token) = token.as_ref() else {
            tracing::warn!(project = %update.project_key, "no pagure_api_token in the secret: flag not posted");
            return LogStatus.report(update).await;
        };
        let flag = Flag {
            username: self.username.clone(),
            comment: update.comment.clone(),
            url: update.url.clone(),
            status: update.status,
            percent: update.percent,
            uid: update.uid.clone(),
        };
        let posted =
            self.client.post_flag(pagure_url, &update.target, &flag, token).await.map_err(ForgeError::from_source)?;
        tracing::info!(
            project = %update.project_key, target = %update.target, uid = %posted.uid, status = update.status.as_str(),
            updated = posted.updated, "flag posted"
        );
        Ok(())
    }

    async fn pull_request(&self, project_key: &str, project_path: &str, id: u64) -> Option<PullRequestFacts> {
        let project = self.project(project_key).await.ok()?;
        let token = self.token(&project).await.ok().flatten();
        match self.client.pull_request(&project.pagure_url, project_path, id, token.as_ref()).await {
            Ok(facts) => Some(facts),
            Err(e) => {
                tracing::warn!(project = %project_key, pr = id, error = %e, "pull request unknown: treated as untrusted");
                None
            }
        }
    }

    async fn has_commit(&self, project_key: &str, project_path: &str, user: &str, branch: &str) -> Option<bool> {
        let project = self.project(project_key).await.ok()?;
        let token = self.token(&project).await.ok().flatten();
        match self.client.has_commit(&project.pagure_url, project_path, user, branch, token.as_ref()).await {
            Ok(answer) => Some(answer),
            Err(e) => {
                tracing::warn!(project = %project_key, user, branch, error = %e, "commit access unknown: treated as none");
                None
            }
        }
    }

    async fn already_final(&self, update: &FlagUpdate) -> bool {
        let Ok(project) = self.project(&update.project_key).await else { return false };
        match self.client.list_flags(&project.pagure_url, &update.target).await {
            Ok(flags) => {
                flags.iter().any(|f| f.url == update.url && f.username == self.username && f.status.is_final())
            }
            Err(e) => {
                tracing::warn!(target = %update.target, error = %e, "could not read the current flags");
                false
            }
        }
    }
}
