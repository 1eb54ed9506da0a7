//! A CloudFormation template read the way a deployment would read it, for the tests that
//! run the Lambda binaries with the environment the template gives them.
//!
//! YAML short forms (`!Ref`, `!Sub`, `!GetAtt`, `!If` …) become CloudFormation's JSON long
//! forms, so a synthesized (JSON) template and the SAM template resolve alike. Every
//! intrinsic a function's settings may use is resolved: `Ref`, `Fn::Sub` (both forms),
//! `Fn::GetAtt`, `Fn::If` with the template's `Conditions` (`Fn::Equals`, `Fn::Not`,
//! `Fn::And`, `Fn::Or`, `Condition`), `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`,
//! `Fn::Base64`, and `AWS::NoValue`. Parameters take the test's value or their `Default`;
//! pseudo parameters, resources and attributes are asked of the caller's [`Stack`]. Anything
//! else, or a reference the stack cannot answer, is an error naming the reference and where
//! it was met: a template and a binary cannot drift apart unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

/// A reference a template makes to something outside its parameters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    /// `Ref` of a pseudo parameter (`AWS::StackName` …) or of a resource (its logical id).
    Ref(String),
    /// `Fn::GetAtt` (or `${Id.Attribute}` in `Fn::Sub`).
    GetAtt(String, String),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Ref(name) => write!(f, "Ref {name}"),
            Reference::GetAtt(id, attribute) => write!(f, "GetAtt {id}.{attribute}"),
        }
    }
}

/// What a deployed stack would answer: pseudo parameters, resources' `Ref` values and
/// attributes. `None` = "no such thing in this test's stack" (an error for the template).
pub trait Stack {
    fn answer(&mut self, template: &Template, reference: &Reference) -> Option<String>;
}

/// A closure is a stack.
impl<F: FnMut(&Template, &Reference) -> Option<String>> Stack for F {
    fn answer(&mut self, template: &Template, reference: &Reference) -> Option<String> {
        self(template, reference)
    }
}

/// The pseudo parameters of a test stack.
pub fn pseudo_parameter(name: &str, stack_name: &str) -> Option<String> {
    Some(
        match name {
            "AWS::StackName" => stack_name,
            "AWS::Region" => "us-east-1",
            // moto's default account.
            "AWS::AccountId" => "123456789012",
            "AWS::Partition" => "aws",
            "AWS::URLSuffix" => "amazonaws.com",
            "AWS::StackId" => {
                return Some(format!("arn:aws:cloudformation:us-east-1:123456789012:stack/{stack_name}/1"));
            }
            _ => return None,
        }
        .to_owned(),
    )
}

/// A template in CloudFormation's JSON form, with the test's parameter values.
#[derive(Debug, Clone)]
pub struct Template {
    pub json: Value,
    parameters: BTreeMap<String, String>,
}

/// A Lambda function of the template as the Lambda service would run it.
#[derive(Debug, Clone)]
pub struct FunctionSettings {
    pub logical_id: String,
    /// Its environment: SAM's `Globals.Function` variables, then its own.
    pub environment: BTreeMap<String, String>,
    pub memory_mb: u32,
    pub timeout_seconds: u64,
    /// `Handler`, `Runtime` and SAM's `Metadata.BuildProperties.Binary` (the cargo binary).
    pub handler: Option<String>,
    pub runtime: Option<String>,
    pub binary: Option<String>,
    /// What the Lambda service makes of `LoggingConfig` (`LogFormat`, `ApplicationLogLevel`):
    /// `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`.
    pub logging: BTreeMap<String, String>,
}

type Resolved = Result<Option<Value>, String>;

impl Template {
    /// Reads a YAML or JSON template; short-form tags become long-form intrinsics.
    pub fn load(path: &Path) -> Template {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let yaml: yaml_serde::Value =
            yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
        Template { json: long_form(yaml), parameters: BTreeMap::new() }
    }

    /// Sets a parameter's value (the test's answer to the deployment's prompt). A name the
    /// template does not declare is refused: the test would silently test nothing.
    pub fn with_parameter(mut self, name: &str, value: &str) -> Result<Template, String> {
        if self.json.pointer(&format!("/Parameters/{name}")).is_none() {
            return Err(format!("the template declares no parameter `{name}`"));
        }
        self.parameters.insert(name.to_owned(), value.to_owned());
        Ok(self)
    }

    pub fn has_parameter(&self, name: &str) -> bool {
        self.json.pointer(&format!("/Parameters/{name}")).is_some()
    }

    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.json.get("Resources")?.get(logical_id)
    }

    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resource(logical_id)?.get("Type")?.as_str()
    }

    /// Logical ids of the resources of a type, in template order.
    pub fn resources_of_type(&self, kind: &str) -> Vec<String> {
        let Some(resources) = self.json.get("Resources").and_then(Value::as_object) else { return Vec::new() };
        resources.iter().filter(|(_, r)| r["Type"] == kind).map(|(id, _)| id.clone()).collect()
    }

    /// The function whose SAM `Metadata.BuildProperties.Binary` (or, failing that, logical
    /// id) is `binary`.
    pub fn function_of_binary(&self, binary: &str) -> Result<String, String> {
        let functions = self.resources_of_type("AWS::Serverless::Function");
        let by_binary: Vec<&String> = functions
            .iter()
            .filter(|id| {
                self.json["Resources"][id.as_str()].pointer("/Metadata/BuildProperties/Binary")
                    == Some(&Value::from(binary))
            })
            .collect();
        match by_binary.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "no AWS::Serverless::Function of the template builds the binary `{binary}` (Metadata.BuildProperties.Binary); functions: {functions:?}"
            )),
            many => Err(format!("several functions build `{binary}`: {many:?}")),
        }
    }

    /// A function's environment and limits, every intrinsic resolved against `stack`.
    pub fn function(&self, logical_id: &str, stack: &mut dyn Stack) -> Result<FunctionSettings, String> {
        let resource = self.resource(logical_id).ok_or_else(|| format!("no resource `{logical_id}`"))?;
        let kind = resource["Type"].as_str().unwrap_or_default();
        let properties = &resource["Properties"];
        let globals = match kind {
            "AWS::Serverless::Function" => self.json.pointer("/Globals/Function").cloned().unwrap_or(Value::Null),
            "AWS::Lambda::Function" => Value::Null,
            other => return Err(format!("`{logical_id}` is a {other}, not a function")),
        };
        let mut environment = BTreeMap::new();
        for (source, variables) in [
            ("Globals.Function", globals.pointer("/Environment/Variables")),
            (logical_id, properties.pointer("/Environment/Variables")),
        ] {
            let Some(variables) = variables else { continue };
            let where_ = format!("{source}.Environment.Variables");
            let Some(resolved) = self.resolve(variables, stack, &where_)? else { continue };
            let object = resolved.as_object().ok_or_else(|| format!("{where_} is not a mapping"))?;
            for (name, value) in object {
                environment.insert(name.clone(), scalar(value).map_err(|e| format!("{where_}.{name}: {e}"))?);
            }
        }
        let setting = |name: &str, stack: &mut dyn Stack| -> Result<Option<String>, String> {
            let value = properties.get(name).or_else(|| globals.get(name));
            match value {
                None => Ok(None),
                Some(value) => self
                    .resolve(value, stack, &format!("{logical_id}.{name}"))?
                    .map(|v| scalar(&v).map_err(|e| format!("{logical_id}.{name}: {e}")))
                    .transpose(),
            }
        };
        let number = |text: Option<String>, default: u64, name: &str| -> Result<u64, String> {
            text.map_or(Ok(default), |t| t.parse().map_err(|e| format!("{logical_id}.{name} `{t}`: {e}")))
        };
        let memory_mb = number(setting("MemorySize", stack)?, 128, "MemorySize")? as u32;
        let timeout_seconds = number(setting("Timeout", stack)?, 3, "Timeout")?;
        let mut logging = BTreeMap::new();
        let logging_config = properties.get("LoggingConfig").or_else(|| globals.get("LoggingConfig"));
        if let Some(config) = logging_config {
            let where_ = format!("{logical_id}.LoggingConfig");
            let config = self.resolve(config, stack, &where_)?.unwrap_or(Value::Null);
            for (property, variable) in
                [("LogFormat", "AWS_LAMBDA_LOG_FORMAT"), ("ApplicationLogLevel", "AWS_LAMBDA_LOG_LEVEL")]
            {
                if let Some(value) = config.get(property) {
                    let value = scalar(value).map_err(|e| format!("{where_}.{property}: {e}"))?;
                    logging.insert(variable.to_owned(), value);
                }
            }
        }
        Ok(FunctionSettings {
            logical_id: logical_id.to_owned(),
            environment,
            memory_mb,
            timeout_seconds,
            handler: setting("Handler", stack)?,
            runtime: setting("Runtime", stack)?,
            binary: resource.pointer("/Metadata/BuildProperties/Binary").and_then(Value::as_str).map(str::to_owned),
            logging,
        })
    }

    /// Every reference resolving `value` would ask the stack for (the branches `Fn::If`
    /// takes only).
    pub fn references(&self, value: &Value, where_: &str) -> Result<BTreeSet<Reference>, String> {
        let mut seen = BTreeSet::new();
        let mut recorder = |_: &Template, reference: &Reference| {
            seen.insert(reference.clone());
            Some("placeholder".to_owned())
        };
        self.resolve(value, &mut recorder, where_)?;
        Ok(seen)
    }

    /// Resolves every intrinsic in `value`; `None` for `AWS::NoValue`. `where_` names the
    /// place for error messages.
    pub fn resolve(&self, value: &Value, stack: &mut dyn Stack, where_: &str) -> Resolved {
        match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(v) = self.resolve(item, stack, &format!("{where_}[{i}]"))? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) if map.len() == 1 => {
                let (key, argument) = map.iter().next().expect("one entry");
                if key == "Ref" || key.starts_with("Fn::") || key == "Condition" {
                    self.intrinsic(key, argument, stack, where_)
                } else {
                    self.object(map, stack, where_)
                }
            }
            Value::Object(map) => self.object(map, stack, where_),
            other => Ok(Some(other.clone())),
        }
    }

    fn object(&self, map: &Map<String, Value>, stack: &mut dyn Stack, where_: &str) -> Resolved {
        let mut out = Map::new();
        for (key, item) in map {
            if let Some(v) = self.resolve(item, stack, &format!("{where_}.{key}"))? {
                out.insert(key.clone(), v);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn string(&self, value: &Value, stack: &mut dyn Stack, where_: &str) -> Result<String, String> {
        let resolved = self
            .resolve(value, stack, where_)?
            .ok_or_else(|| format!("{where_}: AWS::NoValue where a value is needed"))?;
        scalar(&resolved).map_err(|e| format!("{where_}: {e}"))
    }

    fn intrinsic(&self, key: &str, argument: &Value, stack: &mut dyn Stack, where_: &str) -> Resolved {
        let here = format!("{where_} ({key})");
        let bad = |what: &str| Err(format!("{here}: {what}: {argument}"));
        match key {
            "Ref" => {
                let Some(name) = argument.as_str() else { return bad("not a name") };
                if name == "AWS::NoValue" {
                    return Ok(None);
                }
                self.reference(&Reference::Ref(name.to_owned()), stack, &here).map(|v| Some(Value::String(v)))
            }
            "Fn::GetAtt" => {
                let (id, attribute) = match argument {
                    Value::String(text) => match text.split_once('.') {
                        Some((id, attribute)) => (id.to_owned(), attribute.to_owned()),
                        None => return bad("not Id.Attribute"),
                    },
                    Value::Array(parts) if parts.len() == 2 => {
                        (self.string(&parts[0], stack, &here)?, self.string(&parts[1], stack, &here)?)
                    }
                    _ => return bad("not Id.Attribute"),
                };
                self.reference(&Reference::GetAtt(id, attribute), stack, &here).map(|v| Some(Value::String(v)))
            }
            "Fn::Sub" => {
                let (text, variables) = match argument {
                    Value::String(text) => (text.clone(), Map::new()),
                    Value::Array(parts) if parts.len() == 2 => {
                        let Some(text) = parts[0].as_str() else { return bad("not a string") };
                        let Some(Value::Object(variables)) = self.resolve(&parts[1], stack, &here)? else {
                            return bad("variables are not a mapping");
                        };
                        (text.to_owned(), variables)
                    }
                    _ => return bad("neither a string nor [string, variables]"),
                };
                self.substitute(&text, &variables, stack, &here).map(|v| Some(Value::String(v)))
            }
            "Fn::If" => {
                let Some([condition, yes, no]) =
                    argument.as_array().map(Vec::as_slice).and_then(|a| <&[Value; 3]>::try_from(a).ok())
                else {
                    return bad("not [condition, then, else]");
                };
                let Some(condition) = condition.as_str() else { return bad("the condition is not a name") };
                if self.condition(condition, stack, &here)? {
                    self.resolve(yes, stack, &here)
                } else {
                    self.resolve(no, stack, &here)
                }
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                self.evaluate(key, argument, stack, &here).map(|b| Some(Value::Bool(b)))
            }
            "Fn::Join" => {
                let Some([separator, items]) =
                    argument.as_array().map(Vec::as_slice).and_then(|a| <&[Value; 2]>::try_from(a).ok())
                else {
                    return bad("not [separator, items]");
                };
                let Some(separator) = separator.as_str() else { return bad("the separator is not a string") };
                let Some(Value::Array(items)) = self.resolve(items, stack, &here)? else {
                    return bad("items are not a list");
                };
                let parts: Result<Vec<String>, String> = items.iter().map(scalar).collect();
                Ok(Some(Value::String(parts.map_err(|e| format!("{here}: {e}"))?.join(separator))))
            }
            "Fn::Select" => {
                let Some([index, items]) =
                    argument.as_array().map(Vec::as_slice).and_then(|a| <&[Value; 2]>::try_from(a).ok())
                else {
                    return bad("not [index, items]");
                };
                let index: usize = self.string(index, stack, &here)?.parse().map_err(|e| format!("{here}: {e}"))?;
                let Some(Value::Array(items)) = self.resolve(items, stack, &here)? else {
                    return bad("items are not a list");
                };
                items.get(index).cloned().map(Some).ok_or_else(|| format!("{here}: no item {index}"))
            }
            "Fn::Split" => {
                let Some([separator, text]) =
                    argument.as_array().map(Vec::as_slice).and_then(|a| <&[Value; 2]>::try_from(a).ok())
                else {
                    return bad("not [separator, string]");
                };
                let Some(separator) = separator.as_str() else { return bad("the separator is not a string") };
                let text = self.string(text, stack, &here)?;
                Ok(Some(Value::Array(text.split(separator).map(Value::from).collect())))
            }
            "Fn::FindInMap" => {
                let Some(parts) = argument.as_array().filter(|a| a.len() == 3) else {
                    return bad("not [map, key, key]");
                };
                let names: Result<Vec<String>, String> = parts.iter().map(|p| self.string(p, stack, &here)).collect();
                let names = names?;
                let found = self
                    .json
                    .get("Mappings")
                    .and_then(|m| m.get(&names[0]))
                    .and_then(|m| m.get(&names[1]))
                    .and_then(|m| m.get(&names[2]));
                found.cloned().map(Some).ok_or_else(|| format!("{here}: no mapping {names:?}"))
            }
            "Fn::Base64" => {
                use base64::Engine as _;
                let text = self.string(argument, stack, &here)?;
                Ok(Some(Value::String(base64::engine::general_purpose::STANDARD.encode(text))))
            }
            other => Err(format!("{where_}: the intrinsic `{other}` is not supported by the test's resolver")),
        }
    }

    fn substitute(
        &self,
        text: &str,
        variables: &Map<String, Value>,
        stack: &mut dyn Stack,
        where_: &str,
    ) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| format!("{where_}: an unclosed ${{ in {text:?}"))?;
            let name = &after[..end];
            rest = &after[end + 1..];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            if let Some(value) = variables.get(name) {
                out.push_str(&scalar(value).map_err(|e| format!("{where_}: ${{{name}}}: {e}"))?);
                continue;
            }
            let reference = match name.split_once('.') {
                Some((id, attribute)) if !name.starts_with("AWS::") => {
                    Reference::GetAtt(id.to_owned(), attribute.to_owned())
                }
                _ => Reference::Ref(name.to_owned()),
            };
            out.push_str(&self.reference(&reference, stack, where_)?);
        }
        out.push_str(rest);
        Ok(out)
    }

    fn reference(&self, reference: &Reference, stack: &mut dyn Stack, where_: &str) -> Result<String, String> {
        if let Reference::Ref(name) = reference
            && let Some(parameter) = self.json.pointer(&format!("/Parameters/{name}"))
        {
            return match (self.parameters.get(name), parameter.get("Default")) {
                (Some(value), _) => Ok(value.clone()),
                (None, Some(default)) => {
                    scalar(default).map_err(|e| format!("{where_}: parameter {name}'s Default: {e}"))
                }
                (None, None) => Err(format!("{where_}: parameter `{name}` has no Default and the test gives no value")),
            };
        }
        let known = match reference {
            Reference::Ref(name) => name.starts_with("AWS::") || self.resource(name).is_some(),
            Reference::GetAtt(id, _) => self.resource(id).is_some(),
        };
        if !known {
            return Err(format!(
                "{where_}: unknown reference `{reference}`: no such parameter, pseudo parameter or resource"
            ));
        }
        stack.answer(self, reference).ok_or_else(|| {
            let kind = match reference {
                Reference::Ref(name) | Reference::GetAtt(name, _) => self.resource_type(name).unwrap_or("pseudo parameter"),
            };
            format!("{where_}: the test's stack has no value for `{reference}` ({kind}): teach the test what a deployment gives it")
        })
    }

    fn condition(&self, name: &str, stack: &mut dyn Stack, where_: &str) -> Result<bool, String> {
        let Some(definition) = self.json.get("Conditions").and_then(|c| c.get(name)) else {
            return Err(format!("{where_}: unknown condition `{name}`"));
        };
        let Some((key, argument)) = definition.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next())
        else {
            return Err(format!("{where_}: condition `{name}` is not an intrinsic"));
        };
        self.evaluate(key, argument, stack, &format!("{where_} → condition {name}"))
    }

    fn evaluate(&self, key: &str, argument: &Value, stack: &mut dyn Stack, where_: &str) -> Result<bool, String> {
        let operands = || argument.as_array().ok_or_else(|| format!("{where_}: {key} needs a list"));
        match key {
            "Condition" => self.condition(
                argument.as_str().ok_or_else(|| format!("{where_}: not a condition name"))?,
                stack,
                where_,
            ),
            "Fn::Equals" => {
                let items = operands()?;
                let [a, b] = items.as_slice() else { return Err(format!("{where_}: Fn::Equals needs two values")) };
                Ok(self.string(a, stack, where_)? == self.string(b, stack, where_)?)
            }
            "Fn::Not" => {
                let items = operands()?;
                let [inner] = items.as_slice() else { return Err(format!("{where_}: Fn::Not needs one condition")) };
                Ok(!self.truth(inner, stack, where_)?)
            }
            "Fn::And" | "Fn::Or" => {
                let mut results = Vec::new();
                for item in operands()? {
                    results.push(self.truth(item, stack, where_)?);
                }
                Ok(if key == "Fn::And" { results.iter().all(|b| *b) } else { results.iter().any(|b| *b) })
            }
            other => Err(format!("{where_}: `{other}` is not a condition function")),
        }
    }

    fn truth(&self, value: &Value, stack: &mut dyn Stack, where_: &str) -> Result<bool, String> {
        match value.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) {
            Some((key, argument)) => self.evaluate(key, argument, stack, where_),
            None => value.as_bool().ok_or_else(|| format!("{where_}: not a condition: {value}")),
        }
    }
}

/// A resolved scalar as CloudFormation passes it to a string property.
fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("not a scalar: {other}")),
    }
}

/// YAML (with CloudFormation's short-form tags) → the template's JSON form.
fn long_form(value: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(long_form).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => yaml_serde::to_string(&other).unwrap_or_default().trim().to_owned(),
                    };
                    (key, long_form(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = long_form(tagged.value);
            let (key, inner) = match name {
                "Ref" | "Condition" => (name.to_owned(), inner),
                "GetAtt" => (
                    "Fn::GetAtt".to_owned(),
                    match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((id, attribute)) => Value::Array(vec![id.into(), attribute.into()]),
                            None => Value::String(s),
                        },
                        other => other,
                    },
                ),
                other => (format!("Fn::{other}"), inner),
            };
            let mut map = Map::new();
            map.insert(key, inner);
            Value::Object(map)
        }
    }
}
